"""A trained mfrec model in Python: the same answers as mfrec_recommend and mfrec_serve.

Reads the model file mfrec_dist writes (layout: include/mfrec/model.hpp) with h5py and
reproduces src/recommend.cpp: the top N for a user leaving out their training items, the popular
list for unknown users and users without history, similar items by cosine of item factors, and
fold-in (one exact ALS half-step for a new user). Scores are computed in float32 like the C++
(fold-in's linear system in float64), and ties rank the smaller item index first.
"""
from dataclasses import dataclass
from typing import NamedTuple

import h5py
import numpy as np

from .errors import ModelError

MODEL_FORMAT = "mfrec-model"
_ITEM_FIELDS = ("name", "category", "style", "description", "gender_affinity")


class Ranked(NamedTuple):
    """A ranked list, best first: item ids, their scores (float32; the number of distinct training
    users for the popular list), their rows in the model, and where it came from ("model",
    "popular", "similar" or "fold-in", as the server's `source`)."""
    ids: list
    scores: np.ndarray
    rows: np.ndarray
    source: str


@dataclass
class ImplicitArrays:
    """The model in the layout of the `implicit` library's AlternatingLeastSquares (CPU):
    user_factors [n_users, factors] and item_factors [n_items, factors], float32, C-contiguous,
    row r of each belonging to user_ids[r] / item_ids[r] (user_index / item_index map ids back to
    rows); user_items the training matrix (users x items) as CSR arrays, for
    scipy.sparse.csr_matrix((data, indices, indptr), shape=shape); kwargs the constructor
    arguments of implicit.als.AlternatingLeastSquares (factors, regularization, alpha), which
    mean the same there only for a model trained with --confidence implicit and without
    --scale-regularization (docs/python.md)."""
    user_factors: np.ndarray
    item_factors: np.ndarray
    user_ids: list
    item_ids: list
    user_index: dict
    item_index: dict
    user_items: tuple  # (data float32, indices int32, indptr int64)
    shape: tuple       # (n_users, n_items)
    kwargs: dict


def _text(v):
    """An HDF5 string (fixed-length bytes from h5py) or attribute as str; ids keep every byte."""
    if isinstance(v, np.ndarray):
        v = v.item()
    return v.decode("utf-8", "surrogateescape") if isinstance(v, (bytes, np.bytes_)) else str(v)


def _strings(f, name):
    return [_text(s) for s in f[name][()]]


def _check_n(n):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be an integer of at least 1 (got {n!r})")
    return int(n)


def top_n(scores, exclude, n):
    """The rows of the n highest scores, leaving out `exclude`: higher score first, then the
    smaller row (src/metrics.cpp top_k_excluding); NaN ranks last. Fewer when fewer are left."""
    s = np.asarray(scores, dtype=np.float32).copy()
    s[np.isnan(s)] = -np.inf
    keep = np.ones(s.shape[0], dtype=bool)
    keep[np.asarray(exclude, dtype=np.int64)] = False
    cand = np.flatnonzero(keep)
    if cand.size > n:  # every candidate tied with the n-th best stays, so ties resolve by row
        cut = np.partition(s[cand], cand.size - n)[cand.size - n]
        cand = cand[s[cand] >= cut]
    order = np.lexsort((cand, -s[cand]))[:n]
    return cand[order].astype(np.int32)


class Model:
    """A model loaded into memory (see load()). Immutable after loading; thread-safe to read."""

    def __init__(self, path, source=None):
        from .registry import Source
        self.path = str(path)
        self.source = source or Source(path=self.path)
        try:
            f = h5py.File(self.path, "r")
        except OSError as e:
            raise ModelError(f"{self.path}: cannot open as HDF5: {e}") from None
        with f:
            self._read(f)
        self._index()

    # ---- loading -------------------------------------------------------------------------------

    def _read(self, f):
        p = self.path
        if _text(f.attrs.get("format", b"")) != MODEL_FORMAT:
            raise ModelError(f"{p}: not an mfrec model (root attribute format != {MODEL_FORMAT})")
        a = f.attrs
        self.factors = int(a["factors"])
        # Stored as double, used as float by the C++ (AlsParams): round the same way.
        self.params = {
            "factors": self.factors,
            "regularization": float(np.float32(a["regularization"])),
            "alpha": float(np.float32(a["alpha"])),
            "confidence": _text(a["confidence"]),
            "scale_regularization": int(a["scale_regularization"]) != 0,
            "solver": _text(a["solver"]),
            "cg_steps": int(a["cg_steps"]),
            "iterations": int(a["iterations"]),
            "seed": int(a["seed"]),
            "k": int(a["k"]),
        }
        if self.params["confidence"] not in ("hu", "implicit"):
            raise ModelError(f"{p}: unknown confidence rule '{self.params['confidence']}'")
        self.meta = {k: _text(a[k]) for k in ("created", "dataset", "dataset_fingerprint", "program_version")
                     if k in a}
        self.metrics = {}
        for group, key in (("/metrics", "metrics"), ("/metrics/system", "system_metrics"),
                           ("/metrics/baseline", "baseline_metrics")):
            self.metrics[key] = {k: float(v) for k, v in f[group].attrs.items()} if group in f else {}

        def factors(name):
            d = f.get(name)
            if d is None or d.ndim != 2 or d.shape[1] != self.factors or d.dtype != np.float32:
                raise ModelError(f"{p}: {name} must be float32 [rows, {self.factors}]")
            return np.ascontiguousarray(d[()])
        self.user_factors = factors("/user_factors")
        self.item_factors = factors("/item_factors")
        nu, ni = self.user_factors.shape[0], self.item_factors.shape[0]
        self.user_ids = _strings(f, "/users/id")
        self.item_ids = _strings(f, "/items/id")
        if len(self.user_ids) != nu or len(self.item_ids) != ni:
            raise ModelError(f"{p}: /users/id or /items/id does not match the factor matrices' rows")
        self.items = {"id": self.item_ids}
        for k in _ITEM_FIELDS:
            self.items[k] = _strings(f, f"/items/{k}") if f"/items/{k}" in f else [""] * ni
            if len(self.items[k]) != ni:
                raise ModelError(f"{p}: /items/{k} does not match /items/id")
        price = f["/items/price"][()].astype(np.float32) if "/items/price" in f else np.zeros(ni, np.float32)
        self.items["price"] = np.resize(price, ni) if price.size != ni else price

        indptr = f["/seen/indptr"][()].astype(np.int64)
        indices = f["/seen/indices"][()].astype(np.int32)
        data = f["/seen/data"][()].astype(np.float32)
        n_cols = int(f["/seen"].attrs.get("n_cols", ni))
        if (indptr.shape != (nu + 1,) or indptr[0] != 0 or np.any(np.diff(indptr) < 0)
                or indptr[-1] != indices.size or indices.size != data.size or n_cols != ni
                or (indices.size and (indices.min() < 0 or indices.max() >= ni))):
            raise ModelError(f"{p}: /seen does not match the factor matrices")
        self.seen = (indptr, indices, data)
        self.popularity_count = f["/popularity/count"][()].astype(np.int64)
        self.popularity_ranking = f["/popularity/ranking"][()].astype(np.int32)
        if self.popularity_count.size != ni or self.popularity_ranking.size != ni:
            raise ModelError(f"{p}: /popularity does not match the number of items")
        if ni and (self.popularity_ranking.min() < 0 or self.popularity_ranking.max() >= ni):
            raise ModelError(f"{p}: /popularity/ranking holds a bad item index")

    def _index(self):
        self.user_index = {u: r for r, u in enumerate(self.user_ids)}
        self.item_index = {i: r for r, i in enumerate(self.item_ids)}
        # Unit item rows for cosine (zero rows stay zero), Y^T Y for fold-in: as the C++ builds
        # them once at load (Gram summed in double, then held as float).
        y = self.item_factors
        norms = np.sqrt(np.einsum("ij,ij->i", y, y, dtype=np.float32))
        self._item_unit = np.where(norms[:, None] > 0, y / np.where(norms > 0, norms, 1)[:, None], y)
        self._item_unit = self._item_unit.astype(np.float32)
        y64 = y.astype(np.float64)
        self._yty = (y64.T @ y64).astype(np.float32).astype(np.float64)

    # ---- lookups -------------------------------------------------------------------------------

    @property
    def n_users(self):
        return len(self.user_ids)

    @property
    def n_items(self):
        return len(self.item_ids)

    def user_row(self, user_id):
        """The row of a user id, or -1 when the model does not know it."""
        return self.user_index.get(str(user_id), -1)

    def item_row(self, item_id):
        """The row of an item id, or -1 when the model does not know it."""
        return self.item_index.get(str(item_id), -1)

    def has_history(self, row):
        """Whether the user's training row has any item (a user without one has zero factors)."""
        indptr = self.seen[0]
        return 0 <= row < self.n_users and indptr[row + 1] > indptr[row]

    def seen_items(self, user_id):
        """The rows of the user's training items (empty for unknown users)."""
        r = self.user_row(user_id)
        if r < 0:
            return np.zeros(0, np.int32)
        indptr, indices, _ = self.seen
        return indices[indptr[r]:indptr[r + 1]].copy()

    def item(self, item_id):
        """One item's details, as the server renders them: {id, name, category, style, price,
        description}. KeyError for an unknown id."""
        r = self.item_row(item_id)
        if r < 0:
            raise KeyError(f"unknown item '{item_id}'")
        return {"id": self.item_ids[r], "name": self.items["name"][r], "category": self.items["category"][r],
                "style": self.items["style"][r], "price": round(float(self.items["price"][r]) * 100) / 100,
                "description": self.items["description"][r]}

    def _rows_of(self, item_ids):
        ids = [str(i) for i in item_ids]
        rows = [self.item_row(i) for i in ids]
        unknown = [i for i, r in zip(ids, rows) if r < 0]
        if unknown:
            raise KeyError("unknown item(s): " + ", ".join(unknown))
        return np.asarray(rows, dtype=np.int32)

    def _ranked(self, rows, scores, source):
        return Ranked([self.item_ids[r] for r in rows], np.asarray(scores, dtype=np.float32),
                      np.asarray(rows, dtype=np.int32), source)

    # ---- recommending --------------------------------------------------------------------------

    def recommend(self, user_id, n=20, filter_seen=True):
        """The top n for a user by x_u . y_i, leaving out their training items (unless
        filter_seen is False). An unknown user or one without training history gets the popular
        list (source "popular"), exactly as mfrec_recommend --user."""
        n = _check_n(n)
        row = self.user_row(user_id)
        if not self.has_history(row):
            return self.popular(n)
        scores = self.item_factors @ self.user_factors[row]
        indptr, indices, _ = self.seen
        exclude = indices[indptr[row]:indptr[row + 1]] if filter_seen else ()
        top = top_n(scores, exclude, n)
        return self._ranked(top, scores[top], "model")

    def popular(self, n=20, exclude=()):
        """The n items with the most distinct training users (ties: the smaller row), leaving out
        the item ids in `exclude`; scores are those counts."""
        n = _check_n(n)
        ranking = self.popularity_ranking
        if len(exclude):
            ranking = ranking[~np.isin(ranking, self._rows_of(exclude))]
        top = ranking[:n]
        return self._ranked(top, self.popularity_count[top].astype(np.float32), "popular")

    def similar_items(self, item_id, n=20):
        """The n items most similar to item_id by cosine of item factors, the item itself left
        out (unlike implicit's similar_items, which lists it first). KeyError for an unknown id."""
        n = _check_n(n)
        r = self.item_row(item_id)
        if r < 0:
            raise KeyError(f"unknown item '{item_id}'")
        scores = self._item_unit @ self._item_unit[r]
        top = top_n(scores, [r], n)
        return self._ranked(top, scores[top], "similar")

    def recalculate_user(self, item_ids, weights=None):
        """Fold-in: the factors (float32 [factors]) of a new user who interacted with item_ids,
        each an observation of weight 1 or weights[k] (> 0; repeats add up), from one exact ALS
        half-step against the fixed item factors with the model's own alpha, regularization and
        confidence rule (src/als_kernels.cpp):
            (Y^T Y + Y^T (C - I) Y + lambda_u I) x = Y^T C p
        with c = 1 + alpha r ("hu") or alpha r ("implicit"), p = 1 on the items, and
        lambda_u = lambda * (distinct items) under scale_regularization."""
        rows = self._rows_of(item_ids)
        if rows.size == 0:
            raise ValueError("fold-in needs at least one item")
        if weights is None:
            w = np.ones(rows.size, np.float32)
        else:
            w = np.asarray(weights, dtype=np.float32).reshape(-1)
            if w.size != rows.size:
                raise ValueError(f"fold-in: {w.size} weights for {rows.size} items")
            if not np.all(np.isfinite(w) & (w > 0)):
                raise ValueError("fold-in: weights must be finite and positive")
        # Sum repeats in float, in the C++ order (sorted by item, then weight).
        r = {}
        for i, x in sorted(zip(rows.tolist(), w.tolist())):
            r[i] = np.float32(r.get(i, np.float32(0)) + np.float32(x))
        items = np.fromiter(r.keys(), dtype=np.int64, count=len(r))
        obs = np.fromiter(r.values(), dtype=np.float32, count=len(r))
        alpha = np.float32(self.params["alpha"])
        c = (np.float32(1) + alpha * obs) if self.params["confidence"] == "hu" else alpha * obs
        p = (obs > 0).astype(np.float32)
        lam = np.float32(self.params["regularization"])
        if self.params["scale_regularization"]:
            lam = lam * np.float32(items.size)
        y = self.item_factors[items].astype(np.float64)
        a = self._yty + float(lam) * np.eye(self.factors) + (y.T * (c.astype(np.float64) - 1)) @ y
        b = y.T @ (c * p).astype(np.float64)
        try:
            x = np.linalg.solve(a, b)
        except np.linalg.LinAlgError:
            raise ValueError("fold-in: the system is singular for this history") from None
        return x.astype(np.float32)

    def fold_in(self, item_ids, weights=None, n=20):
        """The top n for a new user with this history (recalculate_user), leaving out the history
        items: mfrec_recommend --history / POST /recommendations (source "fold-in")."""
        n = _check_n(n)
        x = self.recalculate_user(item_ids, weights)
        scores = self.item_factors @ x
        top = top_n(scores, self._rows_of(item_ids), n)
        return self._ranked(top, scores[top], "fold-in")

    # ---- export --------------------------------------------------------------------------------

    def to_implicit(self):
        """The factors and id maps in the layout `implicit` expects (see ImplicitArrays); copies,
        so changing them does not change this model."""
        indptr, indices, data = self.seen
        return ImplicitArrays(
            user_factors=np.array(self.user_factors, dtype=np.float32, order="C"),
            item_factors=np.array(self.item_factors, dtype=np.float32, order="C"),
            user_ids=list(self.user_ids), item_ids=list(self.item_ids),
            user_index=dict(self.user_index), item_index=dict(self.item_index),
            user_items=(data.copy(), indices.copy(), indptr.copy()), shape=(self.n_users, self.n_items),
            kwargs={k: self.params[k] for k in ("factors", "regularization", "alpha")})

    def __repr__(self):
        return (f"<mfrec.Model {self.source.describe()}: {self.n_users} users, {self.n_items} items, "
                f"{self.factors} factors>")
