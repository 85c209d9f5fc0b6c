#include "engine/optim/optimizer.h"

namespace visrep::optim {

void Optimizer::zero_grad() {
  for (const Tensor& parameter : all_parameters()) parameter.set_grad(Tensor());
}

}  // namespace visrep::optim
