#include "engine/distributed/watchdog.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace visrep::distributed {
namespace {

std::string seconds_text(double seconds) {
  return seconds >= 10 ? fmt::format("{:.0f} s", seconds) : fmt::format("{:.1f} s", seconds);
}

}  // namespace

Watchdog::Watchdog(double timeout_seconds, std::string who, GiveUp give_up)
    : timeout_(timeout_seconds), who_(std::move(who)), give_up_(std::move(give_up)), thread_([this] { run(); }) {}

Watchdog::~Watchdog() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

Watchdog::Scope::~Scope() {
  if (watchdog_ == nullptr) return;
  std::lock_guard lock(watchdog_->mutex_);
  watchdog_->watching_ = false;
}

Watchdog::Scope Watchdog::watch(std::string what) {
  {
    std::lock_guard lock(mutex_);
    watching_ = true;
    watched_what_ = std::move(what);
    watched_start_ = Clock::now();
  }
  wake_.notify_all();
  return Scope(this);
}

void Watchdog::track(std::string what, std::function<bool()> done) {
  {
    std::lock_guard lock(mutex_);
    tracked_.push_back({std::move(what), Clock::now(), std::move(done)});
  }
  wake_.notify_all();
}

int64_t Watchdog::tracked() const {
  std::lock_guard lock(mutex_);
  return static_cast<int64_t>(tracked_.size());
}

void Watchdog::set_transport(std::function<std::string()> failure_check, std::function<void()> abort) {
  std::lock_guard lock(mutex_);
  failure_check_ = std::move(failure_check);
  abort_transport_ = std::move(abort);
}

void Watchdog::clear_transport() { set_transport({}, {}); }

void Watchdog::expire(const std::string& message) {
  if (abort_transport_) abort_transport_();
  give_up_(message);
}

void Watchdog::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    const Clock::time_point now = Clock::now();
    if (watching_ && now - watched_start_ >= timeout_) {
      watching_ = false;
      expire(
          fmt::format("{}: {} has waited {} for the other ranks, past the limit of {}: a rank has died, is "
                      "stuck, or did not make this call",
                      who_, watched_what_, seconds_text(std::chrono::duration<double>(now - watched_start_).count()),
                      seconds_text(timeout_.count())));
    }
    for (auto item = tracked_.begin(); item != tracked_.end();) {
      if (item->done()) {
        item = tracked_.erase(item);
      } else if (now - item->start >= timeout_) {
        const std::string message = fmt::format(
            "{}: {} was queued on the GPU {} ago and has not completed, past the limit of {}: a rank "
            "has died, is stuck, or did not make this call",
            who_, item->what, seconds_text(std::chrono::duration<double>(now - item->start).count()),
            seconds_text(timeout_.count()));
        item = tracked_.erase(item);
        expire(message);
      } else {
        ++item;
      }
    }
    if (!tracked_.empty() && failure_check_) {
      const std::string failure = failure_check_();
      if (!failure.empty()) {
        const std::string what = tracked_.front().what;
        tracked_.clear();
        expire(fmt::format("{}: {} (while {} was queued)", who_, failure, what));
      }
    }
    // Sleep until the open scope's deadline, or the next poll of queued GPU work.
    Clock::time_point wake = now + std::chrono::hours(1);
    if (watching_) wake = std::min(wake, watched_start_ + std::chrono::duration_cast<Clock::duration>(timeout_));
    if (!tracked_.empty()) wake = std::min(wake, now + kPollInterval);
    wake_.wait_until(lock, wake);
  }
}

}  // namespace visrep::distributed
