// Where a process sits in a job, from its launcher's variables (no MPI involved).
#include <catch2/catch.hpp>
#include <map>
#include <string>

#include "engine/distributed/launch_environment.h"
#include "engine/error.h"

namespace visrep::distributed::test {
namespace {

using Catch::Contains;

LaunchEnvironment from(const std::map<std::string, std::string>& variables) {
  return LaunchEnvironment::from([&](const char* name) -> std::optional<std::string> {
    const auto found = variables.find(name);
    if (found == variables.end()) return std::nullopt;
    return found->second;
  });
}

}  // namespace

TEST_CASE("launch environment: no launcher is a job of one", "[launch]") {
  const LaunchEnvironment environment = from({{"PATH", "/usr/bin"}});
  CHECK_FALSE(environment.launched());
  CHECK(environment.rank == 0);
  CHECK(environment.size == 1);
  CHECK(environment.local_rank == 0);
  CHECK(environment.local_size == 1);
}

TEST_CASE("launch environment: Open MPI's and Hydra's variables", "[launch]") {
  const LaunchEnvironment openmpi = from({{"OMPI_COMM_WORLD_SIZE", "8"},
                                          {"OMPI_COMM_WORLD_RANK", "5"},
                                          {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                                          {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"}});
  CHECK(openmpi.launched());
  CHECK(openmpi.launcher == "Open MPI (mpirun)");
  CHECK(openmpi.size == 8);
  CHECK(openmpi.rank == 5);
  CHECK(openmpi.local_rank == 1);
  CHECK(openmpi.local_size == 4);

  const LaunchEnvironment hydra = from({{"PMI_SIZE", "2"}, {"PMI_RANK", "1"}});
  CHECK(hydra.launcher == "Hydra (MPICH, Intel MPI)");
  CHECK(hydra.rank == 1);
  CHECK(hydra.size == 2);
  CHECK(hydra.local_rank == -1);  // not given: the MPI transport counts the ranks on the host
  CHECK(hydra.local_size == -1);
}

TEST_CASE("launch environment: bad values name the variable", "[launch][bad-input]") {
  CHECK_THROWS_WITH(from({{"OMPI_COMM_WORLD_SIZE", "four"}, {"OMPI_COMM_WORLD_RANK", "0"}}),
                    Contains("OMPI_COMM_WORLD_SIZE='four' is not an integer"));
  CHECK_THROWS_WITH(from({{"OMPI_COMM_WORLD_SIZE", "4"}, {"OMPI_COMM_WORLD_RANK", "4"}}),
                    Contains("OMPI_COMM_WORLD_RANK=4 is out of range: expected [0, 4)"));
  CHECK_THROWS_WITH(from({{"OMPI_COMM_WORLD_SIZE", "0"}, {"OMPI_COMM_WORLD_RANK", "0"}}),
                    Contains("OMPI_COMM_WORLD_SIZE=0 is out of range"));
  CHECK_THROWS_WITH(from({{"OMPI_COMM_WORLD_SIZE", "4"}}),
                    Contains("OMPI_COMM_WORLD_SIZE=4 is set but OMPI_COMM_WORLD_RANK is not"));
  CHECK_THROWS_WITH(from({{"OMPI_COMM_WORLD_SIZE", "4"},
                          {"OMPI_COMM_WORLD_RANK", "1"},
                          {"OMPI_COMM_WORLD_LOCAL_RANK", "2"},
                          {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}}),
                    Contains("OMPI_COMM_WORLD_LOCAL_RANK=2 is out of range: expected [0, 2)"));
}

TEST_CASE("local_cuda_device: the local rank's GPU, or why not", "[launch]") {
  LaunchEnvironment environment;
  environment.launcher = "Open MPI (mpirun)";
  environment.source = "OMPI_COMM_WORLD_*";
  environment.rank = 5;
  environment.size = 8;
  environment.local_rank = 1;
  environment.local_size = 4;
  CHECK(local_cuda_device(environment, 4) == Device::cuda(1));
  CHECK_THROWS_WITH(local_cuda_device(environment, 2),
                    Contains("4 ranks on this host but only 2 CUDA device(s)") && Contains("--map-by ppr:2:node"));
  CHECK_THROWS_WITH(local_cuda_device(environment, 0), Contains("rank 5 wants a CUDA device but this host has none"));
  environment.local_rank = -1;
  CHECK_THROWS_WITH(local_cuda_device(environment, 4), Contains("pass --device cuda:N"));
}

}  // namespace visrep::distributed::test
