// The collectives of a data-parallel job as the engine's cross-rank ops see them: the rank,
// the number of ranks and the tensor collectives. The ops whose backward pass crosses ranks
// (engine/ops/collectives.h all_gather_rows, the cross-rank contrastive losses of
// engine/ops/contrastive.h, sync_batch_norm in engine/ops/batch_norm.h) take one of these.
//
// An interface, so that the engine, which links neither MPI nor NCCL, can call them:
// distributed::Communicator (communicator.h, library visrep_distributed) is the
// implementation a job uses, and a test may give its own. The semantics are the
// communicator's (communicator.h): every rank makes the same calls in the same order;
// all_gather is rank-major; none of them records anything for autograd.
//
// Header only: it is part of the engine's interface, not of the visrep_distributed library.
#pragma once

#include <cstdint>

#include "engine/tensor.h"

namespace visrep::distributed {

enum class ReduceOp : uint8_t { Sum, Average, Max };

class Collectives {
 public:
  virtual ~Collectives() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;

  // In place: tensor[i] = op over the ranks of their tensor[i].
  virtual void all_reduce(const Tensor& tensor, ReduceOp op) = 0;
  // [n, ...] on every rank -> [P*n, ...]: rank k's rows at [k*n, (k+1)*n).
  virtual Tensor all_gather(const Tensor& tensor) = 0;
  // [P*n, ...] on every rank -> this rank's [n, ...]: rows [r*n, (r+1)*n) reduced over the ranks.
  virtual Tensor reduce_scatter(const Tensor& tensor, ReduceOp op = ReduceOp::Sum) = 0;
  // In place: every rank's tensor becomes root's.
  virtual void broadcast(const Tensor& tensor, int root) = 0;
};

}  // namespace visrep::distributed
