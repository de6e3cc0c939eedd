// The ANN options mfrec_serve and mfrec_recommend share (ann.hpp).
#include "mfrec/ann.hpp"
#include "mfrec/config.hpp"

namespace mfrec {

void declare_ann_options(Cli& cli, AnnOptions& o) {
  cli.option("ann", &o.mode,
             "approximate search (the model's ANN index) for top N, fold-in and similar items: off, on (the index "
             "must exist) or auto (on above --ann-threshold items when the index exists)")
      .option("ann-threshold", &o.threshold, "--ann auto: use the index for catalogues of more items than this")
      .option("ann-ef", &o.ef, "ANN search candidate list (larger: better recall, slower; at least N + seen items)")
      .path("ann-index", &o.index, PathRole::InputFile,
            "the ANN index file (default: the registry entry's, or the model path with .ann for .h5)");
}

AnnConfig ann_config(const AnnOptions& o) {
  AnnConfig c;
  c.mode = parse_ann_mode(o.mode);
  c.threshold = o.threshold;
  c.ef = o.ef;
  c.index = o.index;
  check_ann_config(c);
  return c;
}

}  // namespace mfrec
