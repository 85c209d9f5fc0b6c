// The host's side of the errors a GPU kernel finds in its inputs without the host waiting
// for them (kernels/cuda/deferred_errors.h): the pending checks in the order they were
// queued, each with its two-word slot in device memory and the message to give should the
// kernel have set it. Plain C++ with no CUDA in it, so that its rules are tested on any
// machine (tests/unit/test_deferred_errors.cpp).
//
// A slot is two int64: [0] the position of the first bad element (kernels atomicMin it in),
// kNoError while nothing was found; [1] a detail for the message (the bad value). kNoError
// is 0x7f7f7f7f7f7f7f7f, what a byte-wise memset of 0x7f writes, so clearing every slot at
// once is one cudaMemsetAsync; it is larger than any position a tensor can have (2^62).
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace visrep::kernels {

inline constexpr long long kNoError = 0x7f7f7f7f7f7f7f7fLL;
inline constexpr unsigned char kNoErrorByte = 0x7f;

// Builds an error message from a slot that was set: (position, detail). It runs later, on
// the host, after the device has finished: it must not touch the device, only what it captured.
using DeferredMessage = std::function<std::string(long long position, long long detail)>;

class DeferredErrorList {
 public:
  // Slots per device: a training step queues a few checks, and every read of a value
  // (the loss's item() for logging) empties the list; a full list is emptied by waiting.
  static constexpr size_t kCapacity = 1024;

  bool empty() const { return messages_.empty(); }
  bool full() const { return messages_.size() >= kCapacity; }
  size_t size() const { return messages_.size(); }

  // The index of the new check's slot (slots are used in order, from 0). Not when full().
  size_t add(DeferredMessage message) {
    messages_.push_back(std::move(message));
    return messages_.size() - 1;
  }

  // `slots` holds size() slots as read back from the device (2 * size() values). Empties the
  // list (every slot is cleared on the device alongside) and returns the message of the
  // first check, in queue order, whose slot was set: the earliest bad input is the cause,
  // later ones may only be its consequences.
  std::optional<std::string> take_first_error(const long long* slots) {
    std::vector<DeferredMessage> messages = std::move(messages_);
    messages_.clear();
    for (size_t i = 0; i < messages.size(); ++i) {
      if (slots[2 * i] != kNoError) return messages[i](slots[2 * i], slots[2 * i + 1]);
    }
    return std::nullopt;
  }

 private:
  std::vector<DeferredMessage> messages_;
};

}  // namespace visrep::kernels
