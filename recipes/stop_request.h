// A process-wide request to stop training, for an app's SIGINT handler (Ctrl-C):
// request_stop() only stores to a lock-free std::atomic<bool>, which is async-signal-safe.
// The training loops (recipes/contrastive_training.h, recipes/bit.h) check it after every
// step; when set they write a checkpoint, then return with result.stopped = true. The
// request stays set (so an app's later stages see it too) until clear_stop_request().
#pragma once

namespace visrep::recipes {

void request_stop() noexcept;
bool stop_requested() noexcept;
void clear_stop_request() noexcept;

}  // namespace visrep::recipes
