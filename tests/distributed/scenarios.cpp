// The failure scenarios: a job of several ranks in which one rank (the last) stops taking
// part in some way while the others wait for it in an all_reduce. launch.py runs each under
// mpirun and checks from outside what must hold whatever happens: every rank has exited
// within the time limit, the job's exit status is not 0 (or is the one the scenario
// chose), and the messages say what happened.
//
//   rank-fails                   returns 3 from main(), as an app does after printing its error
//   rank-exits-abruptly          _Exit(3): no exit handlers, as a crash that exits
//   rank-killed                  SIGKILL
//   rank-aborts                  Communicator::abort("...", 5)
//   rank-skips-collective        leaves the all_reduce out and returns 0 (MPI_Finalize then waits)
//   rank-hangs                   never reaches the all_reduce (stuck)
//   mismatched-counts-unchecked  call checks off and a larger count on the last rank: what MPI
//                                itself does (an error on some rank, or a hang)
//   every-rank-stops             every rank calls distributed::finalize() and returns 130 (an
//                                orderly stop of every rank, Ctrl-C): 130, no MPI_Abort
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "engine/distributed/communicator.h"
#include "engine/error.h"

namespace visrep::distributed::test {

int run_scenario(const std::string& name) {
  const std::vector<std::string> known = {
      "rank-fails", "rank-exits-abruptly",         "rank-killed",     "rank-aborts", "rank-skips-collective",
      "rank-hangs", "mismatched-counts-unchecked", "every-rank-stops"};
  if (std::find(known.begin(), known.end(), name) == known.end()) {
    std::fprintf(stderr, "test_distributed: no scenario '%s' (see tests/distributed/scenarios.cpp)\n", name.c_str());
    return 2;
  }
  try {
    CommunicatorOptions options;
    options.timeout_seconds = 3;
    options.check_calls = name != "mismatched-counts-unchecked";
    Communicator world(options);
    const int rank = world.rank();
    const bool last = rank == world.size() - 1;
    world.barrier();  // every rank is up
    std::vector<float> data(1000 + (name == "mismatched-counts-unchecked" && last ? 200 : 0), 1.0f);
    if (last) {
      std::fprintf(stderr, "scenario %s: rank %d of %d is the one that stops\n", name.c_str(), rank, world.size());
      if (name == "rank-fails") return 3;
      if (name == "rank-exits-abruptly") std::_Exit(3);
      if (name == "rank-killed") std::raise(SIGKILL);
      if (name == "rank-aborts") world.abort("scenario rank-aborts: this rank gives up on purpose", 5);
      if (name == "rank-skips-collective") return 0;
      if (name == "rank-hangs") std::this_thread::sleep_for(std::chrono::hours(1));
    }
    if (name == "every-rank-stops") {
      finalize();
      return 130;
    }
    world.all_reduce(data.data(), static_cast<int64_t>(data.size()), kFloat32, Device::cpu(), ReduceOp::Sum);
    world.all_reduce(data.data(), static_cast<int64_t>(data.size()), kFloat32, Device::cpu(), ReduceOp::Sum);
    std::fprintf(stderr, "scenario %s: rank %d finished its all_reduce calls\n", name.c_str(), rank);
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "scenario %s: error: %s\n", name.c_str(), error.what());
    return 2;
  }
}

}  // namespace visrep::distributed::test
