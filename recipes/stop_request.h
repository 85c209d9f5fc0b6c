// A process-wide request to stop training, for an app's SIGINT handler (Ctrl-C):
// request_stop() only stores to a lock-free std::atomic<bool>, which is async-signal-safe.
// Every resumable training loop checks it after every step (recipes/training_run.h
// TrainingRun::end_step); when set it writes a checkpoint, then returns with result.stopped
// = true. The request stays set (so an app's later stages see it too) until
// clear_stop_request().
#pragma once

namespace visrep::recipes {

void request_stop() noexcept;
bool stop_requested() noexcept;
void clear_stop_request() noexcept;

}  // namespace visrep::recipes
