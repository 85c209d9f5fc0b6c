#include "engine/ops/collectives.h"

#include "engine/autograd.h"
#include "engine/error.h"

namespace visrep {

Tensor all_gather_rows(const Tensor& x, distributed::Collectives& ranks) {
  VISREP_CHECK(x.defined() && x.dim() >= 1, "all_gather_rows: expected rows [n, ...], got {}",
               x.defined() ? x.description() : std::string("an undefined tensor"));
  const Tensor gathered = ranks.all_gather(x);
  distributed::Collectives* group = &ranks;
  return record("all_gather_rows", gathered, {x}, [group](const Tensor& grad) -> TensorList {
    return {group->reduce_scatter(grad.contiguous(), distributed::ReduceOp::Sum)};
  });
}

}  // namespace visrep
