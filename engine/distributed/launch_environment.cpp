#include "engine/distributed/launch_environment.h"

#include <charconv>
#include <cstdlib>

#include "engine/error.h"

namespace visrep::distributed {
namespace {

struct LauncherVariables {
  const char* launcher;
  const char* source;
  const char* size;
  const char* rank;
  const char* local_rank;
  const char* local_size;
};

// Open MPI first: it is the MPI visrep is built and tested with.
constexpr LauncherVariables kLaunchers[] = {
    {"Open MPI (mpirun)", "OMPI_COMM_WORLD_*", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK",
     "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE"},
    {"Hydra (MPICH, Intel MPI)", "PMI_*", "PMI_SIZE", "PMI_RANK", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"},
};

// The value of `name` as an integer in [low, high); nullopt when unset.
std::optional<int> integer_variable(const std::function<std::optional<std::string>(const char*)>& lookup,
                                    const char* name, long long low, long long high) {
  const std::optional<std::string> text = lookup(name);
  if (!text) return std::nullopt;
  long long value = 0;
  const char* end = text->data() + text->size();
  const auto [stop, error] = std::from_chars(text->data(), end, value);
  VISREP_CHECK(error == std::errc() && stop == end && !text->empty(), "launch environment: {}='{}' is not an integer",
               name, *text);
  VISREP_CHECK(value >= low && value < high, "launch environment: {}={} is out of range: expected [{}, {})", name,
               value, low, high);
  return static_cast<int>(value);
}

}  // namespace

LaunchEnvironment LaunchEnvironment::from(const std::function<std::optional<std::string>(const char*)>& lookup) {
  constexpr long long kMaxRanks = 1 << 24;
  for (const LauncherVariables& variables : kLaunchers) {
    const std::optional<int> size = integer_variable(lookup, variables.size, 1, kMaxRanks);
    if (!size) continue;
    const std::optional<int> rank = integer_variable(lookup, variables.rank, 0, *size);
    VISREP_CHECK(rank.has_value(), "launch environment: {}={} is set but {} is not", variables.size, *size,
                 variables.rank);
    LaunchEnvironment environment;
    environment.launcher = variables.launcher;
    environment.source = variables.source;
    environment.size = *size;
    environment.rank = *rank;
    const std::optional<int> local_size = integer_variable(lookup, variables.local_size, 1, *size + 1LL);
    const std::optional<int> local_rank =
        integer_variable(lookup, variables.local_rank, 0, local_size ? *local_size : *size);
    environment.local_rank = local_rank.value_or(-1);
    environment.local_size = local_rank ? local_size.value_or(-1) : -1;
    return environment;
  }
  return LaunchEnvironment{};
}

LaunchEnvironment LaunchEnvironment::detect() {
  return from([](const char* name) -> std::optional<std::string> {
    const char* value = std::getenv(name);
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  });
}

Device local_cuda_device(const LaunchEnvironment& environment, int device_count) {
  VISREP_CHECK(environment.local_rank >= 0,
               "local_cuda_device: the launcher ({}) did not say which rank on this host this is ({} has no local "
               "rank): pass --device cuda:N",
               environment.launcher, environment.source);
  VISREP_CHECK(device_count > 0, "local_cuda_device: rank {} wants a CUDA device but this host has none",
               environment.rank);
  VISREP_CHECK(environment.local_rank < device_count && environment.local_size <= device_count,
               "local_cuda_device: {} ranks on this host but only {} CUDA device(s): start at most one rank per GPU "
               "(mpirun -np N --map-by ppr:{}:node) or pass --device cpu",
               environment.local_size, device_count, device_count);
  return Device::cuda(environment.local_rank);
}

Device local_cuda_device(const LaunchEnvironment& environment) {
  return local_cuda_device(environment, cuda_device_count());
}

}  // namespace visrep::distributed
