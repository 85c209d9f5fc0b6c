#include "engine/optim/optimizer.h"

#include <fmt/format.h>

#include <charconv>
#include <optional>
#include <unordered_map>

#include "engine/shape.h"

namespace visrep::optim {

void Optimizer::zero_grad() {
  for (const Tensor& parameter : all_parameters()) parameter.set_grad(Tensor());
}

namespace detail {

namespace {

constexpr std::string_view kMomentumSuffix = ".momentum";

// "group<g>.param<i>.momentum" -> (g, i); anything else: none.
std::optional<std::pair<size_t, size_t>> parse_positional_key(const std::string& key) {
  const auto number = [&](size_t& at, std::string_view before, size_t& value) {
    if (key.compare(at, before.size(), before) != 0) return false;
    at += before.size();
    const auto [end, error] = std::from_chars(key.data() + at, key.data() + key.size(), value);
    if (error != std::errc() || end == key.data() + at) return false;
    at = static_cast<size_t>(end - key.data());
    return true;
  };
  size_t at = 0, group = 0, parameter = 0;
  if (!number(at, "group", group) || !number(at, ".param", parameter)) return std::nullopt;
  if (key.substr(at) != kMomentumSuffix) return std::nullopt;
  return std::pair{group, parameter};
}

}  // namespace

std::string momentum_state_key(const std::string& parameter_name) {
  return parameter_name + std::string(kMomentumSuffix);
}

std::string positional_momentum_state_key(size_t group, size_t parameter) {
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

std::vector<std::vector<std::string>> parameter_names(const char* optimizer,
                                                      const std::vector<std::vector<Tensor>>& groups,
                                                      const nn::NamedTensors& parameters) {
  std::unordered_map<const TensorImpl*, const std::string*> name_of;
  for (const auto& [name, tensor] : parameters) name_of.emplace(tensor.impl().get(), &name);  // the first name wins
  std::vector<std::vector<std::string>> names(groups.size());
  for (size_t g = 0; g < groups.size(); ++g) {
    for (size_t i = 0; i < groups[g].size(); ++i) {
      const auto found = name_of.find(groups[g][i].impl().get());
      VISREP_CHECK(found != name_of.end(),
                   "{}: parameter {} of group {} ({}) is none of the {} named parameters its state is keyed by",
                   optimizer, i, g, groups[g][i].description(), parameters.size());
      names[g].push_back(*found->second);
    }
  }
  return names;
}

std::map<std::string, std::pair<size_t, size_t>> state_slots(const char* optimizer,
                                                            const std::map<std::string, Tensor>& state,
                                                            const std::vector<std::vector<std::string>>& names) {
  std::map<std::string, std::pair<size_t, size_t>> by_key;  // momentum_state_key(name) -> slot
  size_t count = 0;
  for (size_t g = 0; g < names.size(); ++g) {
    for (size_t i = 0; i < names[g].size(); ++i, ++count) by_key.emplace(momentum_state_key(names[g][i]), std::pair{g, i});
  }
  std::map<std::string, std::pair<size_t, size_t>> slots;
  std::map<std::pair<size_t, size_t>, std::string> taken;
  for (const auto& [key, tensor] : state) {
    std::optional<std::pair<size_t, size_t>> slot;
    if (const auto found = by_key.find(key); found != by_key.end()) {
      slot = found->second;
    } else if (const auto position = parse_positional_key(key);
               position && position->first < names.size() && position->second < names[position->first].size()) {
      slot = position;  // a checkpoint written before the state was keyed by name
    }
    VISREP_CHECK(slot.has_value(),
                 "{}.load_state_dict: unknown key '{}': it names none of the optimizer's {} parameters (keys are "
                 "'<parameter name>.momentum', e.g. '{}')",
                 optimizer, key, count, by_key.empty() ? std::string("none") : by_key.begin()->first);
    const auto [previous, inserted] = taken.emplace(*slot, key);
    VISREP_CHECK(inserted, "{}.load_state_dict: '{}' and '{}' are both the state of parameter '{}'", optimizer,
                 previous->second, key, names[slot->first][slot->second]);
    slots.emplace(key, *slot);
  }
  return slots;
}

Tensor momentum_buffer_from_state(const char* optimizer, const std::string& key, const Tensor& saved,
                                  const Tensor& parameter) {
  VISREP_CHECK(saved.shape() == parameter.shape(), "{}.load_state_dict: '{}' has shape {} but its parameter has {}",
               optimizer, key, shape_string(saved.shape()), shape_string(parameter.shape()));
  VISREP_CHECK(saved.dtype() == parameter.dtype(),
               "{}.load_state_dict: '{}' is {} but its parameter is {} (optimizer state is never converted)",
               optimizer, key, dtype_name(saved.dtype()), dtype_name(parameter.dtype()));
  return saved.to(parameter.device()).clone();
}

}  // namespace detail
}  // namespace visrep::optim
