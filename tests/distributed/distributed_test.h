// What the communicator's tests share: the job's communicator, and rank-asymmetric data.
//
// The same test binary runs without a launcher (a job of one: the single-process transport)
// and under mpirun on 1 to 4 ranks (tests/distributed/launch.py). Every rank runs every test
// case in the same order and makes the same collective calls, so the value checks use CHECK,
// never REQUIRE: a failed check must not make one rank skip the collectives of the rest of
// its test case while the others make them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/distributed/communicator.h"
#include "engine/dtype.h"

namespace visrep::distributed::test {

// The communicator of the test binary's job, made on first use (a collective: every rank
// makes it in the same test case). Its watchdog gives up after 60 s, so that a test that
// leaves the ranks out of step fails with the call it waited for rather than hanging.
Communicator& world();
// The job's communicator if a test made it (main() agrees on the outcome through it).
Communicator* world_if_made();

// Rank `rank`'s element `i`: different on every rank, of both signs, with the largest value
// on different ranks for different i, and exact in every dtype used here (multiples of 1/4
// of magnitude below 64 for the floating ones, so sums over 4 ranks in any order are exact;
// multiples of 2^33 for int64, so a transport that truncated to 32 bits would show).
template <class T>
T element(int rank, int64_t i);

// op over the ranks 0 .. size-1 of element<T>(k, i), computed the way the host transports
// compute it (a sum in T, then a division by size for the average).
template <class T>
T reduced(ReduceOp op, int size, int64_t i);

// 0, 1, 7 (odd), 1031 (prime), 70001 (larger than any internal chunk).
inline const std::vector<int64_t> kCounts = {0, 1, 7, 1031, 70001};

}  // namespace visrep::distributed::test
