// The per-thread scratch buffers of kernels/cpu/scratch.h.
#include "kernels/cpu/scratch.h"

#include <cstdlib>
#include <new>

namespace visrep::kernels::cpu::detail {
namespace {

constexpr size_t kAlignment = 64;  // a cache line, and enough for any vector load

struct Buffer {
  struct Free {
    void operator()(void* data) const { std::free(data); }
  };
  std::unique_ptr<void, Free> data;
  size_t capacity = 0;
};

}  // namespace

void* thread_scratch_bytes(ScratchSlot slot, size_t bytes) {
  thread_local Buffer buffers[static_cast<size_t>(ScratchSlot::kCount)];
  Buffer& buffer = buffers[static_cast<size_t>(slot)];
  if (bytes > buffer.capacity || buffer.data == nullptr) {
    const size_t size = (bytes + kAlignment - 1) / kAlignment * kAlignment + kAlignment;
    buffer.data.reset();
    buffer.data.reset(std::aligned_alloc(kAlignment, size));
    if (buffer.data == nullptr) throw std::bad_alloc();
    buffer.capacity = size;
  }
  return buffer.data.get();
}

}  // namespace visrep::kernels::cpu::detail
