#include "mfrec/affinity.hpp"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "mfrec/comm.hpp"

namespace mfrec {

std::string format_cpu_list(const CpuList& cpus) {
  std::string out;
  for (std::size_t i = 0; i < cpus.size();) {
    std::size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(cpus[i]);
    if (j > i) out += '-' + std::to_string(cpus[j]);
    i = j + 1;
  }
  return out;
}

namespace {

bool overlap(const CpuList& a, const CpuList& b) {
  std::size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (a[i] == b[j]) return true;
    if (a[i] < b[j]) ++i;
    else ++j;
  }
  return false;
}

}  // namespace

int ranks_sharing(const CpuList& mine, const std::vector<CpuList>& node_masks) {
  const auto n = std::count_if(node_masks.begin(), node_masks.end(), [&](const CpuList& m) { return overlap(mine, m); });
  return std::max(1, static_cast<int>(n));  // `mine` is among node_masks; an empty mask overlaps nothing
}

int threads_for_mask(const CpuList& mine, const std::vector<CpuList>& node_masks) {
  return std::max(1, static_cast<int>(mine.size()) / ranks_sharing(mine, node_masks));
}

std::vector<std::uint64_t> cpu_bits(const CpuList& cpus, std::size_t words) {
  std::vector<std::uint64_t> bits(words, 0);
  for (int c : cpus) {
    const auto w = static_cast<std::size_t>(c) / 64;
    if (c >= 0 && w < words) bits[w] |= std::uint64_t{1} << (static_cast<unsigned>(c) % 64);
  }
  return bits;
}

CpuList cpus_from_bits(const std::uint64_t* bits, std::size_t words) {
  CpuList cpus;
  for (std::size_t w = 0; w < words; ++w)
    for (unsigned b = 0; b < 64; ++b)
      if (bits[w] >> b & 1) cpus.push_back(static_cast<int>(w * 64 + b));
  return cpus;
}

CpuList process_cpus() {
  // The mask may be wider than cpu_set_t's 1024 CPUs: grow it until the kernel accepts it.
  for (int n = 1024; n <= (1 << 20); n *= 2) {
    cpu_set_t* set = CPU_ALLOC(n);
    if (set == nullptr) break;
    const std::size_t size = CPU_ALLOC_SIZE(n);
    CPU_ZERO_S(size, set);
    const int rc = sched_getaffinity(0, size, set), err = errno;
    if (rc == 0) {
      CpuList cpus;
      for (int c = 0; c < n; ++c)
        if (CPU_ISSET_S(c, size, set)) cpus.push_back(c);
      CPU_FREE(set);
      if (!cpus.empty()) return cpus;
      break;
    }
    CPU_FREE(set);
    if (err != EINVAL) break;  // EINVAL: the mask is wider than n CPUs
  }
  CpuList all(std::max(1u, std::thread::hardware_concurrency()));
  for (std::size_t c = 0; c < all.size(); ++c) all[c] = static_cast<int>(c);
  return all;
}

namespace {

// Collective over `comm`: every rank's mask, in rank order.
std::vector<CpuList> gather_masks(const Comm& comm, const CpuList& mine) {
  const std::size_t words =
      static_cast<std::size_t>(comm.max<std::int64_t>(mine.empty() ? 1 : mine.back() / 64 + 1));
  const std::vector<std::uint64_t> bits = cpu_bits(mine, words);
  std::vector<std::uint64_t> all(words * static_cast<std::size_t>(comm.size()));
  comm.allgatherv_rows(bits.data(), 1, std::vector<std::int64_t>(static_cast<std::size_t>(comm.size()), 1),
                       static_cast<std::int64_t>(words), all.data());
  std::vector<CpuList> masks;
  for (int r = 0; r < comm.size(); ++r) masks.push_back(cpus_from_bits(all.data() + static_cast<std::size_t>(r) * words, words));
  return masks;
}

struct Placement {
  ThreadBinding binding;
  int node_cpus_used = 0;  // the union of the node's masks
  int node_ranks = 1;
  bool node_first = true;
  bool node_oversubscribed = false;  // some rank of the node runs more threads than its share
  std::string example;               // one oversubscribed rank of the node, for the warning
};

// Collective: this rank's mask, its node peers', and the threads.
Placement place(const Comm& comm, int requested) {
  Placement p;
  ThreadBinding& b = p.binding;
  b.cores = process_cpus();
  Comm node = comm.split_shared();
  const std::vector<CpuList> masks = gather_masks(node, b.cores);
  b.sharing = ranks_sharing(b.cores, masks);
  const int share = threads_for_mask(b.cores, masks);
  b.requested = requested > 0;
  b.threads = b.requested ? requested : share;
  CpuList used;
  for (const CpuList& m : masks) used.insert(used.end(), m.begin(), m.end());
  std::sort(used.begin(), used.end());
  p.node_cpus_used = static_cast<int>(std::unique(used.begin(), used.end()) - used.begin());
  p.node_ranks = node.size();
  p.node_first = node.is_root();
  const bool over = b.threads > share;
  p.node_oversubscribed = node.any(over);
  const int who = node.min<int>(over ? node.rank() : node.size());
  if (p.node_oversubscribed)
    p.example = node.bcast(fmt::format("rank {}: cores {} ({}{}), {} by default", comm.rank(), format_cpu_list(b.cores),
                                       b.cores.size(), b.sharing > 1 ? fmt::format(", shared by {} ranks", b.sharing) : "",
                                       share),
                           who);
  return p;
}

std::string describe(int rank, const ThreadBinding& b) {
  return fmt::format("rank {}: cores {} ({}{}), {} thread{}{}", rank, format_cpu_list(b.cores), b.cores.size(),
                     b.sharing > 1 ? fmt::format(", shared by {} ranks", b.sharing) : "", b.threads,
                     b.threads > 1 ? "s" : "", b.requested ? " (--threads)" : "");
}

}  // namespace

ThreadBinding bind_threads(const Comm& comm, int requested) {
  const Placement p = place(comm, requested);
  const ThreadBinding& b = p.binding;
  const int tmin = comm.min(b.threads), tmax = comm.max(b.threads);
  const int cmin = comm.min(static_cast<int>(b.cores.size())), cmax = comm.max(static_cast<int>(b.cores.size()));
  if (comm.is_root()) {
    std::string line = describe(comm.rank(), b);
    if (comm.size() > 1)
      line += fmt::format("; each of the {} ranks: {} core{}, {} thread{}", comm.size(),
                          cmin == cmax ? std::to_string(cmin) : fmt::format("{}-{}", cmin, cmax), cmax > 1 ? "s" : "",
                          tmin == tmax ? std::to_string(tmin) : fmt::format("{}-{}", tmin, tmax), tmax > 1 ? "s" : "");
    spdlog::info("{}", line);
    // Open MPI binds each rank to one core by default with -n 1 or 2: say how to use the rest.
    const int online = static_cast<int>(std::thread::hardware_concurrency());
    const char* bound = std::getenv("OMPI_MCA_orte_bound_at_launch");
    if (bound != nullptr && std::strcmp(bound, "1") == 0 && online > p.node_cpus_used && !b.requested)
      spdlog::info("mpirun bound the {} rank{} on this node to {} of its {} CPUs: add --bind-to none (or "
                   "--map-by slot:PE=<cores per rank>) to use them all",
                   p.node_ranks, p.node_ranks > 1 ? "s" : "", p.node_cpus_used, online);
  }
  if (p.node_first && p.node_oversubscribed)
    spdlog::warn("--threads {} exceeds the cores a rank may use ({}): threads will share cores; omit --threads "
                 "for the default",
                 requested, p.example);
  return b;
}

int default_threads(const Comm& comm) { return place(comm, 0).binding.threads; }

nlohmann::json binding_report(const Comm& comm, const ThreadBinding& mine) {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  const std::size_t host_width = sizeof host;
  std::vector<char> hosts(host_width * static_cast<std::size_t>(comm.size()));
  const std::vector<std::int64_t> one(static_cast<std::size_t>(comm.size()), 1);
  comm.allgatherv_rows(host, 1, one, static_cast<std::int64_t>(host_width), hosts.data());
  const std::vector<CpuList> masks = gather_masks(comm, mine.cores);
  const std::vector<std::int64_t> sharing = comm.allgather_counts(mine.sharing);
  const std::vector<std::int64_t> threads = comm.allgather_counts(mine.threads);
  if (!comm.is_root()) return nullptr;
  nlohmann::json j;
  nlohmann::json ranks = nlohmann::json::array();
  std::int64_t tmin = threads[0], tmax = threads[0];
  std::size_t cmin = masks[0].size(), cmax = masks[0].size();
  for (std::size_t r = 0; r < masks.size(); ++r) {
    ranks.push_back({{"rank", r},
                     {"host", std::string(hosts.data() + r * host_width)},
                     {"cores", format_cpu_list(masks[r])},
                     {"n_cores", masks[r].size()},
                     {"sharing", sharing[r]},
                     {"threads", threads[r]}});
    tmin = std::min(tmin, threads[r]);
    tmax = std::max(tmax, threads[r]);
    cmin = std::min(cmin, masks[r].size());
    cmax = std::max(cmax, masks[r].size());
  }
  j["threads"] = {{"min", tmin}, {"max", tmax}};
  j["cores"] = {{"min", cmin}, {"max", cmax}};
  j["requested"] = mine.requested;
  j["ranks"] = std::move(ranks);
  return j;
}

}  // namespace mfrec
