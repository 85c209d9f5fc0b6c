// The differentiable collective: the all-gather of rows whose backward pass sends each rank
// the gradient of its own rows, summed over every rank's use of them. The cross-rank
// contrastive losses (engine/ops/contrastive.h) gather their embeddings with it, which is
// google-research/simclr's tpu_cross_replica_concat and the "GatherLayer" of the PyTorch
// recipes.
#pragma once

#include "engine/distributed/collectives.h"
#include "engine/tensor.h"

namespace visrep {

// x [n, ...] on every rank (the same shape everywhere) -> [P*n, ...], rank k's rows at
// [k*n, (k+1)*n) (distributed::Collectives::all_gather). Backward: the reduce-scatter (sum)
// of the gathered gradient, so rank r's x gets sum_k dL_k/dy[r*n : (r+1)*n] over the ranks
// k, the gradient of the sum of every rank's loss. (A backward that kept only this rank's
// own block, dL_r/dy[r*n : (r+1)*n], would leave out every other rank's use of the rows:
// the negatives' gradients would be lost.) A collective in both directions: every rank must
// call it, and run the backward pass through it, in the same order; `ranks` must outlive
// the graph.
Tensor all_gather_rows(const Tensor& x, distributed::Collectives& ranks);

}  // namespace visrep
