#include "recipes/data_parallel.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/autograd.h"
#include "engine/nn/layers.h"
#include "engine/ops.h"

namespace visrep::recipes {

int64_t DataParallel::local_batch_size(int64_t global_batch, const std::string& recipe) const {
  VISREP_CHECK(global_batch % size() == 0,
               "{}: --batch-size {} is not divisible by the {} ranks of this job: the global batch is split into equal "
               "slices, one per rank (use a multiple of {}, or another number of ranks)",
               recipe, global_batch, size(), size());
  return global_batch / size();
}

Tensor DataParallel::gather_shares(const Tensor& share, int64_t n) const {
  if (!several()) return share;
  NoGradGuard no_grad;
  const auto [begin, end] = local_range(n);
  VISREP_CHECK(share.dim() >= 1 && share.size(0) == end - begin,
               "data parallel: rank {}'s share of {} rows is {} rows, got {}", rank(), n, end - begin,
               share.description());
  // all_gather takes the same shape from every rank: each share padded to the largest.
  const int64_t largest = (n + size() - 1) / size();
  Shape padded_shape = share.shape();
  padded_shape[0] = largest;
  const Tensor padded = zeros(padded_shape, TensorOptions(share.dtype(), share.device()));
  if (end > begin) padded.narrow(0, 0, end - begin).copy_(share);
  const Tensor gathered = ranks_->all_gather(padded);
  std::vector<Tensor> rows;
  for (int k = 0; k < size(); ++k) {
    const int64_t count = (k + 1) * n / size() - k * n / size();
    if (count > 0) rows.push_back(gathered.narrow(0, k * largest, count));
  }
  return concat(rows).contiguous();
}

void DataParallel::broadcast_state(const nn::Module& module) const {
  if (!several()) return;
  NoGradGuard no_grad;
  for (const auto& [name, tensor] : module.state_dict()) ranks_->broadcast(tensor, 0);
}

namespace {

// Rank `root`'s text on every rank: its length, then its bytes.
std::string broadcast_text_from(distributed::Collectives& ranks, const std::string& text, int root) {
  const Tensor length = from_vector(std::vector<int64_t>{static_cast<int64_t>(text.size())}, {1});
  ranks.broadcast(length, root);
  const int64_t size = length.item<int64_t>();
  std::vector<uint8_t> bytes(text.begin(), text.end());
  bytes.resize(static_cast<size_t>(size));
  const Tensor buffer = from_vector(bytes, {size});
  ranks.broadcast(buffer, root);
  const uint8_t* data = buffer.data<uint8_t>();
  return std::string(data, data + size);
}

// The first line of `text` that differs from the same line of `reference` (or the first
// line one has and the other lacks), as "<ours>\n<theirs>".
std::pair<std::string, std::string> first_difference(const std::string& text, const std::string& reference) {
  std::istringstream ours(text), theirs(reference);
  std::string a, b;
  while (true) {
    const bool more_a = static_cast<bool>(std::getline(ours, a)), more_b = static_cast<bool>(std::getline(theirs, b));
    if (!more_a && !more_b) return {"", ""};
    if (!more_a) a = "(nothing)";
    if (!more_b) b = "(nothing)";
    if (a != b || !more_a || !more_b) return {a, b};
  }
}

}  // namespace

std::string DataParallel::broadcast_text(const std::string& text) const {
  return several() ? broadcast_text_from(*ranks_, text, 0) : text;
}

void DataParallel::broadcast_contents(io::SafetensorsContents& contents) const {
  if (!several()) return;
  // The layout first (names, dtypes, shapes, metadata) as JSON text, then each tensor.
  nlohmann::json layout = {{"tensors", nlohmann::json::array()}, {"metadata", contents.metadata}};
  if (is_root()) {
    for (const auto& [name, tensor] : contents.tensors) {
      layout["tensors"].push_back({name, static_cast<int>(tensor.dtype()), tensor.shape()});
    }
  }
  layout = nlohmann::json::parse(broadcast_text(layout.dump()));
  if (!is_root()) {
    contents.tensors.clear();
    contents.metadata = layout["metadata"].get<std::map<std::string, std::string>>();
    for (const auto& entry : layout["tensors"]) {
      contents.tensors[entry[0].get<std::string>()] =
          empty(entry[2].get<Shape>(), TensorOptions(static_cast<DType>(entry[1].get<int>())));
    }
  }
  for (auto& [name, tensor] : contents.tensors) {
    tensor = tensor.contiguous();
    ranks_->broadcast(tensor, 0);
  }
}

void DataParallel::average_gradients(const std::vector<Tensor>& parameters, int64_t bucket_bytes) const {
  if (!several()) return;
  NoGradGuard no_grad;
  std::vector<Tensor> owners, gradients;
  for (const Tensor& parameter : parameters) {
    const Tensor gradient = parameter.grad();
    if (!gradient.defined()) continue;
    owners.push_back(parameter);
    gradients.push_back(gradient);
  }
  const auto bytes_of = [](const Tensor& t) { return t.numel() * static_cast<int64_t>(element_size(t.dtype())); };
  // Consecutive gradients of one dtype and device share a bucket until it would pass
  // bucket_bytes (a gradient larger than that has one of its own).
  for (size_t first = 0; first < gradients.size();) {
    size_t end = first + 1;
    int64_t bytes = bytes_of(gradients[first]);
    while (end < gradients.size() && gradients[end].dtype() == gradients[first].dtype() &&
           gradients[end].device() == gradients[first].device() && bytes + bytes_of(gradients[end]) <= bucket_bytes) {
      bytes += bytes_of(gradients[end]);
      ++end;
    }
    std::vector<Tensor> flat;
    for (size_t k = first; k < end; ++k) flat.push_back(gradients[k].reshape({-1}));
    const Tensor bucket = concat(flat);
    ranks_->all_reduce(bucket, distributed::ReduceOp::Average);
    // Each parameter's gradient becomes its stretch of the bucket (a view: no copy back).
    int64_t offset = 0;
    for (size_t k = first; k < end; ++k) {
      const int64_t count = gradients[k].numel();
      owners[k].set_grad(bucket.narrow(0, offset, count).view(gradients[k].shape()));
      offset += count;
    }
    first = end;
  }
}

double DataParallel::sum(double value) const {
  if (!several()) return value;
  const Tensor total = from_vector(std::vector<double>{value}, {1});
  ranks_->all_reduce(total, distributed::ReduceOp::Sum);
  return total.item();
}

void DataParallel::require_same_on_every_rank(const std::string& text, const std::string& what) const {
  if (!several()) return;
  const std::string reference = broadcast_text(text);
  const Tensor differs = from_vector(std::vector<int64_t>{text != reference ? 1 : 0}, {1});
  const std::vector<int64_t> flags = ranks_->all_gather(differs).to_vector<int64_t>();
  int first_different = -1;
  std::vector<int> different;
  for (int k = 0; k < size(); ++k) {
    if (flags[static_cast<size_t>(k)] == 0) continue;
    if (first_different < 0) first_different = k;
    different.push_back(k);
  }
  if (first_different < 0) return;
  // The first differing rank says where it differs, so that every rank can say the same.
  const auto [ours, theirs] = first_difference(text, reference);
  const std::string line = broadcast_text_from(*ranks_, ours + "\n" + theirs, first_different);
  const size_t split = line.find('\n');
  VISREP_FAIL(
      "{} differ between the ranks of this job (rank{} {} of {}): rank {} has '{}' where rank 0 has '{}'; "
      "every rank must be started with the same ones",
      what, different.size() > 1 ? "s" : "", fmt::join(different, ", "), size(), first_different, line.substr(0, split),
      line.substr(split + 1));
}

ScopedSyncBatchNorm::ScopedSyncBatchNorm(std::vector<nn::Module*> modules, const DataParallel& parallel, bool enabled) {
  if (!enabled || !parallel.several()) return;
  modules_ = std::move(modules);
  for (nn::Module* module : modules_) layers_ += nn::synchronize_batch_norm(*module, parallel.ranks());
}

ScopedSyncBatchNorm::~ScopedSyncBatchNorm() {
  for (nn::Module* module : modules_) nn::synchronize_batch_norm(*module, nullptr);
}

}  // namespace visrep::recipes
