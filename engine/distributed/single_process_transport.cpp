// The transport of a job of one rank: every collective is the identity. all_reduce,
// broadcast and the in-place forms change nothing (the average of one value is itself); the
// out-of-place all_gather and reduce_scatter copy send to receive, on the buffers' device.
#include <cstdlib>

#include "engine/distributed/transport.h"
#include "engine/storage.h"

namespace visrep::distributed {
namespace {

class SingleProcessTransport final : public JobTransport {
 public:
  std::string name() const override { return "single-process"; }
  Membership membership() const override { return {}; }

  void all_reduce(void*, int64_t, DType, ReduceOp, Device) override {}
  void all_gather(const void* send, void* receive, int64_t count, DType dtype, Device device) override {
    copy(send, receive, count, dtype, device);
  }
  void reduce_scatter(const void* send, void* receive, int64_t count, DType dtype, ReduceOp, Device device) override {
    copy(send, receive, count, dtype, device);
  }
  void broadcast(void*, int64_t, DType, int, Device) override {}
  void barrier() override {}
  [[noreturn]] void end_job(int exit_code) override { std::exit(exit_code); }

 private:
  static void copy(const void* send, void* receive, int64_t count, DType dtype, Device device) {
    if (send == receive || count == 0) return;
    copy_bytes(receive, device, send, device, static_cast<size_t>(count) * element_size(dtype));
  }
};

}  // namespace

std::unique_ptr<JobTransport> make_single_process_transport() { return std::make_unique<SingleProcessTransport>(); }

}  // namespace visrep::distributed
