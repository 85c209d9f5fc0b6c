// Where this process sits in a job, read from what the launcher put in its environment
// before any MPI call is made: whether to start MPI at all, and which GPU a rank takes
// (`--device cuda` picks the local rank's), are decided from it.
//
//   launcher                      size / rank                          local rank / local size
//   Open MPI's mpirun (Debian's)  OMPI_COMM_WORLD_SIZE / _RANK         OMPI_COMM_WORLD_LOCAL_RANK / _LOCAL_SIZE
//   Hydra (MPICH, Intel MPI)      PMI_SIZE / PMI_RANK                  MPI_LOCALRANKID / MPI_LOCALNRANKS
//
// A process no launcher started is a job of one rank.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "engine/device.h"

namespace visrep::distributed {

struct LaunchEnvironment {
  std::string launcher;  // "" without one, "Open MPI (mpirun)" or "Hydra (MPICH, Intel MPI)"
  std::string source;    // the variables the values came from, for messages ("OMPI_COMM_WORLD_*")
  int rank = 0;
  int size = 1;
  // -1 when the launcher did not say; the MPI transport then counts the ranks on this host.
  int local_rank = 0;
  int local_size = 1;

  bool launched() const { return !launcher.empty(); }

  // From this process's environment.
  static LaunchEnvironment detect();
  // From `lookup` (a variable's value, or nullopt when unset); detect() passes getenv.
  // Throws visrep::Error naming the variable when a value is not an integer in range.
  static LaunchEnvironment from(const std::function<std::optional<std::string>(const char* name)>& lookup);
};

// The CUDA device of this rank: cuda:<local rank>, one GPU per rank on each host (NCCL
// refuses two ranks on one GPU). Throws, saying how to launch instead, when the host has
// fewer than local_size devices.
Device local_cuda_device(const LaunchEnvironment& environment, int device_count);
Device local_cuda_device(const LaunchEnvironment& environment);  // with cuda_device_count()

}  // namespace visrep::distributed
