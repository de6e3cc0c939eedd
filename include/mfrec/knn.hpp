// The item-kNN baseline, as `implicit`'s CosineRecommender (an ItemItemRecommender on the
// row-normalised item vectors): sim(i, j) = cosine of the columns i and j of the training matrix
// (user x item, the stored confidences r_ui; cosine does not change with alpha's scale); each
// item keeps its top k neighbours (itself included, as in `implicit`, where it is always the
// first: sim(i, i) = 1). A user's score for item j is sum over the user's items i of
// r_ui * sim(i, j), over the neighbours kept for i. Definitions: docs/metrics.md.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "mfrec/types.hpp"

namespace mfrec {

class Comm;
struct TrainData;

// Every item's neighbour list: a CSR matrix (n_items x n_items), row i = i's neighbours by
// descending similarity (ties: smaller item first), at most k of them. Empty (n_items 0) = none.
struct ItemNeighbours {
  Index n_items = 0;
  int k = 0;
  std::vector<std::int64_t> indptr{0};
  std::vector<std::int32_t> indices;
  std::vector<Real> data;
  bool empty() const { return n_items == 0; }
};

// Default neighbours per item (`implicit`'s K).
inline constexpr int kDefaultKnnK = 20;

// Pure: the neighbour lists of the items of `item_rows` (item x user rows, e.g. a rank's rows of
// /matrix/train_by_item), given every user needed: user_rows' rows are the users listed in
// `user_ids` (sorted ascending; every user of item_rows must be there), their columns items.
// `item_norm` holds every item's Euclidean norm. Computed in double, over `threads` OpenMP
// threads; the result depends on neither the threads nor how the items are split.
ItemNeighbours item_neighbours_rows(const CsrBlock& item_rows, const CsrBlock& user_rows,
                                    const std::vector<Index>& user_ids, const std::vector<double>& item_norm,
                                    int k, int threads);

// Collective over comm: every rank computes the lists of its items (data.items' rows), fetching
// only the rows of the users of those items from their owners; the lists are then gathered, so
// every rank returns all of them. The result does not depend on the number of ranks. k >= 1.
ItemNeighbours item_knn(const Comm& comm, const TrainData& data, int k, int threads);

// A user's kNN scores over every item (out: n_items values): sum of r_ui * sim(i, j) over the
// user's `items` (with `values` r_ui). Items with no kNN score get `pad`'s value minus 1 (pad in
// [0, 1): below every kNN score, which is > 0, so unscored items follow in pad's order; pass
// popularity_pad() to pad with the popular list, as the evaluation and the recommender do).
void knn_scores(const ItemNeighbours& nb, const std::int32_t* items, const Real* values, Index n,
                const std::vector<Real>& pad, Real* out);
// Popularity counts as pad values in [0, 1) for knn_scores (same order as popularity_ranking,
// with top_k_excluding's smaller-index tie-break).
std::vector<Real> popularity_pad(const std::vector<Index>& counts);

// Checks a neighbour matrix read from a file: shapes, indices in range, finite values;
// InputError naming `what` otherwise.
void check_item_neighbours(const ItemNeighbours& nb, const std::string& what);

}  // namespace mfrec
