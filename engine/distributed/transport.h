// What carries a communicator's bytes: the collectives on raw buffers, once the communicator
// (communicator.cpp) has checked their arguments and that every rank makes the same call.
// Internal to engine/distributed/; communicator.h states the semantics.
//
// A transport reports a failure of the library under it (an MPI or NCCL status other than
// success) by throwing TransportFailure; the communicator then ends the job, since the ranks
// can no longer tell what the others have done.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

#include "engine/device.h"
#include "engine/distributed/communicator.h"
#include "engine/dtype.h"

namespace visrep::distributed {

class Watchdog;

class TransportFailure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// This rank's place in the job, as the host transport sees it.
struct Membership {
  int rank = 0;
  int size = 1;
  int local_rank = 0;
  int local_size = 1;
};

class Transport {
 public:
  virtual ~Transport() = default;

  virtual std::string name() const = 0;
  // The most elements one call may carry (MPI's counts are 32-bit ints).
  virtual int64_t max_count() const { return INT64_MAX; }

  virtual void all_reduce(void* data, int64_t count, DType dtype, ReduceOp op, Device device) = 0;
  virtual void all_gather(const void* send, void* receive, int64_t count, DType dtype, Device device) = 0;
  virtual void reduce_scatter(const void* send, void* receive, int64_t count, DType dtype, ReduceOp op,
                              Device device) = 0;
  virtual void broadcast(void* data, int64_t count, DType dtype, int root, Device device) = 0;

  // When the last call only queued its work (NCCL): a poll that turns true once the work is
  // done, for the watchdog's deadline; empty when the call finished before returning.
  virtual std::function<bool()> last_call_done() { return {}; }
};

// The transport of host buffers (single-process or MPI), which also knows the job: its
// membership, a barrier, and how to end it. It carries CUDA buffers through pinned host
// memory when no device transport does.
class JobTransport : public Transport {
 public:
  virtual Membership membership() const = 0;
  virtual void barrier() = 0;
  // Ends every rank of the job with `exit_code`; the message was printed already.
  [[noreturn]] virtual void end_job(int exit_code) = 0;
};

std::unique_ptr<JobTransport> make_single_process_transport();
// Starts MPI (once per process: MPI cannot be started again after it was finalised) on a
// duplicate of MPI_COMM_WORLD whose errors return rather than abort. At exit a rank waits
// for the others up to the largest `timeout_seconds` of these transports (mpi_transport.cpp).
// Defined only when built with MPI.
std::unique_ptr<JobTransport> make_mpi_transport(const LaunchEnvironment& environment, double timeout_seconds);
// MPI_Finalize now (once every rank has asked for it, up to that limit), when MPI was
// started and not yet finalised; whether it was finalised. Defined only when built with MPI.
void finalize_mpi();
bool mpi_finalized();
// An NCCL communicator over the host transport's ranks on `device` (a CUDA device): rank 0's
// unique id goes to the others through `host`. Its waits give up after `timeout_seconds`;
// it lets `watchdog` (may be null for a job of one) poll its asynchronous errors and abort it.
// Defined only when built with NCCL.
std::unique_ptr<Transport> make_nccl_transport(JobTransport& host, Device device, double timeout_seconds,
                                               Watchdog* watchdog);

// ---- shared by the transports --------------------------------------------------------------
// data[i] /= divisor for `count` elements of a floating dtype on the host (ReduceOp::Average
// after a sum, where the library has no average).
void divide_in_place(void* data, int64_t count, DType dtype, int divisor);

// Page-locked host memory that only grows, for staging CUDA buffers through a host transport.
class PinnedStaging {
 public:
  PinnedStaging() = default;
  ~PinnedStaging();
  PinnedStaging(const PinnedStaging&) = delete;
  PinnedStaging& operator=(const PinnedStaging&) = delete;
  // At least `bytes` bytes, valid until the next call.
  void* get(size_t bytes);

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace visrep::distributed
