// The communicator: collectives over the ranks of a data-parallel job, one process per rank,
// launched by mpirun (`mpirun -np 4 build/apps/visrep-simclr ...`). A process no launcher
// started is a job of one rank in which every collective is the identity, so the same code
// runs unchanged on one process.
//
// What carries the bytes (the transport) depends on where the process runs and on the buffer:
//
//   buffer      transport
//   host        single-process (no launcher: the default, needs no MPI) or MPI (launched by mpirun)
//   CUDA        NCCL, for the device the communicator was made for (options.device), when visrep
//               is built with NCCL and the job has more than one rank; otherwise the host
//               transport through pinned host memory (Debian's Open MPI is not CUDA-aware)
//
// Semantics, for P ranks, this rank r and counts in elements (x_k is rank k's buffer):
//
//   all_reduce(data, n, op)          in place:  data[i] = op_k x_k[i]              (sum, average, max)
//   all_gather(send, receive, n)     receive[k*n + i] = send_k[i]                 receive holds P*n, rank-major
//   reduce_scatter(send, receive, n) receive[i] = op_k send_k[r*n + i]             send holds P*n
//   broadcast(data, n, root)         data[i] = data_root[i]
//   barrier()                        returns once every rank has called it (host only: it does not
//                                    wait for queued GPU work)
//
// all_gather and reduce_scatter work out of place, or in place in NCCL's convention: all_gather
// with send == receive + r*n (this rank's block of the output), reduce_scatter with receive ==
// send + r*n; the other blocks of an in-place reduce_scatter's buffer are left undefined. Any
// other overlap is refused. Average is the sum divided by P, for floating dtypes. Reductions
// take float32, float64, int32 and int64; all_gather and broadcast also move bfloat16 and
// uint8 (reduce bfloat16 in float32). Counts of 0 are valid and still take part.
//
// CUDA buffers: ordered on the stream every op on that device is queued on
// (kernels/cuda/runtime.h), like any op. Through NCCL the collective is queued and the call
// returns; through the host transport the call copies the buffer to pinned host memory (after
// the work queued before it), runs the host collective and copies the result back.
//
// Every rank must make the same collective calls, in the same order, with the same count,
// dtype, op and root, as in MPI. The communicator checks it (options.check_calls, on by
// default): before each collective the ranks exchange a 64-byte record of the call they are
// about to make, and when any two disagree, or a rank refused its own arguments, every rank
// throws a visrep::Error naming each rank's call, instead of reading wrong data or hanging.
// Local argument errors (negative count, root out of range, a dtype that cannot be reduced,
// overlapping buffers, a tensor that cannot be scattered) are reported the same way, on
// every rank at once, so the ranks stay in step and may carry on.
//
// A rank that stops taking part must not leave the others waiting forever:
//   - every collective runs under a watchdog: past options.timeout_seconds (10 minutes by
//     default) the waiting rank says which call it waited for and exits with status 1;
//   - an MPI or NCCL failure is reported with the op, the rank and the sizes, and ends the job
//     (MPI_Abort; NCCL's communicator is aborted first);
//   - NCCL's asynchronous errors are polled (ncclCommGetAsyncError) while work is queued;
//   - a process that exits with a non-zero status after starting MPI ends the job at once
//     (MPI_Abort from an exit handler), so a rank that fails and returns 1 from main()
//     takes the others down with it; exiting 0 waits for every rank to reach its end, up to
//     the same limit, then finalises MPI.
// mpirun itself ends the job when a rank exits without finalising MPI or is killed: the
// other ranks get SIGTERM about a second later. abort() ends the job on purpose.
//
// A communicator is used from one thread at a time. Creating one starts MPI (once per
// process) when the host transport is MPI, and NCCL when it has a CUDA device for it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "engine/device.h"
#include "engine/distributed/collectives.h"
#include "engine/distributed/launch_environment.h"
#include "engine/dtype.h"
#include "engine/tensor.h"

namespace visrep::distributed {

// ReduceOp: collectives.h.
std::string_view reduce_op_name(ReduceOp op);  // "sum", "average", "max"

// Which transport carries host buffers. Auto: MPI when a launcher started the process
// (LaunchEnvironment::detect()), else single-process.
enum class HostTransport : uint8_t { Auto, SingleProcess, MPI };
// Which transport carries the buffers of options.device (a CUDA device). Auto: NCCL when
// built with it and the job has more than one rank, else the host transport. NCCL insists
// (also for a job of one rank); HostStaging never starts NCCL.
enum class DeviceTransport : uint8_t { Auto, NCCL, HostStaging };

// Whether visrep was built with the MPI / NCCL transports.
bool mpi_built();
bool nccl_built();

struct CommunicatorOptions {
  HostTransport host = HostTransport::Auto;
  // The CUDA device this rank computes on (usually local_cuda_device()): its buffers take the
  // device transport. nullopt: none; CUDA buffers, if any, go through the host transport.
  std::optional<Device> device;
  DeviceTransport device_transport = DeviceTransport::Auto;
  // How long a collective may wait for the other ranks before this rank gives up.
  double timeout_seconds = 600;
  // Exchange a record of each call before running it (see the top of this file).
  bool check_calls = true;

  // The defaults, with VISREP_DISTRIBUTED_TIMEOUT (seconds > 0) and VISREP_DISTRIBUTED_CHECKS
  // (0 or 1) from the environment when set; a bad value throws naming the variable.
  static CommunicatorOptions from_environment();
};

// The implementation of the engine's Collectives interface (collectives.h) a job uses.
class Communicator final : public Collectives {
 public:
  // Starts the transports `options` choose; throws visrep::Error when they cannot be had
  // (launched by mpirun in a build without MPI, NCCL asked for without it, a bad device).
  explicit Communicator(const CommunicatorOptions& options = CommunicatorOptions::from_environment());
  ~Communicator() override;
  Communicator(Communicator&&) noexcept;
  Communicator& operator=(Communicator&&) noexcept;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const override;
  int size() const override;
  int local_rank() const;  // among the ranks on this host
  int local_size() const;
  // "MPI (Open MPI v4.1.4), rank 1 of 4, local rank 1 of 2; cuda:1 buffers through NCCL 2.28.3"
  std::string description() const;
  std::string host_transport_name() const;              // "single-process", "MPI (Open MPI v4.1.4)"
  std::string transport_name_for(Device device) const;  // what carries a buffer on `device`

  // ---- raw buffers: `count` elements of `dtype` on `device` (see the table at the top) ------
  void all_reduce(void* data, int64_t count, DType dtype, Device device, ReduceOp op);
  void all_gather(const void* send, void* receive, int64_t count, DType dtype, Device device);
  void reduce_scatter(const void* send, void* receive, int64_t count, DType dtype, Device device,
                      ReduceOp op = ReduceOp::Sum);
  void broadcast(void* data, int64_t count, DType dtype, Device device, int root);
  void barrier();

  // ---- tensors: the collective over the elements in row-major order, on the tensor's device ---
  // Not differentiable: they move data and record nothing for autograd; the ops that need a
  // backward through a collective (the gather of embeddings, SyncBatchNorm) define their own.
  // In-place ones write through views too (any layout) and count as an in-place write.
  void all_reduce(const Tensor& tensor, ReduceOp op) override;
  // [n, ...] on every rank -> [P*n, ...]: rank k's rows at [k*n, (k+1)*n). A 0-d tensor gives [P].
  // Every rank's tensor has the same shape.
  Tensor all_gather(const Tensor& tensor) override;
  // [P*n, ...] on every rank -> this rank's [n, ...]: rows [r*n, (r+1)*n) reduced over the ranks.
  Tensor reduce_scatter(const Tensor& tensor, ReduceOp op = ReduceOp::Sum) override;
  void broadcast(const Tensor& tensor, int root) override;

  // Prints "rank r of P: <message>" on stderr and ends every rank of the job with `exit_code`
  // (MPI_Abort; a job of one exits).
  [[noreturn]] void abort(std::string_view message, int exit_code = 1) const;

 private:
  struct State;
  State& live() const;  // throws after a move
  std::unique_ptr<State> state_;
};

// Ends MPI in this process now, waiting until every rank does the same (a collective), so
// that the process may then exit with any status without ending the others: every rank
// stopped by Ctrl-C returning 130, say. No communicator can be used or created afterwards
// (MPI cannot start again). Nothing to do without MPI.
void finalize();

}  // namespace visrep::distributed
