// OpenMP threads per rank from the process's CPU affinity mask (the cores mpirun or srun bound
// it to), so `mpirun -n 1` bound to one core does not run two threads on that core, and ranks
// sharing a mask (--bind-to none) split it instead of each taking all of it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace mfrec {

class Comm;

using CpuList = std::vector<int>;  // CPU ids, ascending, no duplicates

// ---- pure --------------------------------------------------------------------------------------

// "0-3,8,10-11"; "" for an empty list.
std::string format_cpu_list(const CpuList& cpus);

// The default threads of a rank bound to `mine`, given the masks of all ranks on its node
// (itself included): its cores divided by the ranks whose masks overlap it, at least 1.
// Ranks bound to disjoint cores each get their own mask's count.
int threads_for_mask(const CpuList& mine, const std::vector<CpuList>& node_masks);

// The ranks among node_masks whose masks share a core with `mine` (at least 1: itself).
int ranks_sharing(const CpuList& mine, const std::vector<CpuList>& node_masks);

// Masks as fixed-width bit rows (64 CPUs a word), to travel in one allgather.
std::vector<std::uint64_t> cpu_bits(const CpuList& cpus, std::size_t words);
CpuList cpus_from_bits(const std::uint64_t* bits, std::size_t words);

// ---- this process ------------------------------------------------------------------------------

// The CPUs this process may run on (sched_getaffinity); 0..hardware_concurrency-1 if unknown.
CpuList process_cpus();

// ---- over the ranks ----------------------------------------------------------------------------

struct ThreadBinding {
  CpuList cores;          // this rank's affinity mask
  int sharing = 1;        // ranks on this node whose masks overlap it (itself included)
  int threads = 1;        // OpenMP threads this rank uses
  bool requested = false; // threads came from --threads, not the default
};

// Collective: `requested` threads (> 0), or the default from the masks of the node's ranks.
// Logs this rank's binding on rank 0 ("rank 0: cores 0-1 (2), 2 threads"), and warns once per
// node (its first rank) when --threads exceeds the cores a rank there may use.
ThreadBinding bind_threads(const Comm& comm, int requested);

// Default OpenMP threads per rank (bind_threads without --threads, and without logging).
// Collective.
int default_threads(const Comm& comm);

// Collective: the binding of every rank for a run report (full on rank 0, null elsewhere):
// {"threads": {"min","max"}, "cores": {"min","max"}, "requested": bool,
//  "ranks": [{"rank", "host", "cores": "0-1", "n_cores", "sharing", "threads"}, ...]}.
nlohmann::json binding_report(const Comm& comm, const ThreadBinding& mine);

}  // namespace mfrec
