#include "mfrec/comm.hpp"

#include <limits>

#include <climits>
#include <cstdio>
#include <exception>
#include <utility>

namespace mfrec {

void check_mpi(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  throw CommError(std::string(what) + " failed: " + std::string(text, static_cast<std::size_t>(len)));
}

int Comm::checked_count(std::size_t n) {
  if (n > static_cast<std::size_t>(INT_MAX))
    throw CommError("message of " + std::to_string(n) + " elements exceeds MPI's int count");
  return static_cast<int>(n);
}

Comm::RowType::RowType(std::int64_t width, MPI_Datatype value) {
  check_mpi(MPI_Type_contiguous(checked_count(static_cast<std::size_t>(width)), value, &type), "MPI_Type_contiguous");
  if (int rc = MPI_Type_commit(&type); rc != MPI_SUCCESS) {
    MPI_Type_free(&type);
    check_mpi(rc, "MPI_Type_commit");
  }
}

Comm::Comm(MPI_Comm comm, bool owned) : comm_(comm), owned_(owned) {
  check_mpi(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
  check_mpi(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
}

Comm Comm::world() { return Comm(MPI_COMM_WORLD, false); }

Comm::Comm(Comm&& other) noexcept
    : comm_(std::exchange(other.comm_, MPI_COMM_NULL)), owned_(std::exchange(other.owned_, false)),
      rank_(other.rank_), size_(other.size_), traffic_(other.traffic_) {}

Comm& Comm::operator=(Comm&& other) noexcept {
  if (this != &other) {
    if (owned_ && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
    comm_ = std::exchange(other.comm_, MPI_COMM_NULL);
    owned_ = std::exchange(other.owned_, false);
    rank_ = other.rank_;
    size_ = other.size_;
    traffic_ = other.traffic_;
  }
  return *this;
}

Comm::~Comm() {
  // Freeing is local, never a collective wait; MPI may already be finalised on the error path.
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (owned_ && comm_ != MPI_COMM_NULL && !finalized) MPI_Comm_free(&comm_);
}

Comm Comm::split(int color, int key) const {
  MPI_Comm out;
  check_mpi(MPI_Comm_split(comm_, color, key, &out), "MPI_Comm_split");
  check_mpi(MPI_Comm_set_errhandler(out, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  return Comm(out, true);
}

Comm Comm::split_shared() const {
  MPI_Comm out;
  check_mpi(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &out), "MPI_Comm_split_type");
  check_mpi(MPI_Comm_set_errhandler(out, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  return Comm(out, true);
}

void Comm::barrier() const { check_mpi(MPI_Barrier(comm_), "MPI_Barrier"); }

std::string Comm::bcast(const std::string& s, int root) const {
  std::int64_t n = static_cast<std::int64_t>(s.size());
  bcast(&n, 1, root);
  std::string out = rank_ == root ? s : std::string(static_cast<std::size_t>(n), '\0');
  if (n > 0) bcast(out.data(), out.size(), root);
  return out;
}

std::vector<std::int64_t> Comm::allgather_counts(std::int64_t n_local) const {
  std::vector<std::int64_t> out(static_cast<std::size_t>(size_));
  check_mpi(MPI_Allgather(&n_local, 1, MPI_INT64_T, out.data(), 1, MPI_INT64_T, comm_), "MPI_Allgather");
  return out;
}

std::string agree(const Comm& comm, const std::string& local_error, std::int64_t key) {
  const std::int64_t none = std::numeric_limits<std::int64_t>::max();
  const std::int64_t min_key = comm.min<std::int64_t>(local_error.empty() ? none : key);
  if (min_key == none) return {};
  const int root = comm.min<int>(!local_error.empty() && key == min_key ? comm.rank() : comm.size());
  return comm.bcast(local_error, root);
}

void check_agreed(const Comm& comm, const std::string& local_error, std::int64_t key) {
  const std::string msg = agree(comm, local_error, key);
  if (msg.empty()) return;
  // Only an error every process agreed on may end the program quietly. Inside a smaller
  // communicator (a grid group) the other processes would wait for this one: abort instead.
  int world = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  if (comm.size() == world) throw AgreedError(msg);
  throw Error(msg);
}

std::vector<std::string> bcast_strings(const std::vector<std::string>& v, const Comm& comm) {
  std::int64_t n = static_cast<std::int64_t>(v.size());
  comm.bcast(&n, 1);
  std::vector<std::int64_t> len(static_cast<std::size_t>(n));
  std::string chars;
  if (comm.is_root()) {
    for (std::size_t i = 0; i < v.size(); ++i) {
      len[i] = static_cast<std::int64_t>(v[i].size());
      chars += v[i];
    }
  }
  if (n > 0) comm.bcast(len.data(), len.size());
  chars = comm.bcast(chars);
  std::vector<std::string> out(static_cast<std::size_t>(n));
  std::size_t pos = 0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    out[i] = chars.substr(pos, static_cast<std::size_t>(len[i]));
    pos += static_cast<std::size_t>(len[i]);
  }
  return out;
}

std::vector<std::string> scatter_strings(const std::vector<std::string>& all, const std::vector<std::int64_t>& b,
                                         const Comm& comm) {
  const int p = comm.size();
  std::vector<std::int64_t> len_counts(p, 0), char_counts(p, 0), lens;
  std::vector<char> chars;
  if (comm.is_root()) {
    for (int r = 0; r < p; ++r) {
      len_counts[r] = b[r + 1] - b[r];
      for (std::int64_t i = b[r]; i < b[r + 1]; ++i) {
        const std::string& s = all[static_cast<std::size_t>(i)];
        lens.push_back(static_cast<std::int64_t>(s.size()));
        chars.insert(chars.end(), s.begin(), s.end());
        char_counts[r] += static_cast<std::int64_t>(s.size());
      }
    }
  }
  std::vector<std::int64_t> my_lens = comm.alltoallv(lens, len_counts);
  std::vector<char> my_chars = comm.alltoallv(chars, char_counts);
  std::vector<std::string> out(my_lens.size());
  std::size_t pos = 0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    out[i].assign(my_chars.data() + pos, static_cast<std::size_t>(my_lens[i]));
    pos += static_cast<std::size_t>(my_lens[i]);
  }
  return out;
}

SharedCounter::SharedCounter(const Comm& comm) {
  const MPI_Aint bytes = comm.is_root() ? static_cast<MPI_Aint>(sizeof(std::int64_t)) : 0;
  // Without one-sided support between these ranks (Debian's Open MPI on TCP-only nodes excludes
  // the osc components that work there) the window cannot be made: the counter is then
  // unavailable, on every rank alike (the caller falls back to a static schedule).
  const int rc = MPI_Win_allocate(bytes, sizeof(std::int64_t), MPI_INFO_NULL, comm.native(), &base_, &win_);
  const bool failed = comm.any(rc != MPI_SUCCESS);
  if (failed) {
    if (rc == MPI_SUCCESS) throw CommError("MPI_Win_allocate failed on some ranks only");
    win_ = MPI_WIN_NULL;
    return;
  }
  if (comm.is_root()) {
    check_mpi(MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 0, 0, win_), "MPI_Win_lock");
    *base_ = 0;
    check_mpi(MPI_Win_unlock(0, win_), "MPI_Win_unlock");
  }
  comm.barrier();
}

SharedCounter::~SharedCounter() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (win_ != MPI_WIN_NULL && !finalized && std::uncaught_exceptions() == 0) MPI_Win_free(&win_);
}

std::int64_t SharedCounter::fetch_add(std::int64_t v) {
  if (win_ == MPI_WIN_NULL) throw CommError("SharedCounter: one-sided MPI is unavailable between these ranks");
  std::int64_t before = 0;
  check_mpi(MPI_Win_lock(MPI_LOCK_SHARED, 0, 0, win_), "MPI_Win_lock");
  check_mpi(MPI_Fetch_and_op(&v, &before, MPI_INT64_T, 0, 0, MPI_SUM, win_), "MPI_Fetch_and_op");
  check_mpi(MPI_Win_unlock(0, win_), "MPI_Win_unlock");
  return before;
}

int run_program_impl(const char* name, int argc, char** argv, int (*body)(void*, Comm&), void* ctx) {
  int provided = 0;
  if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    std::fprintf(stderr, "%s: error: MPI_Init_thread failed\n", name);
    return 1;
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  int status = 0;
  try {
    Comm world = Comm::world();
    status = body(ctx, world);
  } catch (const AgreedError& e) {
    if (rank == 0) std::fprintf(stderr, "%s: error: %s\n", name, e.what());
    MPI_Finalize();
    return 2;
  } catch (const ConfigError& e) {
    if (rank == 0) std::fprintf(stderr, "%s: error: %s\n", name, e.what());
    MPI_Finalize();
    return 2;
  } catch (const std::exception& e) {
    if (size > 1)
      std::fprintf(stderr, "%s: error (rank %d): %s\n", name, rank, e.what());
    else
      std::fprintf(stderr, "%s: error: %s\n", name, e.what());
    std::fflush(stderr);
    if (size == 1) {  // nobody to wake: a clean exit, without Open MPI's abort banner
      MPI_Finalize();
      return 1;
    }
    MPI_Abort(MPI_COMM_WORLD, 1);
    return 1;
  }
  MPI_Finalize();
  return status;
}

}  // namespace mfrec
