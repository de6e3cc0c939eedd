// The MPI facade: the only module (with h5's MPI-IO setup) that calls MPI.
// A Comm is move-only; every member that talks to other ranks says "collective".
// Every MPI return code is checked and turned into a CommError.
#pragma once
#include <mpi.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "mfrec/error.hpp"

namespace mfrec {

template <class T>
MPI_Datatype mpi_type() {
  if constexpr (std::is_same_v<T, float>) return MPI_FLOAT;
  else if constexpr (std::is_same_v<T, double>) return MPI_DOUBLE;
  else if constexpr (std::is_same_v<T, std::int8_t>) return MPI_INT8_T;
  else if constexpr (std::is_same_v<T, std::uint8_t>) return MPI_UINT8_T;
  else if constexpr (std::is_same_v<T, char>) return MPI_CHAR;
  else if constexpr (std::is_same_v<T, std::int16_t>) return MPI_INT16_T;
  else if constexpr (std::is_same_v<T, std::int32_t>) return MPI_INT32_T;
  else if constexpr (std::is_same_v<T, std::uint32_t>) return MPI_UINT32_T;
  else if constexpr (std::is_same_v<T, std::int64_t>) return MPI_INT64_T;
  else if constexpr (std::is_same_v<T, std::uint64_t>) return MPI_UINT64_T;
  else static_assert(sizeof(T) == 0, "no MPI datatype for this type");
}

void check_mpi(int code, const char* what);

class Comm {
 public:
  // The world communicator (not owned: never freed).
  static Comm world();
  Comm(Comm&& other) noexcept;
  Comm& operator=(Comm&& other) noexcept;
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;
  ~Comm();

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_root() const { return rank_ == 0; }
  MPI_Comm native() const { return comm_; }

  // Collective: ranks with the same color form a new communicator, ordered by key.
  Comm split(int color, int key) const;
  // Collective: the ranks on the same node (shared memory).
  Comm split_shared() const;
  void barrier() const;  // collective

  // Collective: element-wise sum / max / min, in place over n values.
  template <class T> void allreduce_sum(T* data, std::size_t n) const { allreduce(data, n, MPI_SUM); }
  template <class T> void allreduce_max(T* data, std::size_t n) const { allreduce(data, n, MPI_MAX); }
  template <class T> void allreduce_min(T* data, std::size_t n) const { allreduce(data, n, MPI_MIN); }
  template <class T> T sum(T v) const { allreduce_sum(&v, 1); return v; }
  template <class T> T max(T v) const { allreduce_max(&v, 1); return v; }
  template <class T> T min(T v) const { allreduce_min(&v, 1); return v; }
  // Collective: true on every rank when `flag` is true on any rank.
  bool any(bool flag) const { return max<int>(flag ? 1 : 0) != 0; }
  // Collective: the sum of v over ranks below this one (0 on rank 0).
  template <class T> T exscan_sum(T v) const;
  // Collective: data[k] becomes the sum of data[k] over ranks below this one (0 on rank 0).
  template <class T> void exscan_sum(T* data, std::size_t n) const;

  template <class T> void bcast(T* data, std::size_t n, int root = 0) const {
    check_mpi(MPI_Bcast(data, checked_count(n), mpi_type<T>(), root, comm_), "MPI_Bcast");
  }
  std::string bcast(const std::string& s, int root = 0) const;  // collective

  // Collective: every rank's `n_local` counts (index = rank).
  std::vector<std::int64_t> allgather_counts(std::int64_t n_local) const;
  // Collective: concatenate every rank's rows (each `width` values wide) in rank order into
  // `out`, which must hold sum(rows) * width values. Counts travel as rows (a contiguous
  // datatype), so totals beyond 2^31 values work.
  template <class T>
  void allgatherv_rows(const T* local, std::int64_t rows_local, const std::vector<std::int64_t>& rows,
                       std::int64_t width, T* out) const;
  // Collective: send send_counts[r] values (consecutive in `send`) to each rank r; returns the
  // values received, in rank order (recv_counts, when given, receives how many came from each).
  template <class T>
  std::vector<T> alltoallv(const std::vector<T>& send, const std::vector<std::int64_t>& send_counts,
                           std::vector<std::int64_t>* recv_counts = nullptr) const;

  // Collective: row exchange between every pair of ranks. send_counts[r] rows starting at row
  // send_displs[r] of `send` go to rank r; recv_counts[r] rows from rank r land at row
  // recv_displs[r] of `recv` (counts and displacements in rows, each `width` values).
  template <class T>
  void alltoallv_rows(const T* send, const std::vector<int>& send_counts, const std::vector<int>& send_displs,
                      T* recv, const std::vector<int>& recv_counts, const std::vector<int>& recv_displs,
                      std::int64_t width) const;

  // The payload this rank has sent to and received from OTHER ranks through allreduce,
  // allgatherv_rows and the alltoallv calls since the communicator was made: what each rank
  // contributes and obtains, not what a collective's algorithm forwards on the way (a ring
  // allreduce moves about twice that). Bytes; doubles, so they never overflow.
  struct Traffic {
    double sent = 0, received = 0;
  };
  const Traffic& traffic() const { return traffic_; }

  static double wtime() { return MPI_Wtime(); }

 private:
  Comm(MPI_Comm comm, bool owned);
  template <class T> void allreduce(T* data, std::size_t n, MPI_Op op) const {
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, data, checked_count(n), mpi_type<T>(), op, comm_), "MPI_Allreduce");
    if (size_ > 1) count(static_cast<double>(n * sizeof(T)), static_cast<double>(n * sizeof(T)));
  }
  void count(double sent, double received) const {
    traffic_.sent += sent;
    traffic_.received += received;
  }
  static int checked_count(std::size_t n);
  // A committed contiguous datatype of `width` values of T, freed with the object.
  struct RowType {
    MPI_Datatype type;
    RowType(std::int64_t width, MPI_Datatype value);
    ~RowType() { MPI_Type_free(&type); }
    RowType(const RowType&) = delete;
    RowType& operator=(const RowType&) = delete;
  };

  MPI_Comm comm_ = MPI_COMM_NULL;
  bool owned_ = false;
  int rank_ = 0;
  int size_ = 1;
  mutable Traffic traffic_;
};

// A counter that any rank can atomically fetch-and-add without the others taking part (MPI
// one-sided, passive target on rank 0 of the communicator). Creating it is collective; so is
// destroying it, unless an exception is unwinding.
class SharedCounter {
 public:
  explicit SharedCounter(const Comm& comm);  // collective; starts at 0 (or is unavailable)
  SharedCounter(const SharedCounter&) = delete;
  SharedCounter& operator=(const SharedCounter&) = delete;
  ~SharedCounter();
  std::int64_t fetch_add(std::int64_t v);  // local call: returns the value before adding
  // False (on every rank) when MPI could not make the window: no one-sided support between these
  // ranks. fetch_add then throws.
  bool available() const { return win_ != MPI_WIN_NULL; }

 private:
  MPI_Win win_ = MPI_WIN_NULL;
  std::int64_t* base_ = nullptr;
};

// ---- the cross-rank error policy ------------------------------------------------------------
// A check that can fail on some ranks and not others (a file only rank 0 opens, a malformed
// line in one rank's share of a CSV) must not leave the others waiting in the next collective.
// Run it through agree_on (or report it to check_agreed): every rank then throws the same
// AgreedError, which run_program turns into one printed line and exit status 2 on every rank.

// Collective: the message of the error with the lowest key (then the lowest rank) among the
// ranks that have one, on every rank; empty when no rank has an error.
std::string agree(const Comm& comm, const std::string& local_error, std::int64_t key = 0);

// Collective: throws AgreedError(agree(...)) on every rank when any rank has an error (when
// `comm` spans fewer processes than MPI_COMM_WORLD, a plain Error, which aborts the job).
void check_agreed(const Comm& comm, const std::string& local_error, std::int64_t key = 0);

// Collective: runs f() on every rank; if it throws an mfrec::Error (other than CommError) on any
// rank, every rank throws the same AgreedError. Other exceptions propagate (and abort).
template <class F>
void agree_on(const Comm& comm, F&& f) {
  std::string err;
  try {
    f();
  } catch (const CommError&) {
    throw;
  } catch (const Error& e) {
    err = e.what();
    if (err.empty()) err = "error";
  }
  check_agreed(comm, err);
}

// ---- strings over ranks ---------------------------------------------------------------------

// Collective: rank 0's strings on every rank.
std::vector<std::string> bcast_strings(const std::vector<std::string>& v, const Comm& comm);

// Collective: rank 0's `all` (one string per row) cut into the ranks' row ranges: rank r gets
// rows [bounds[r], bounds[r+1]).
std::vector<std::string> scatter_strings(const std::vector<std::string>& all, const std::vector<std::int64_t>& bounds,
                                         const Comm& comm);

// Process-wide MPI set-up and the error policy of every program's main:
//   int main(int argc, char** argv) { return mfrec::run_program("mfrec_x", argc, argv, body); }
// Errors: a ConfigError (raised the same way on every rank) or an AgreedError prints one line
// from rank 0 and exits 2 after MPI_Finalize on every rank; any other exception prints one line from the rank that saw it
// and calls MPI_Abort, so no rank is left waiting in a collective.
template <class F>
int run_program(const char* name, int argc, char** argv, F&& body);

int run_program_impl(const char* name, int argc, char** argv, int (*body)(void*, Comm&), void* ctx);

template <class F>
int run_program(const char* name, int argc, char** argv, F&& body) {
  auto thunk = [](void* ctx, Comm& comm) -> int { return (*static_cast<F*>(ctx))(comm); };
  return run_program_impl(name, argc, argv, thunk, &body);
}

// ---- template definitions -------------------------------------------------------------------

template <class T>
T Comm::exscan_sum(T v) const {
  T out{};
  check_mpi(MPI_Exscan(&v, &out, 1, mpi_type<T>(), MPI_SUM, comm_), "MPI_Exscan");
  return rank_ == 0 ? T{} : out;
}

template <class T>
void Comm::exscan_sum(T* data, std::size_t n) const {
  std::vector<T> in(data, data + n);
  check_mpi(MPI_Exscan(in.data(), data, checked_count(n), mpi_type<T>(), MPI_SUM, comm_), "MPI_Exscan");
  if (rank_ == 0) std::fill(data, data + n, T{});  // MPI leaves rank 0's undefined
}

template <class T>
void Comm::allgatherv_rows(const T* local, std::int64_t rows_local, const std::vector<std::int64_t>& rows,
                           std::int64_t width, T* out) const {
  const RowType row(width, mpi_type<T>());
  std::vector<int> counts(size_), displs(size_);
  std::int64_t offset = 0;
  for (int r = 0; r < size_; ++r) {
    counts[r] = checked_count(static_cast<std::size_t>(rows[r]));
    displs[r] = checked_count(static_cast<std::size_t>(offset));
    offset += rows[r];
  }
  check_mpi(MPI_Allgatherv(rows_local > 0 ? local : out, checked_count(static_cast<std::size_t>(rows_local)), row.type,
                           out, counts.data(), displs.data(), row.type, comm_),
            "MPI_Allgatherv");
  const double row_bytes = static_cast<double>(width) * sizeof(T);
  count(row_bytes * static_cast<double>(rows_local) * (size_ - 1), row_bytes * static_cast<double>(offset - rows_local));
}

template <class T>
void Comm::alltoallv_rows(const T* send, const std::vector<int>& send_counts, const std::vector<int>& send_displs,
                          T* recv, const std::vector<int>& recv_counts, const std::vector<int>& recv_displs,
                          std::int64_t width) const {
  const RowType row(width, mpi_type<T>());
  check_mpi(MPI_Alltoallv(send, send_counts.data(), send_displs.data(), row.type, recv, recv_counts.data(),
                          recv_displs.data(), row.type, comm_),
            "MPI_Alltoallv");
  double s = 0, r = 0;
  for (int q = 0; q < size_; ++q)
    if (q != rank_) {
      s += send_counts[q];
      r += recv_counts[q];
    }
  const double row_bytes = static_cast<double>(width) * sizeof(T);
  count(row_bytes * s, row_bytes * r);
}

template <class T>
std::vector<T> Comm::alltoallv(const std::vector<T>& send, const std::vector<std::int64_t>& send_counts,
                               std::vector<std::int64_t>* recv_counts) const {
  std::vector<int> sc(size_), sd(size_), rc(size_), rd(size_);
  std::int64_t off = 0;
  for (int r = 0; r < size_; ++r) {
    sc[r] = checked_count(static_cast<std::size_t>(send_counts[r]));
    sd[r] = checked_count(static_cast<std::size_t>(off));
    off += send_counts[r];
  }
  check_mpi(MPI_Alltoall(sc.data(), 1, MPI_INT, rc.data(), 1, MPI_INT, comm_), "MPI_Alltoall");
  std::int64_t total = 0;
  for (int r = 0; r < size_; ++r) {
    rd[r] = checked_count(static_cast<std::size_t>(total));
    total += rc[r];
  }
  std::vector<T> recv(static_cast<std::size_t>(total));
  check_mpi(MPI_Alltoallv(send.data(), sc.data(), sd.data(), mpi_type<T>(), recv.data(), rc.data(), rd.data(),
                          mpi_type<T>(), comm_),
            "MPI_Alltoallv");
  if (recv_counts) recv_counts->assign(rc.begin(), rc.end());
  count(static_cast<double>((off - send_counts[rank_]) * sizeof(T)), static_cast<double>((total - rc[rank_]) * sizeof(T)));
  return recv;
}

}  // namespace mfrec
