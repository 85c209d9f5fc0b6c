// The watchdog: gives up on a collective that the other ranks do not complete within a
// deadline, instead of letting this rank wait forever for one that died, is stuck, or
// skipped the call. (MPI's blocking collectives have no timeout, and a rank that leaves
// cleanly, MPI_Finalize and exit 0, is not noticed by mpirun while others still wait for
// it; NCCL's kernels spin on the GPU until their peers arrive.)
//
// One thread per communicator of more than one rank. It watches
//   - the blocking call in progress on the communicator's thread (watch(): a scope), and
//   - work queued on a GPU (track(): polled until done, every kPollInterval),
// and, while GPU work is queued, polls the device transport's asynchronous failure check
// (NCCL's ncclCommGetAsyncError). When a deadline passes or the check fails, it calls the
// transport's abort (ncclCommAbort, so that peers see the failure too) and then give_up with
// a message naming this rank and the call; the communicator's give_up prints it and exits.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <string>
#include <thread>

namespace visrep::distributed {

class Watchdog {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds kPollInterval{50};
  // Called on the watchdog's thread, with the watchdog's lock held: it must not call back
  // into the watchdog. The communicator's exits the process; a test's may record and return,
  // and the watchdog then forgets what expired.
  using GiveUp = std::function<void(const std::string& message)>;

  // `who` opens every message ("rank 1 of 4").
  Watchdog(double timeout_seconds, std::string who, GiveUp give_up);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // The blocking call `what` ("all_reduce (sum) of 1024 float32 elements on cpu, call 7") is
  // watched until the scope ends. One at a time (the communicator is used from one thread).
  class Scope {
   public:
    Scope() = default;
    ~Scope();
    Scope(Scope&& other) noexcept : watchdog_(other.watchdog_) { other.watchdog_ = nullptr; }
    Scope& operator=(Scope&&) = delete;

   private:
    friend class Watchdog;
    explicit Scope(Watchdog* watchdog) : watchdog_(watchdog) {}
    Watchdog* watchdog_ = nullptr;
  };
  [[nodiscard]] Scope watch(std::string what);

  // Work `what` queued on a GPU: `done` is polled until it returns true; the deadline
  // counts from now.
  void track(std::string what, std::function<bool()> done);
  // How many tracked items are not yet known to be done (for tests).
  int64_t tracked() const;

  // The device transport's failure check ("" while healthy) and its abort; cleared before
  // the transport goes away.
  void set_transport(std::function<std::string()> failure_check, std::function<void()> abort);
  void clear_transport();

  double timeout_seconds() const { return timeout_.count(); }

 private:
  struct Tracked {
    std::string what;
    Clock::time_point start;
    std::function<bool()> done;
  };

  void run();
  void expire(const std::string& message);  // with the lock held

  const std::chrono::duration<double> timeout_;
  const std::string who_;
  const GiveUp give_up_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool watching_ = false;  // a Scope is open and has not expired
  std::string watched_what_;
  Clock::time_point watched_start_;
  std::list<Tracked> tracked_;
  std::function<std::string()> failure_check_;
  std::function<void()> abort_transport_;
  std::thread thread_;  // last: starts once everything above is ready
};

}  // namespace visrep::distributed
