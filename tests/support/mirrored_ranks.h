// A job of P ranks simulated in one process, in which every other rank holds exactly what this
// one holds: the collectives a real job of identical ranks would return, without MPI. It lets
// the single-process tests run the cross-rank ops (all_gather_rows, the cross-rank
// contrastive losses, sync_batch_norm) as rank `rank` of `size`, with the other ranks' rows
// where a real job puts them:
//   all_gather(x)      P copies of x, rank-major
//   all_reduce(x, op)  sum: P x; average and max: x
//   reduce_scatter(g)  the sum of g's P blocks: rank k's gradient of rank r's rows is, in a job
//                      whose ranks are interchangeable, rank r's gradient of rank k's rows,
//                      so sum_k g_k[block r] = sum_k g_r[block k]
//   broadcast(x)       x
// What the ops compute then is the loss of the global batch made of P copies of this rank's
// batch, and its derivative with respect to the P copies moved together (sum_k dL/dcopy_k =
// P dL/dcopy_r, which is the gradient a real job gives rank r for the sum of the P ranks'
// losses): the tests compare them with the one-device ops on that batch, and the gradient
// checks differentiate them as functions of the one batch.
#pragma once

#include "engine/distributed/collectives.h"
#include "engine/ops.h"

namespace visrep::testing {

class MirroredRanks final : public distributed::Collectives {
 public:
  MirroredRanks(int rank, int size) : rank_(rank), size_(size) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void all_reduce(const Tensor& tensor, distributed::ReduceOp op) override {
    NoGradGuard no_grad;
    if (op == distributed::ReduceOp::Sum) Tensor(tensor).mul_(static_cast<double>(size_));
  }
  Tensor all_gather(const Tensor& tensor) override {
    NoGradGuard no_grad;
    const Tensor rows = tensor.dim() == 0 ? tensor.reshape({1}) : tensor;
    return concat(std::vector<Tensor>(static_cast<size_t>(size_), rows.detach())).contiguous();
  }
  Tensor reduce_scatter(const Tensor& tensor, distributed::ReduceOp op) override {
    NoGradGuard no_grad;
    const int64_t block = tensor.size(0) / size_;
    Tensor total = tensor.detach().narrow(0, 0, block).contiguous().clone();
    for (int k = 1; k < size_; ++k) total.add_(tensor.detach().narrow(0, k * block, block));
    if (op == distributed::ReduceOp::Average) total.mul_(1.0 / size_);
    return total;
  }
  void broadcast(const Tensor&, int) override {}

 private:
  int rank_, size_;
};

}  // namespace visrep::testing
