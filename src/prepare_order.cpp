// The prepared file's order of items and users (mfrec_prep --item-order, --user-order), for the
// trainer's locality: items grouped by category, users grouped by their main category.
#include <algorithm>
#include <numeric>
#include <string>
#include <tuple>
#include <vector>

#include "mfrec/comm.hpp"
#include "mfrec/config.hpp"
#include "mfrec/partition.hpp"
#include "mfrec/prepare_matrix.hpp"
#include "mfrec/prepare_steps.hpp"

namespace mfrec::prepare {
namespace {

// ConfigError naming `option` unless the items have categories.
void require_categories(const dataset::ItemTable& t, const std::string& input, const char* option) {
  const bool any = t.category.size() == t.size() &&
                   std::any_of(t.category.begin(), t.category.end(), [](const std::string& c) { return !c.empty(); });
  require_option(any, option, "category needs the items' categories: " + input +
                                  " has none (a CSV input needs --items with a category column)");
}

// The items in (category, style, input order) order: order[k] = the k-th item.
std::vector<std::int32_t> category_order(const dataset::ItemTable& t) {
  std::vector<std::int32_t> order(t.size());
  std::iota(order.begin(), order.end(), 0);
  static const std::string none;
  auto field = [&](const std::vector<std::string>& column, std::int32_t i) -> const std::string& {
    return column.size() == t.size() ? column[static_cast<std::size_t>(i)] : none;
  };
  std::stable_sort(order.begin(), order.end(), [&](std::int32_t a, std::int32_t b) {
    return std::forward_as_tuple(field(t.category, a), field(t.style, a)) <
           std::forward_as_tuple(field(t.category, b), field(t.style, b));
  });
  return order;
}

// Collective: this rank's strings (one per element, in its rows' order) sent to the owners of
// their new rows `to` under `bounds`; returns this rank's rows of the new order.
std::vector<std::string> route_strings(const std::vector<std::string>& values, const std::vector<Index>& to,
                                       const Bounds& bounds, const Comm& comm) {
  const int p = comm.size(), rank = comm.rank();
  std::vector<std::size_t> idx(values.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return to[a] < to[b]; });
  std::vector<std::int64_t> head, head_counts(p, 0), char_counts(p, 0);  // head: (row, length) pairs
  std::vector<char> chars;
  for (std::size_t i : idx) {
    const int r = owner_of(bounds, to[i]);
    head.push_back(to[i]);
    head.push_back(static_cast<std::int64_t>(values[i].size()));
    head_counts[r] += 2;
    char_counts[r] += static_cast<std::int64_t>(values[i].size());
    chars.insert(chars.end(), values[i].begin(), values[i].end());
  }
  const std::vector<std::int64_t> got = comm.alltoallv(head, head_counts);
  const std::vector<char> text = comm.alltoallv(chars, char_counts);
  std::vector<std::string> out(static_cast<std::size_t>(bounds[rank + 1] - bounds[rank]));
  std::size_t at = 0;
  for (std::size_t k = 0; k < got.size(); k += 2) {
    const auto len = static_cast<std::size_t>(got[k + 1]);
    out[static_cast<std::size_t>(got[k] - bounds[rank])].assign(text.data() + at, len);
    at += len;
  }
  return out;
}

}  // namespace

void order_items_by_category(Loaded& L, const std::string& input) {
  dataset::ItemTable& t = L.items;
  require_categories(t, input, "item-order");
  const std::vector<std::int32_t> order = category_order(t);  // order[new] = old
  std::vector<std::int32_t> renumber(order.size());
  for (std::size_t k = 0; k < order.size(); ++k) renumber[static_cast<std::size_t>(order[k])] = static_cast<std::int32_t>(k);
  for (auto& c : L.records.col) c = renumber[static_cast<std::size_t>(c)];
  auto permute = [&](auto& column) {
    if (column.size() != order.size()) return;  // a column the table does not have
    auto old = std::move(column);
    column.clear();
    for (std::int32_t k : order) column.push_back(std::move(old[static_cast<std::size_t>(k)]));
  };
  permute(t.id), permute(t.name), permute(t.category), permute(t.style), permute(t.description),
      permute(t.gender_affinity), permute(t.price);
}

void order_users_by_category(Loaded& L, const std::string& input, const Comm& comm) {
  const dataset::ItemTable& t = L.items;
  require_categories(t, input, "user-order");
  // Each item's place in the category order, and the category number of each place.
  const std::vector<std::int32_t> order = category_order(t);
  std::vector<std::int32_t> place(order.size()), code(order.size());
  for (std::size_t k = 0, c = 0; k < order.size(); ++k) {
    if (k > 0 && t.category[static_cast<std::size_t>(order[k])] != t.category[static_cast<std::size_t>(order[k - 1])]) ++c;
    place[static_cast<std::size_t>(order[k])] = static_cast<std::int32_t>(k);
    code[k] = static_cast<std::int32_t>(c);
  }
  // This rank's users' records grouped by user (a counting sort of the items' places).
  const int rank = comm.rank();
  const Index first = L.users[rank], n = L.users[rank + 1] - first;
  const Index n_items = static_cast<Index>(order.size());
  std::vector<std::int64_t> start(static_cast<std::size_t>(n) + 1, 0);
  for (const std::int64_t u : L.records.row) ++start[static_cast<std::size_t>(u - first) + 1];
  std::partial_sum(start.begin(), start.end(), start.begin());
  std::vector<std::int32_t> places(L.records.size());
  {
    std::vector<std::int64_t> fill(start.begin(), start.end() - 1);
    for (std::size_t i = 0; i < L.records.size(); ++i)
      places[static_cast<std::size_t>(fill[static_cast<std::size_t>(L.records.row[i] - first)]++)] =
          place[static_cast<std::size_t>(L.records.col[i])];
  }
  // A user's key: the first item, in category order, of the category most of its items are in
  // (ties: the earlier category); users without records last. Users sort by (key, old index).
  std::vector<std::int64_t> key(static_cast<std::size_t>(n), n_items);
  for (Index u = 0; u < n; ++u) {
    auto b = places.begin() + start[static_cast<std::size_t>(u)], e = places.begin() + start[static_cast<std::size_t>(u) + 1];
    std::sort(b, e);
    e = std::unique(b, e);  // a user's items, not its events: what the solver reads
    std::int64_t best = 0;
    for (auto run = b; run != e;) {
      const std::int32_t c = code[static_cast<std::size_t>(*run)];
      auto end = std::find_if(run, e, [&](std::int32_t q) { return code[static_cast<std::size_t>(q)] != c; });
      if (end - run > best) best = end - run, key[static_cast<std::size_t>(u)] = *run;
      run = end;
    }
  }
  places = {};
  // New index = users with a smaller key anywhere + users with this key on lower ranks + those
  // before it here: the same order for any number of ranks.
  std::vector<std::int64_t> count(static_cast<std::size_t>(n_items) + 1, 0);
  for (const std::int64_t k : key) ++count[static_cast<std::size_t>(k)];
  std::vector<std::int64_t> below = count;
  comm.exscan_sum(below.data(), below.size());
  comm.allreduce_sum(count.data(), count.size());
  std::int64_t total = 0;
  for (std::size_t k = 0; k < count.size(); ++k) {
    below[k] += total;
    total += count[k];
  }
  std::vector<Index> renumber(static_cast<std::size_t>(n));
  for (Index u = 0; u < n; ++u) renumber[static_cast<std::size_t>(u)] = below[static_cast<std::size_t>(key[static_cast<std::size_t>(u)])]++;

  for (auto& u : L.records.row) u = renumber[static_cast<std::size_t>(u - first)];
  Triplets routed;
  route(L.records, L.users, routed, comm, comm.any(!L.records.time.empty()));
  L.records = std::move(routed);
  L.user_ids = route_strings(L.user_ids, renumber, L.users, comm);
  for (auto& column : L.user_values) column = route_strings(column, renumber, L.users, comm);
}

}  // namespace mfrec::prepare
