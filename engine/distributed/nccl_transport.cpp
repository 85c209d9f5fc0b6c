// The NCCL transport: NCCL's collectives on CUDA buffers, queued on the stream every op on
// the device is queued on (kernels/cuda/runtime.h), so they are ordered with the kernels
// around them and the call returns without waiting for the GPU.
//
// Nothing in NCCL may block forever: the communicator is created non-blocking
// (config.blocking = 0), so any NCCL call may return ncclInProgress; it is then polled with
// ncclCommGetAsyncError until it settles, up to the deadline, past which the communicator
// is aborted (ncclCommAbort) and the failure reported. A queued collective is handed to the
// watchdog as a completion event, which it polls together with the communicator's
// asynchronous error until the GPU is done with it.
//
// Rank 0's unique id reaches the other ranks through the host transport (MPI's broadcast).
#include <cuda_runtime_api.h>
#include <fmt/format.h>
#include <nccl.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>

#include "engine/distributed/transport.h"
#include "engine/distributed/watchdog.h"
#include "engine/error.h"
#include "kernels/cuda/runtime.h"

namespace visrep::distributed {
namespace {

using Clock = std::chrono::steady_clock;

ncclDataType_t nccl_type(DType dtype) {
  switch (dtype) {
    case kFloat32: return ncclFloat32;
    case kFloat64: return ncclFloat64;
    case kBFloat16: return ncclBfloat16;
    case kInt32: return ncclInt32;
    case kInt64: return ncclInt64;
    case kUInt8: return ncclUint8;
  }
  VISREP_FAIL("NCCL transport: no NCCL type for dtype {}", static_cast<int>(dtype));
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return ncclSum;
    case ReduceOp::Average: return ncclAvg;
    case ReduceOp::Max: return ncclMax;
  }
  return ncclSum;
}

class NcclTransport final : public Transport {
 public:
  NcclTransport(JobTransport& host, Device device, double timeout_seconds, Watchdog* watchdog)
      : device_(device), timeout_(timeout_seconds), watchdog_(watchdog) {
    const Membership membership = host.membership();
    try {
      stream_ = kernels::cuda::stream(device.index);  // also makes the device current, for NCCL's init
    } catch (const std::runtime_error& error) {
      VISREP_FAIL("NCCL transport: cannot use {}: {}", device.str(), error.what());
    }
    ncclUniqueId id{};
    if (membership.rank == 0) check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    host.broadcast(&id, sizeof id, kUInt8, 0, Device::cpu());
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    settle(ncclCommInitRankConfig(&comm_, membership.size, id, membership.rank, &config),
           fmt::format("ncclCommInitRankConfig (rank {} of {})", membership.rank, membership.size));
    int version = 0;
    ncclGetVersion(&version);
    name_ = fmt::format("NCCL {}.{}.{} on {}", version / 10000, version / 100 % 100, version % 100, device.str());
    if (watchdog_ != nullptr) watchdog_->set_transport([this] { return asynchronous_failure(); }, [this] { abort(); });
  }

  ~NcclTransport() override {
    if (watchdog_ != nullptr) watchdog_->clear_transport();
    if (comm_ == nullptr || aborted_) return;
    // Finalising waits (non-blocking, polled) for the work still queued; then destroy.
    try {
      settle(ncclCommFinalize(comm_), "ncclCommFinalize");
    } catch (const TransportFailure& failure) {
      std::fprintf(stderr, "NCCL transport on %s: %s\n", device_.str().c_str(), failure.what());
      return;  // settle() aborted the communicator
    }
    ncclCommDestroy(comm_);
  }

  std::string name() const override { return name_; }

  void all_reduce(void* data, int64_t count, DType dtype, ReduceOp op, Device) override {
    queued(ncclAllReduce(data, data, static_cast<size_t>(count), nccl_type(dtype), nccl_op(op), comm_, stream()),
           "ncclAllReduce");
  }
  // In place when send == receive + rank * count, which NCCL recognises itself.
  void all_gather(const void* send, void* receive, int64_t count, DType dtype, Device) override {
    queued(ncclAllGather(send, receive, static_cast<size_t>(count), nccl_type(dtype), comm_, stream()),
           "ncclAllGather");
  }
  // In place when receive == send + rank * count, likewise.
  void reduce_scatter(const void* send, void* receive, int64_t count, DType dtype, ReduceOp op, Device) override {
    queued(ncclReduceScatter(send, receive, static_cast<size_t>(count), nccl_type(dtype), nccl_op(op), comm_, stream()),
           "ncclReduceScatter");
  }
  void broadcast(void* data, int64_t count, DType dtype, int root, Device) override {
    queued(ncclBroadcast(data, data, static_cast<size_t>(count), nccl_type(dtype), root, comm_, stream()),
           "ncclBroadcast");
  }

  std::function<bool()> last_call_done() override {
    if (!last_event_) return {};
    return [event = std::move(last_event_)] { return cudaEventQuery(event.get()) != cudaErrorNotReady; };
  }

 private:
  cudaStream_t stream() {
    try {
      return kernels::cuda::stream(device_.index);
    } catch (const std::runtime_error& error) {
      throw TransportFailure(fmt::format("selecting {}: {}", device_.str(), error.what()));
    }
  }

  std::string describe(ncclResult_t result) const {
    std::string text = ncclGetErrorString(result);
    const char* last = comm_ != nullptr ? ncclGetLastError(comm_) : ncclGetLastError(nullptr);
    if (last != nullptr && *last != '\0') text += fmt::format(" ({})", last);
    return text;
  }

  static void check(ncclResult_t result, const char* what) {
    if (result != ncclSuccess) throw TransportFailure(fmt::format("{} failed: {}", what, ncclGetErrorString(result)));
  }

  // Waits, up to the deadline, until a call on the non-blocking communicator has settled;
  // aborts the communicator and throws when it failed or did not settle in time.
  void settle(ncclResult_t result, const std::string& what) {
    const Clock::time_point deadline =
        Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_));
    int polls = 0;
    while (result == ncclInProgress) {
      if (Clock::now() > deadline) {
        abort();
        throw TransportFailure(
            fmt::format("{} had not completed after {} s; the NCCL communicator was aborted", what, timeout_));
      }
      // Spin briefly (a queued collective settles in microseconds), then back off.
      if (++polls > 1000) std::this_thread::sleep_for(std::chrono::microseconds(100));
      if (comm_ == nullptr || ncclCommGetAsyncError(comm_, &result) != ncclSuccess) {
        abort();
        throw TransportFailure(fmt::format("{}: ncclCommGetAsyncError failed", what));
      }
    }
    if (result != ncclSuccess) {
      const std::string detail = describe(result);
      abort();
      throw TransportFailure(fmt::format("{} failed: {}; the NCCL communicator was aborted", what, detail));
    }
  }

  // After a collective was queued: its completion event, for the watchdog.
  void queued(ncclResult_t result, const char* what) {
    settle(result, what);
    if (watchdog_ == nullptr) return;
    cudaEvent_t event = nullptr;
    const cudaError_t created = cudaEventCreateWithFlags(&event, cudaEventDisableTiming);
    if (created != cudaSuccess) {
      throw TransportFailure(
          fmt::format("cudaEventCreateWithFlags after {} failed: {}", what, cudaGetErrorString(created)));
    }
    last_event_ = std::shared_ptr<CUevent_st>(event, [](cudaEvent_t e) { cudaEventDestroy(e); });
    const cudaError_t recorded = cudaEventRecord(event, stream_);
    if (recorded != cudaSuccess) {
      throw TransportFailure(fmt::format("cudaEventRecord after {} failed: {}", what, cudaGetErrorString(recorded)));
    }
  }

  // The watchdog's poll: "" while the communicator is healthy.
  std::string asynchronous_failure() {
    if (aborted_) return {};
    ncclResult_t state = ncclSuccess;
    if (ncclCommGetAsyncError(comm_, &state) != ncclSuccess) return "ncclCommGetAsyncError failed";
    if (state == ncclSuccess || state == ncclInProgress) return {};
    return fmt::format("NCCL reported an asynchronous error on {}: {}", device_.str(), describe(state));
  }

  // Once, from whichever thread gets here first (the watchdog's, or this one after a failure).
  void abort() {
    if (comm_ != nullptr && !aborted_.exchange(true)) ncclCommAbort(comm_);
  }

  Device device_;
  double timeout_;
  Watchdog* watchdog_;
  cudaStream_t stream_ = nullptr;
  ncclComm_t comm_ = nullptr;
  std::atomic<bool> aborted_{false};
  std::shared_ptr<CUevent_st> last_event_;
  std::string name_;
};

}  // namespace

std::unique_ptr<Transport> make_nccl_transport(JobTransport& host, Device device, double timeout_seconds,
                                               Watchdog* watchdog) {
  return std::make_unique<NcclTransport>(host, device, timeout_seconds, watchdog);
}

}  // namespace visrep::distributed
