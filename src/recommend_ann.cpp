// The Recommender's ANN index: when a load uses one (the --ann policy), where it is found, and
// the checks that it belongs to the model (ann.hpp, docs/serving.md).
#include <sys/stat.h>

#include <spdlog/spdlog.h>

#include "mfrec/error.hpp"
#include "mfrec/recommend.hpp"
#include "mfrec/registry.hpp"

namespace mfrec {

namespace {

// The index a load should search with, or null for exact search.
std::shared_ptr<const AnnIndex> load_ann(const ModelSource& s, const AnnConfig& c, const FactorMatrix& items) {
  const Index n = items.rows();
  if (c.mode == AnnMode::kOff || (c.mode == AnnMode::kAuto && n <= c.threshold)) return nullptr;
  const bool registry = !s.name.empty() && c.index.empty();
  const std::string path = !c.index.empty() ? c.index : registry ? s.ann_path : ann_index_path(s.path);
  struct stat st {};
  if (path.empty() || ::stat(path.c_str(), &st) != 0) {
    const std::string what = path.empty() ? s.name + ":" + std::to_string(s.version) + " has no ANN index in the registry"
                                          : path + ": no ANN index";
    const std::string hint = registry ? "mfrec_registry build-index " + s.name + ":" + std::to_string(s.version)
                                      : "mfrec_registry build-index --model " + s.path;
    if (c.mode == AnnMode::kOn) throw InputError(what + " (--ann on); build it with: " + hint);
    // auto: an index is an optimisation; without one, exact search still answers correctly.
    spdlog::warn("{} for {} items (--ann auto, threshold {}): exact search; build it with: {}", what, n, c.threshold,
                 hint);
    return nullptr;
  }
  if (registry) {
    const std::string sum = file_checksum(path);
    if (sum != s.ann_checksum)
      throw InputError(path + ": checksum mismatch for the ANN index of " + s.name + ":" + std::to_string(s.version) +
                       " (file " + sum + ", index " + s.ann_checksum + "); refusing to load it");
  }
  auto index = std::make_shared<AnnIndex>(AnnIndex::load(path, items));
  index->set_ef(c.ef);
  spdlog::info("ANN index {}: {} items, M {}, metric {}, ef {}", path, index->n_items(), index->params().m,
               index->params().metric, index->ef());
  return index;
}

}  // namespace

Recommender::Recommender(Model model, ModelSource source, std::shared_ptr<const AnnIndex> ann)
    : Recommender(std::move(model), std::move(source)) {
  if (ann && (ann->n_items() != n_items() || ann->factors() != model_.item_factors.cols() ||
              ann->fingerprint() != item_fingerprint(model_.item_factors)))
    throw InputError(source_.path + ": the ANN index was built for other item factors");
  ann_ = std::move(ann);
}

std::shared_ptr<const Recommender> Recommender::load(const ModelSource& source, const AnnConfig& ann) {
  Model m = read_model(source.path);  // checked by read_model
  auto index = load_ann(source, ann, m.item_factors);
  auto r = std::shared_ptr<Recommender>(new Recommender(std::move(m), source, Checked{}));
  r->ann_ = std::move(index);
  return r;
}

std::string Recommender::search_name() const {
  return ann_ ? "ann (ef " + std::to_string(ann_->ef()) + ")" : std::string("exact");
}

}  // namespace mfrec
