"""mfrec from Python: load a trained model (a file or a registry spec) and get the same
recommendations as mfrec_recommend and mfrec_serve, or hand its factors to `implicit`.

    import mfrec
    m = mfrec.load("retail-als@production", registry="registry")   # or mfrec.load("model.h5")
    m.recommend("12345", n=10).ids           # unknown users get the popular list
    m.similar_items(m.item_ids[0], n=5)
    m.fold_in(["ITEM1", "ITEM2"], weights=[1, 5], n=10)   # a new user, no retraining

Needs numpy and h5py only. See docs/python.md.
"""
from .errors import ModelError
from .model import ImplicitArrays, Model, Ranked, top_n
from .registry import Source, file_checksum, find, parse_spec, read_index, resolve

__all__ = ["load", "Model", "Ranked", "ImplicitArrays", "ModelError", "Source", "find", "resolve",
           "parse_spec", "read_index", "file_checksum", "top_n"]


def load(model, registry=None):
    """A Model from a file path, or, with `registry` (a registry directory), from a spec: NAME
    (the latest version), NAME:VERSION or NAME@STAGE, its file verified against the index's
    CRC-32 first. Errors: ModelError (not a model, checksum mismatch, malformed index),
    ValueError (malformed spec), LookupError (unknown name, version or stage),
    FileNotFoundError (missing registry)."""
    if registry is None:
        return Model(model)
    src = resolve(registry, model)
    return Model(src.path, source=src)
