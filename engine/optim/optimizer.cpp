#include "engine/optim/optimizer.h"

#include <fmt/format.h>

#include "engine/shape.h"

namespace visrep::optim {

void Optimizer::zero_grad() {
  for (const Tensor& parameter : all_parameters()) parameter.set_grad(Tensor());
}

namespace detail {

std::string momentum_state_key(size_t group, size_t parameter) {
  return fmt::format("group{}.param{}.momentum", group, parameter);
}

void check_trainable_leaves(const char* optimizer, const std::string& group, const std::vector<Tensor>& parameters) {
  for (const Tensor& parameter : parameters) {
    VISREP_CHECK(parameter.defined(), "{}: group '{}' holds an undefined tensor", optimizer, group);
    VISREP_CHECK(parameter.requires_grad() && parameter.is_leaf(),
                 "{}: group '{}' holds a tensor that is not a trainable leaf ({})", optimizer, group,
                 parameter.description());
  }
}

Tensor momentum_buffer_from_state(const char* optimizer, const std::string& key, const Tensor& saved,
                                  const Tensor& parameter) {
  VISREP_CHECK(saved.shape() == parameter.shape(), "{}.load_state_dict: '{}' has shape {} but its parameter has {}",
               optimizer, key, shape_string(saved.shape()), shape_string(parameter.shape()));
  return saved.to(parameter.dtype()).to(parameter.device()).clone();
}

}  // namespace detail
}  // namespace visrep::optim
