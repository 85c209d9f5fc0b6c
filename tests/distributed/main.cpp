// The communicator tests' main. Three ways to run it:
//   test_distributed [Catch2 arguments]        every test case; without a launcher a job of
//                                              one, under mpirun one process per rank
//   test_distributed "[cuda]"                  the CUDA buffer cases; without a usable GPU it
//                                              says so and exits 4 (ctest's "Skipped")
//   test_distributed --scenario NAME           one of the failure scenarios (scenarios.cpp),
//                                              which tests/distributed/launch.py runs under
//                                              mpirun and judges from outside
// Under mpirun every rank runs the cases and prints its own results; at the end the ranks
// agree on the outcome (the most failures on any rank), so every rank exits with the same
// status and none is ended early by another's failure.
#define CATCH_CONFIG_RUNNER
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "engine/device.h"
#include "tests/distributed/distributed_test.h"

namespace visrep::distributed::test {
int run_scenario(const std::string& name);
}

namespace {

// Records this process's id in $VISREP_TEST_PID_DIR, so that launch.py can check, after
// mpirun has returned, that no rank is left running.
void record_pid() {
  const char* folder = std::getenv("VISREP_TEST_PID_DIR");
  if (folder == nullptr || *folder == '\0') return;
  const std::string pid = std::to_string(getpid());
  std::ofstream(std::string(folder) + "/" + pid) << pid << '\n';
}

bool selects_only_cuda_cases(int argc, char** argv) {
  bool cuda = false;
  for (int i = 1; i < argc; ++i) {
    const std::string argument = argv[i];
    if (argument.rfind("--list", 0) == 0 || argument == "-h" || argument == "--help") return false;
    if (argument.find("~[cuda]") != std::string::npos) return false;
    if (argument.find("[cuda]") != std::string::npos) cuda = true;
  }
  return cuda;
}

}  // namespace

int main(int argc, char** argv) {
  record_pid();
  if (argc == 3 && std::strcmp(argv[1], "--scenario") == 0) return visrep::distributed::test::run_scenario(argv[2]);
  if (selects_only_cuda_cases(argc, argv) && !visrep::cuda_available()) {
    std::printf("SKIPPED: no usable CUDA device on this machine: the [cuda] cases need one\n");
    return 4;
  }
  const int failed = Catch::Session().run(argc, argv);
  int64_t most_failed = failed;
  if (visrep::distributed::Communicator* world = visrep::distributed::test::world_if_made()) {
    world->all_reduce(&most_failed, 1, visrep::kInt64, visrep::Device::cpu(), visrep::distributed::ReduceOp::Max);
    if (world->size() > 1 && most_failed > failed) {
      std::printf("rank %d: another rank had %lld failed test case(s)\n", world->rank(),
                  static_cast<long long>(most_failed));
    }
  }
  std::fflush(stdout);
  return most_failed > 0 ? 1 : 0;
}
