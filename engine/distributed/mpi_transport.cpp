// The MPI transport: the collectives of MPI 3 (Debian's Open MPI) on a duplicate of
// MPI_COMM_WORLD whose errors return instead of aborting, so each failed call is reported
// with the op, the rank and the sizes before the job ends.
//
// MPI is started once per process and ended at exit by the exit status (on_exit): 0 waits
// for every rank to reach its end, as long as a collective may wait (the watchdog's
// limit), then finalises; anything else calls MPI_Abort, which ends every rank at once, so
// a rank that fails does not leave the others blocked in a collective. (Open MPI's
// MPI_Finalize waits for every rank without a limit, and a job torn down while one of its
// ranks waits there can leave mpirun itself hanging: seen with Open MPI 4.1.4.)
//
// Open MPI here is not CUDA-aware: a CUDA buffer is copied to pinned host memory on its
// device's stream (after the work queued before it), reduced on the host, and copied back.
#include <fmt/format.h>
#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "engine/distributed/transport.h"
#include "engine/error.h"
#include "engine/storage.h"

namespace visrep::distributed {
namespace {

// ---- status checks ------------------------------------------------------------------------

void check(int status, const char* call) {
  if (status == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  if (MPI_Error_string(status, text, &length) != MPI_SUCCESS) {
    length = std::snprintf(text, sizeof text, "MPI error code %d", status);
  }
  throw TransportFailure(fmt::format("{} failed: {}", call, std::string_view(text, static_cast<size_t>(length))));
}

// ---- MPI's lifetime in this process ---------------------------------------------------------

// The longest a rank waits at its end for the others: the largest limit of the communicators
// made in this process.
std::atomic<double> end_timeout_seconds{0};

// MPI_Finalize once every rank has reached it: first a barrier polled up to the limit, past
// which this rank says so and exits with status 1 (which ends the job) instead of waiting
// inside MPI_Finalize.
void finalize_when_every_rank_is_done() {
  int rank = -1, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const double limit = end_timeout_seconds.load() > 0 ? end_timeout_seconds.load() : 600.0;
  MPI_Request request = MPI_REQUEST_NULL;
  if (size > 1 && MPI_Ibarrier(MPI_COMM_WORLD, &request) == MPI_SUCCESS) {
    const auto start = std::chrono::steady_clock::now();
    int done = 0;
    for (int polls = 0; MPI_Test(&request, &done, MPI_STATUS_IGNORE) == MPI_SUCCESS && !done; ++polls) {
      const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (waited > limit) {
        std::fprintf(stderr,
                     "rank %d of %d: at its end, has waited %.1f s for the other ranks to reach theirs, past the "
                     "limit of %.1f s: a rank is stuck, or waits in a collective this rank did not make. Giving up: "
                     "exiting with status 1, which ends the job.\n",
                     rank, size, waited, limit);
        std::_Exit(1);
      }
      if (polls > 1000) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  check(MPI_Finalize(), "MPI_Finalize");
}

void end_mpi_at_exit(int status, void*) {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  if (status == 0) {
    try {
      finalize_when_every_rank_is_done();
    } catch (const TransportFailure& failure) {
      std::fprintf(stderr, "%s\n", failure.what());
      std::_Exit(1);
    }
    return;
  }
  int rank = -1, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  std::fprintf(stderr, "rank %d of %d: exiting with status %d: ending the other ranks (MPI_Abort)\n", rank, size,
               status);
  MPI_Abort(MPI_COMM_WORLD, status);
}

void start_mpi() {
  static std::once_flag once;
  std::call_once(once, [] {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (initialized) return;  // started by someone else, who also ends it
    int provided = 0;
    // SERIALIZED: the communicator may be used from any one thread at a time. The watchdog
    // never calls MPI (it exits the process instead).
    check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
#if defined(__GLIBC__)
    on_exit(end_mpi_at_exit, nullptr);
#else
    std::atexit([] { end_mpi_at_exit(0, nullptr); });
#endif
    // Errors on MPI_COMM_WORLD (MPI_Comm_dup's) are reported too, rather than aborting inside MPI.
    check(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  });
  int finalized = 0;
  MPI_Finalized(&finalized);
  VISREP_CHECK(!finalized, "communicator: MPI was finalised already in this process and cannot start again");
}

// VISREP_MPI_CALL(MPI_Allreduce, args...): calls it and throws TransportFailure naming it
// with MPI's message when it does not succeed.
#define VISREP_MPI_CALL(function, ...) check(function(__VA_ARGS__), #function)

MPI_Datatype mpi_type(DType dtype) {
  switch (dtype) {
    case kFloat32: return MPI_FLOAT;
    case kFloat64: return MPI_DOUBLE;
    case kInt32: return MPI_INT32_T;
    case kInt64: return MPI_INT64_T;
    case kUInt8: return MPI_UINT8_T;
    case kBFloat16: return MPI_UINT16_T;  // moved, never reduced (the communicator refuses that)
  }
  VISREP_FAIL("MPI transport: no MPI type for dtype {}", static_cast<int>(dtype));
}

// Average is a sum followed by a division: MPI has no average.
MPI_Op mpi_op(ReduceOp op) { return op == ReduceOp::Max ? MPI_MAX : MPI_SUM; }

int as_count(int64_t count) { return static_cast<int>(count); }  // the communicator keeps it <= max_count()

// "Open MPI v4.1.4" from "Open MPI v4.1.4, package: Debian OpenMPI, ident: ..."
std::string library_version() {
  char text[MPI_MAX_LIBRARY_VERSION_STRING] = {};
  int length = 0;
  if (MPI_Get_library_version(text, &length) != MPI_SUCCESS) return "unknown version";
  std::string version(text, static_cast<size_t>(std::max(length, 0)));
  version = version.substr(0, version.find_first_of(",\n"));
  while (!version.empty() && (version.back() == ' ' || version.back() == '\0')) version.pop_back();
  return version;
}

class MpiTransport final : public JobTransport {
 public:
  MpiTransport(const LaunchEnvironment& environment, double timeout_seconds) {
    start_mpi();
    double longest = end_timeout_seconds.load();
    while (timeout_seconds > longest && !end_timeout_seconds.compare_exchange_weak(longest, timeout_seconds)) {
    }
    VISREP_MPI_CALL(MPI_Comm_dup, MPI_COMM_WORLD, &comm_);
    VISREP_MPI_CALL(MPI_Comm_set_errhandler, comm_, MPI_ERRORS_RETURN);
    VISREP_MPI_CALL(MPI_Comm_rank, comm_, &membership_.rank);
    VISREP_MPI_CALL(MPI_Comm_size, comm_, &membership_.size);
    if (environment.launched()) {
      VISREP_CHECK(environment.size == membership_.size && environment.rank == membership_.rank,
                   "communicator: the launcher ({}, {}) says rank {} of {} but MPI says rank {} of {}: was visrep "
                   "built against another MPI than the one whose mpirun started it?",
                   environment.launcher, environment.source, environment.rank, environment.size, membership_.rank,
                   membership_.size);
    }
    if (environment.launched() && environment.local_rank >= 0 && environment.local_size > 0) {
      membership_.local_rank = environment.local_rank;
      membership_.local_size = environment.local_size;
    } else {
      // The ranks that share this host's memory.
      MPI_Comm host_ranks = MPI_COMM_NULL;
      VISREP_MPI_CALL(MPI_Comm_split_type, comm_, MPI_COMM_TYPE_SHARED, membership_.rank, MPI_INFO_NULL, &host_ranks);
      VISREP_MPI_CALL(MPI_Comm_rank, host_ranks, &membership_.local_rank);
      VISREP_MPI_CALL(MPI_Comm_size, host_ranks, &membership_.local_size);
      MPI_Comm_free(&host_ranks);
    }
    name_ = "MPI (" + library_version() + ")";
  }

  ~MpiTransport() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
  }

  std::string name() const override { return name_; }
  int64_t max_count() const override { return INT_MAX; }
  Membership membership() const override { return membership_; }

  void all_reduce(void* data, int64_t count, DType dtype, ReduceOp op, Device device) override {
    const size_t bytes = bytes_of(count, dtype);
    void* host = device.is_cuda() ? stage_in(data, bytes, device) : data;
    VISREP_MPI_CALL(MPI_Allreduce, MPI_IN_PLACE, host, as_count(count), mpi_type(dtype), mpi_op(op), comm_);
    if (op == ReduceOp::Average) divide_in_place(host, count, dtype, membership_.size);
    if (device.is_cuda()) stage_out(data, host, bytes, device);
  }

  void all_gather(const void* send, void* receive, int64_t count, DType dtype, Device device) override {
    const size_t block = bytes_of(count, dtype);
    const size_t total = block * static_cast<size_t>(membership_.size);
    char* own_block = static_cast<char*>(receive) + block * static_cast<size_t>(membership_.rank);
    if (device.is_cuda()) {
      char* host = static_cast<char*>(staging_.get(total));
      if (block > 0) copy_bytes(host + block * membership_.rank, Device::cpu(), send, device, block);
      VISREP_MPI_CALL(MPI_Allgather, MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, host, as_count(count), mpi_type(dtype), comm_);
      if (total > 0) copy_bytes(receive, device, host, Device::cpu(), total);
    } else if (send == own_block) {
      VISREP_MPI_CALL(MPI_Allgather, MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, receive, as_count(count), mpi_type(dtype),
                      comm_);
    } else {
      VISREP_MPI_CALL(MPI_Allgather, send, as_count(count), mpi_type(dtype), receive, as_count(count), mpi_type(dtype),
                      comm_);
    }
  }

  void reduce_scatter(const void* send, void* receive, int64_t count, DType dtype, ReduceOp op,
                      Device device) override {
    const size_t block = bytes_of(count, dtype);
    const size_t total = block * static_cast<size_t>(membership_.size);
    const char* own_block = static_cast<const char*>(send) + block * static_cast<size_t>(membership_.rank);
    if (device.is_cuda() || receive == own_block) {
      // In place (MPI_IN_PLACE): the input is the whole buffer and the result lands in its
      // first block, which is then moved to this rank's block (NCCL's in-place convention).
      char* buffer = device.is_cuda() ? static_cast<char*>(staging_.get(total))
                                      : const_cast<char*>(static_cast<const char*>(send));
      if (device.is_cuda() && total > 0) copy_bytes(buffer, Device::cpu(), send, device, total);
      VISREP_MPI_CALL(MPI_Reduce_scatter_block, MPI_IN_PLACE, buffer, as_count(count), mpi_type(dtype), mpi_op(op),
                      comm_);
      if (op == ReduceOp::Average) divide_in_place(buffer, count, dtype, membership_.size);
      if (device.is_cuda()) {
        if (block > 0) copy_bytes(receive, device, buffer, Device::cpu(), block);
      } else if (receive != buffer && block > 0) {
        std::memmove(receive, buffer, block);
      }
    } else {
      VISREP_MPI_CALL(MPI_Reduce_scatter_block, send, receive, as_count(count), mpi_type(dtype), mpi_op(op), comm_);
      if (op == ReduceOp::Average) divide_in_place(receive, count, dtype, membership_.size);
    }
  }

  void broadcast(void* data, int64_t count, DType dtype, int root, Device device) override {
    const size_t bytes = bytes_of(count, dtype);
    const bool is_root = membership_.rank == root;
    void* host = data;
    if (device.is_cuda()) {
      host = staging_.get(bytes);
      if (is_root && bytes > 0) copy_bytes(host, Device::cpu(), data, device, bytes);
    }
    VISREP_MPI_CALL(MPI_Bcast, host, as_count(count), mpi_type(dtype), root, comm_);
    if (device.is_cuda() && !is_root && bytes > 0) copy_bytes(data, device, host, Device::cpu(), bytes);
  }

  void barrier() override { VISREP_MPI_CALL(MPI_Barrier, comm_); }

  [[noreturn]] void end_job(int exit_code) override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Abort(comm_, exit_code);
    std::_Exit(exit_code);  // MPI_Abort does not return; after MPI_Finalize it cannot be called
  }

 private:
  static size_t bytes_of(int64_t count, DType dtype) { return static_cast<size_t>(count) * element_size(dtype); }

  void* stage_in(const void* data, size_t bytes, Device device) {
    void* host = staging_.get(bytes);
    if (bytes > 0) copy_bytes(host, Device::cpu(), data, device, bytes);
    return host;
  }
  static void stage_out(void* data, const void* host, size_t bytes, Device device) {
    if (bytes > 0) copy_bytes(data, device, host, Device::cpu(), bytes);
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  Membership membership_;
  std::string name_;
  PinnedStaging staging_;
};

}  // namespace

std::unique_ptr<JobTransport> make_mpi_transport(const LaunchEnvironment& environment, double timeout_seconds) {
  return std::make_unique<MpiTransport>(environment, timeout_seconds);
}

void finalize_mpi() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) return;
  finalize_when_every_rank_is_done();
}

bool mpi_finalized() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  return finalized != 0;
}

}  // namespace visrep::distributed
