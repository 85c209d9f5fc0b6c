// bench_contrastive: the fused NT-Xent and SupCon losses (engine/ops/contrastive.h) against
// the usual unfused way built from this engine's own ops, in one run.
//
// The unfused baseline is what SimCLR's objective.py and SupContrast's losses.py do, written
// with the engine's cuBLAS matmul and softmax kernels: z = normalize(h), logits = z z^T / tau
// (a 2N x 2N matrix), the self term masked with -1e9, then
//   NT-Xent: cross_entropy(logits, the other view's index)
//   SupCon:  mask = [label_i == label_j] without the diagonal; -(tau / base_tau) times the
//            mean over anchors of sum_j mask_ij log_softmax(logits)_ij / sum_j mask_ij.
// Its masks are built inside the timed region, as those libraries build them every step.
//
// Reported per case (2N in {512, ..., 131072}, D in {128, 256}, float32 embeddings, TF32
// on unless --exact): forward ms, forward+backward ms, the peak device memory the step needs
// beyond its inputs (the caching allocator's peak counter), and TFLOP/s of the useful matrix
// work, 2 (2N)^2 D flops forward (z z^T) and 4 (2N)^2 D backward (G z and G^T z): the same
// count for both contenders (the fused kernels recompute the scores in the backward pass and
// do more arithmetic than that). A contender that runs out of memory prints "OOM".
//
// Timing: CUDA events around `iterations` back-to-back steps (more for small sizes, so a
// sample is not launch-bound), after warm-up, median of --repeats samples; the two
// contenders are timed interleaved. The inputs are not rotated: every step starts by writing
// z itself, which then sits in L2 for either contender, so rotation would change nothing.
//
// Without a usable CUDA device it says so and exits 0 (tools/gpu-check.sh runs every
// benchmark unconditionally).
// Where to look for the rest of the family: kernels/cpu/contrastive.h.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "benchmarks/common/harness.h"
#include "engine/cuda.h"
#include "engine/ops.h"

namespace {

using namespace visrep;
using bench::fixed;

struct Settings {
  bench::CommonFlags common;
  std::vector<int64_t> rows = {512, 2048, 8192, 32768, 131072};  // 2N
  std::vector<int64_t> dims = {128, 256};
  double temperature = 0.1;
  int64_t classes = 100;  // SupCon labels drawn from this many classes
  bool exact = false;     // exact FP32 instead of TF32
  bool skip_unfused = false;
};

enum class Loss { NtXent, SupCon };

// One problem's inputs, on the GPU.
struct Problem {
  Loss loss;
  int64_t rows, dim;
  double temperature;
  Tensor h;              // 2N x D float32, requires a gradient
  Tensor labels;         // N int64 (SupCon)
  Tensor row_labels;     // 2N int64: labels of both views (unfused SupCon)
  Tensor other_view;     // 2N int64: (i + N) mod 2N (unfused NT-Xent targets)
  Tensor row_index;      // 2N int64 (unfused self mask)
};

Tensor fused_loss(const Problem& p, const Tensor& h) {
  return p.loss == Loss::NtXent ? nt_xent_loss(h, p.temperature) : supcon_loss(h, p.labels, p.temperature, p.temperature);
}

// google-research/simclr objective.py and HobbitLong/SupContrast losses.py, with engine ops.
Tensor unfused_loss(const Problem& p, const Tensor& h) {
  const Tensor z = normalize(h, 1);
  const Tensor logits = div(matmul(z, z.t()), p.temperature);
  const Tensor self = eq(p.row_index.unsqueeze(1), p.row_index.unsqueeze(0));  // 2N x 2N uint8
  const Tensor masked = where(self, full({}, -1e9, TensorOptions(kFloat32, h.device())), logits);
  if (p.loss == Loss::NtXent) return cross_entropy(masked, p.other_view);
  const Tensor same_class = eq(p.row_labels.unsqueeze(1), p.row_labels.unsqueeze(0));
  const Tensor positives = where(self, zeros({}, TensorOptions(kFloat32, h.device())), same_class.to(kFloat32));
  const Tensor log_probs = log_softmax(masked, 1);
  const Tensor mean_log_prob_positive = div(sum(mul(positives, log_probs), {1}), clamp_min(sum(positives, {1}), 1.0));
  return neg(mean(mean_log_prob_positive));  // tau = base_tau; with 100 classes every anchor has positives
}

struct Contender {
  std::function<Tensor(const Tensor&)> loss;
  bool out_of_memory = false;
  size_t peak_extra_bytes = 0;
  double first_step_seconds = 0;  // wall clock of the untimed step, to size the sampling
};

// One forward+backward step outside the timing, measuring the peak memory above what was held
// before; false (and the cache returned to the driver) when the device runs out of memory.
bool measure_memory(Contender& contender, const Tensor& h) {
  cuda::synchronize();
  const size_t before = cuda::memory_stats().current_bytes;
  cuda::reset_peak_memory();
  const auto start = std::chrono::steady_clock::now();
  try {
    h.set_grad(Tensor());
    contender.loss(h).backward();
    h.set_grad(Tensor());
    cuda::synchronize();
  } catch (const std::exception&) {  // the caching allocator's out-of-memory error
    h.set_grad(Tensor());
    cuda::empty_cache();
    contender.out_of_memory = true;
    return false;
  }
  contender.peak_extra_bytes = cuda::memory_stats().peak_bytes - before;
  contender.first_step_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return true;
}

struct Sampled {
  double forward_ms = 0, step_ms = 0;
};

// Medians of forward and forward+backward, the contenders interleaved: each round samples
// every contender's forward, then its forward+backward, then the next contender's.
std::vector<std::optional<Sampled>> time_contenders(const std::vector<Contender>& contenders, const Tensor& h,
                                                    int iterations, const bench::CommonFlags& flags) {
  std::vector<std::function<void()>> runs;
  std::vector<size_t> first_run(contenders.size());  // index of each contender's forward in `runs`
  for (size_t c = 0; c < contenders.size(); ++c) {
    if (contenders[c].out_of_memory) continue;
    const Contender& contender = contenders[c];
    first_run[c] = runs.size();
    runs.push_back([&contender, &h] {
      const NoGradGuard no_grad;
      contender.loss(h);
    });
    runs.push_back([&contender, &h] {
      contender.loss(h).backward();
      h.set_grad(Tensor());  // the next step starts without an accumulated gradient
    });
  }
  const std::vector<bench::Timing> timings = bench::measure_interleaved_on_device(runs, flags, iterations);
  std::vector<std::optional<Sampled>> result;
  for (size_t c = 0; c < contenders.size(); ++c) {
    if (contenders[c].out_of_memory) result.emplace_back();
    else result.push_back(Sampled{timings[first_run[c]].median_ms, timings[first_run[c] + 1].median_ms});
  }
  return result;
}

std::string megabytes(size_t bytes) { return fixed(static_cast<double>(bytes) / (1024.0 * 1024.0), 1); }

int run(const Settings& settings) {
  const Device gpu = Device::cuda();
  cuda::set_tf32_enabled(!settings.exact);
  const std::string device = bench::device_name(gpu);
  bench::JsonLinesWriter json(settings.common.json_path);
  bench::Table table({"loss", "2N", "D", "fused fwd ms", "fused f+b ms", "fused MB", "fused TFLOP/s", "unfused fwd ms",
                      "unfused f+b ms", "unfused MB", "unfused TFLOP/s", "f+b speed-up"});
  Generator generator(1);

  for (const Loss loss : {Loss::NtXent, Loss::SupCon}) {
    const std::string loss_name = loss == Loss::NtXent ? "nt_xent" : "supcon";
    for (const int64_t dim : settings.dims) {
      for (const int64_t rows : settings.rows) {
        const int64_t images = rows / 2;
        Problem p{.loss = loss, .rows = rows, .dim = dim, .temperature = settings.temperature};
        p.h = randn({rows, dim}, TensorOptions(kFloat32, gpu), generator).set_requires_grad();
        p.labels = randint(0, settings.classes, {images}, kInt64, generator).to(gpu);
        p.row_labels = concat({p.labels, p.labels}, 0);
        p.row_index = arange(rows, TensorOptions(kInt64, gpu));
        std::vector<int64_t> other_view(static_cast<size_t>(rows));  // O(N), built outside the timing
        for (int64_t i = 0; i < rows; ++i) other_view[i] = (i + images) % rows;
        p.other_view = from_vector(other_view).to(gpu);

        std::vector<Contender> contenders = {{[&](const Tensor& h) { return fused_loss(p, h); }},
                                             {[&](const Tensor& h) { return unfused_loss(p, h); }}};
        if (settings.skip_unfused) contenders[1].out_of_memory = true;
        for (Contender& c : contenders)
          if (!c.out_of_memory) measure_memory(c, p.h);

        // Enough steps per sample that launches do not dominate at 2N = 512.
        const double work = static_cast<double>(rows) * static_cast<double>(rows) * static_cast<double>(dim);
        const int iterations = static_cast<int>(std::clamp(std::round(4e9 / work), 1.0, 50.0));
        // Steps of over a second (2N = 131072 if the kernels are slow) get fewer samples, so the
        // whole run stays inside tools/gpu-check.sh's five minutes.
        bench::CommonFlags flags = settings.common;
        if (std::max(contenders[0].first_step_seconds, contenders[1].first_step_seconds) > 1.0) {
          flags.warmup = 0;
          flags.repeats = std::min(settings.common.repeats, 3);
        }
        const std::vector<std::optional<Sampled>> timings = time_contenders(contenders, p.h, iterations, flags);

        const double forward_flops = 2.0 * work, step_flops = 6.0 * work;
        const std::string shape = std::to_string(rows) + "x" + std::to_string(dim);
        std::vector<std::string> cells = {loss_name, std::to_string(rows), std::to_string(dim)};
        for (size_t c = 0; c < contenders.size(); ++c) {
          const std::string name = loss_name + (c == 0 ? " fused" : " unfused");
          if (!timings[c]) {
            const std::string why = settings.skip_unfused && c == 1 ? "skipped" : "OOM";
            cells.insert(cells.end(), {why, why, why, why});
            nlohmann::json record = bench::make_record(name, shape, 0.0, device);
            record["ms"] = nullptr;
            record["out_of_memory"] = why == "OOM";
            json.add(record);
            continue;
          }
          const Sampled& t = *timings[c];
          cells.insert(cells.end(), {fixed(t.forward_ms, 3), fixed(t.step_ms, 3), megabytes(contenders[c].peak_extra_bytes),
                                     fixed(step_flops / (t.step_ms * 1e9), 1)});
          nlohmann::json record = bench::make_record(name, shape, t.step_ms, device);
          record["forward_ms"] = t.forward_ms;
          record["forward_backward_ms"] = t.step_ms;
          record["peak_bytes"] = contenders[c].peak_extra_bytes;
          record["forward_tflops"] = forward_flops / (t.forward_ms * 1e9);
          record["forward_backward_tflops"] = step_flops / (t.step_ms * 1e9);
          record["tf32"] = !settings.exact;
          record["temperature"] = settings.temperature;
          if (c == 1 && timings[0]) record["fused_speedup"] = t.step_ms / timings[0]->step_ms;
          json.add(record);
        }
        cells.push_back(timings[0] && timings[1] ? fixed(timings[1]->step_ms / timings[0]->step_ms, 1) + "x" : "-");
        table.add_row(cells);
        std::fprintf(stderr, "done: %s 2N=%lld D=%lld\n", loss_name.c_str(), static_cast<long long>(rows),
                     static_cast<long long>(dim));
        cuda::empty_cache();  // the next size starts from an empty cache (fair peak counts)
      }
      table.add_rule();
    }
  }
  std::cout << "bench_contrastive on " << device << ": float32 embeddings, " << (settings.exact ? "exact FP32" : "TF32")
            << ", tau " << settings.temperature << ", median of " << settings.common.repeats
            << " samples; MB = peak device memory beyond the inputs; TFLOP/s counts 6 (2N)^2 D per step\n";
  table.print(std::cout);
  json.commit();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Settings settings;
  settings.common.warmup = 1;
  settings.common.repeats = 5;
  CLI::App app{"Fused NT-Xent / SupCon losses against the unfused 2N x 2N formulation"};
  bench::add_common_flags(app, settings.common);
  app.add_option("--rows", settings.rows, "2N values (even)")->capture_default_str();
  app.add_option("--dims", settings.dims, "embedding dimensions")->capture_default_str();
  app.add_option("--temperature", settings.temperature, "tau")->check(CLI::Range(0.01, 10.0))->capture_default_str();
  app.add_option("--classes", settings.classes, "SupCon label classes")->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  app.add_flag("--exact", settings.exact, "exact FP32 kernels instead of TF32 tensor cores");
  app.add_flag("--skip-unfused", settings.skip_unfused, "time the fused losses only");
  CLI11_PARSE(app, argc, argv);
  for (const int64_t rows : settings.rows) {
    if (rows < 2 || rows % 2 != 0) {
      std::cerr << "bench_contrastive: --rows takes even values >= 2, got " << rows << '\n';
      return 2;
    }
  }
  if (bench::skipped_without_cuda("bench_contrastive")) return 0;
  return bench::run_reporting_errors("bench_contrastive", [&] { return run(settings); });
}
