// bench_distributed: what the collectives of data-parallel training cost, per call, on the
// ranks of a job: run it under mpirun, e.g.
//   mpirun -np 2 build/benchmarks/bench_distributed        (--allow-run-as-root as root)
// Cases, from what a SimCLR step on the CPU default (bit-tiny) moves:
//   all_reduce (average) of the gradients of bit-tiny + its projection head, one flat
//     float32 buffer (the bucketed gradient all-reduce of one step), with and without the
//     call records the communicator exchanges before each collective (its checks); and of
//     64 KiB and 16 MiB, to show the latency and the bandwidth ends
//   all_gather of 256 x 128 and 512 x 128 float32 embeddings per rank (the negatives of a
//     global batch), through the Tensor API (output allocation included), and the
//     reduce_scatter (sum) of the gathered gradient back to each rank's rows (its backward)
//   broadcast of the same parameters from rank 0 (the start of a run)
// Baseline, measured in the same run, interleaved: memcpy of the bytes the collective
// writes on each rank (all_reduce, broadcast: the buffer; all_gather: the gathered output;
// reduce_scatter: this rank's rows). "x memcpy" is how many local copies of the result one
// collective costs. Every timed run starts after a barrier (untimed), so a rank that arrives
// late (descheduled, still copying) is not counted as the collective's cost, as in the OSU
// micro-benchmarks; each time is the slowest rank's median. In a job of one every collective
// is the identity (a copy at most).
//
// Then the communication of whole data-parallel SimCLR steps on the CPU default model
// (bit-tiny + head, 28 x 28 grey views, LARS, --step-batch global images, SyncBatchNorm has
// nothing to do: bit-tiny has GroupNorm): each rank's step on its slice, with the time of its
// bucketed gradient all-reduce (recipes/data_parallel.h average_gradients) measured inside the
// step, and the embeddings' all-gather and its backward's reduce-scatter of the same shape
// measured next to it: what share of a step the ranks spend talking.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <string>
#include <tuple>
#include <vector>

#include "benchmarks/common/harness.h"
#include "engine/autograd.h"
#include "engine/distributed/communicator.h"
#include "engine/ops.h"
#include "engine/optim/lars.h"
#include "engine/random.h"
#include "engine/tensor.h"
#include "models/heads.h"
#include "models/resnet_v2.h"
#include "recipes/data_parallel.h"

namespace {

using namespace visrep;
using bench::fixed;
using distributed::Communicator;
using distributed::ReduceOp;

// The CPU default SimCLR model: bit-tiny (apps/app_common.h: one unit per stage, base width
// 16, 8 GroupNorm groups) on 1-channel images, and the 2-layer projection head to 128.
models::ResNetV2Config bit_tiny_config() {
  models::ResNetV2Config config;
  config.in_channels = 1;
  config.classes = 0;
  config.depth = 0;
  config.units_per_stage = {1, 1, 1, 1};
  config.base_width = 16;
  config.gn_groups = 8;
  return config;
}

int64_t simclr_bit_tiny_parameters() {
  models::ResNetV2 encoder(bit_tiny_config());
  models::ProjectionHead head(models::resnet_v2_feature_dim(bit_tiny_config()), 0, 128, 2);
  return encoder.parameter_count() + head.parameter_count();
}

double elapsed_ms(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - since).count();
}

std::string megabytes(double bytes) { return fixed(bytes / (1024.0 * 1024.0), 2); }

struct Row {
  std::string name;
  std::string shape;
  double bytes;  // written on each rank
  std::function<void()> collective;
};

// Data-parallel SimCLR steps of a global batch of `global_batch` images on the ranks of
// `world`: the step's time, its gradient all-reduce's (inside the step) and the embeddings'
// gather + reduce-scatter's (the same shapes, next to it), the slowest rank's medians.
void simclr_steps(Communicator& world, int64_t global_batch, const bench::CommonFlags& flags,
                  bench::JsonLinesWriter& json) {
  const int ranks = world.size();
  const recipes::DataParallel parallel(&world);
  const int64_t local = parallel.local_batch_size(global_batch, "bench_distributed --step-batch");
  manual_seed(0);
  models::ResNetV2 encoder(bit_tiny_config());
  models::ProjectionHead head(models::resnet_v2_feature_dim(bit_tiny_config()), 0, 128, 2);
  std::vector<Tensor> parameters = encoder.parameters();
  for (const Tensor& parameter : head.parameters()) parameters.push_back(parameter);
  optim::Lars optimizer(parameters, optim::LarsOptions{.learning_rate = 0.3 * global_batch / 256.0});
  // This rank's 2 x local views (rows i and i + local: image i's two views).
  const Tensor views = randn({2 * local, 1, 28, 28});
  // The all-reduce waits for the last rank to finish its backward pass: a barrier first says
  // how long that is (the ranks' skew, on a shared machine mostly), then the all-reduce alone.
  double wait_ms = 0, all_reduce_ms = 0;
  const auto step = [&] {
    const Tensor embeddings = head(encoder(views));
    const Tensor loss = ranks > 1 ? nt_xent_loss(embeddings, 0.1, world) : nt_xent_loss(embeddings, 0.1);
    optimizer.zero_grad();
    loss.backward();
    const auto start = std::chrono::steady_clock::now();
    world.barrier();
    wait_ms = elapsed_ms(start);
    const auto reduce_start = std::chrono::steady_clock::now();
    parallel.average_gradients(parameters);
    all_reduce_ms = elapsed_ms(reduce_start);
    optimizer.step();
  };
  // The step's time and, separately, its wait and its gradient all-reduce's: one run's samples.
  std::vector<double> step_samples, wait_samples, all_reduce_samples;
  for (int i = 0; i < flags.warmup; ++i) step();
  const int repeats = std::max(3, flags.repeats / 4);  // a step is ~100x a collective
  for (int i = 0; i < repeats; ++i) {
    world.barrier();
    const auto start = std::chrono::steady_clock::now();
    step();
    step_samples.push_back(elapsed_ms(start));
    wait_samples.push_back(wait_ms);
    all_reduce_samples.push_back(all_reduce_ms);
  }
  // The same all-reduce outside the step (the gradients of the last one), for comparison.
  const bench::Timing alone = bench::measure_interleaved({[&] { parallel.average_gradients(parameters); }}, flags, [&] {
                                world.barrier();
                              }).front();
  const Tensor embeddings = ones({2 * local, 128});
  const auto gather = [&] {
    const Tensor gathered = world.all_gather(embeddings);
    world.reduce_scatter(gathered);
  };
  const bench::Timing gather_timing = bench::measure_interleaved({gather}, flags, [&] { world.barrier(); }).front();
  double medians[5] = {bench::median_of(step_samples), bench::median_of(all_reduce_samples), gather_timing.median_ms,
                       bench::median_of(wait_samples), alone.median_ms};
  world.all_reduce(medians, 5, kFloat64, Device::cpu(), ReduceOp::Max);
  const double gradient_bytes = 4.0 * static_cast<double>(simclr_bit_tiny_parameters());
  const double gather_bytes = 4.0 * 2 * static_cast<double>(local) * 128 * (ranks + 1);  // gathered + own rows back
  if (world.rank() == 0) {
    std::cout << "\nSimCLR steps, bit-tiny + head, global batch " << global_batch << " on " << ranks << " rank(s) ("
              << local << " images per rank), median of " << repeats << "; the slowest rank's\n";
    bench::Table table({"per step", "MiB per rank", "ms", "share of the step"});
    table.add_row({"the whole step (forward, loss, backward, all-reduce, LARS)", "", fixed(medians[0], 1), "100%"});
    table.add_row({"  gradient all-reduce (bucketed, inside the step)", megabytes(gradient_bytes), fixed(medians[1], 3),
                   fixed(100 * medians[1] / medians[0], 1) + "%"});
    table.add_row({"  the same all-reduce alone, between barriers", megabytes(gradient_bytes), fixed(medians[4], 3),
                   fixed(100 * medians[4] / medians[0], 1) + "%"});
    table.add_row({"  embeddings all_gather + reduce_scatter (same shapes)", megabytes(gather_bytes),
                   fixed(medians[2], 3), fixed(100 * medians[2] / medians[0], 1) + "%"});
    table.add_row({"  waiting for the slowest rank's backward (a barrier)", "", fixed(medians[3], 3),
                   fixed(100 * medians[3] / medians[0], 1) + "%"});
    table.print(std::cout);
  }
  const std::string shape = "bit-tiny + head, batch " + std::to_string(global_batch) + " / " + std::to_string(ranks);
  for (const auto& [name, ms, bytes] : {std::tuple{"simclr step", medians[0], 0.0},
                                        std::tuple{"simclr step: gradient all-reduce", medians[1], gradient_bytes},
                                        std::tuple{"simclr step: embeddings gather", medians[2], gather_bytes}}) {
    nlohmann::json record = bench::make_record(name, shape, ms, "cpu");
    record["bytes_per_rank"] = bytes;
    record["ranks"] = ranks;
    record["share_of_step"] = ms / medians[0];
    json.add(record);
  }
}

}  // namespace

int main(int argc, char** argv) {
  bench::CommonFlags flags;
  flags.repeats = 20;
  CLI::App app{
      "Time of the communicator's all_reduce, all_gather and broadcast per call, next to a memcpy of the "
      "same bytes; run under mpirun -np 2"};
  bench::add_common_flags(app, flags);
  int64_t step_batch = 64;
  app.add_option("--step-batch", step_batch, "Global batch of the SimCLR steps (0: skip them)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);

  return bench::run_reporting_errors("bench_distributed", [&] {
    Communicator world;
    distributed::CommunicatorOptions unchecked_options = distributed::CommunicatorOptions::from_environment();
    unchecked_options.check_calls = false;
    Communicator unchecked(unchecked_options);
    const int ranks = world.size();
    const bool root = world.rank() == 0;
    bench::JsonLinesWriter json(root ? flags.json_path : std::string());

    const int64_t parameters = simclr_bit_tiny_parameters();
    std::vector<float> gradients(static_cast<size_t>(parameters), 1.0f);
    std::vector<float> small(16384, 1.0f), large(4 << 20, 1.0f);
    const Tensor embeddings_256 = ones({256, 128});
    const Tensor embeddings_512 = ones({512, 128});
    const Tensor gathered_gradient = ones({512 * ranks, 128});
    const auto all_reduce = [](Communicator& comm, std::vector<float>& buffer) {
      return [&comm, &buffer] {
        comm.all_reduce(buffer.data(), static_cast<int64_t>(buffer.size()), kFloat32, Device::cpu(), ReduceOp::Average);
      };
    };
    const std::string gradient_shape = std::to_string(parameters) + " float32";
    const std::vector<Row> rows = {
        {"all_reduce average, bit-tiny + head gradients", gradient_shape, 4.0 * parameters,
         all_reduce(world, gradients)},
        {"  the same without call checks", gradient_shape, 4.0 * parameters, all_reduce(unchecked, gradients)},
        {"all_reduce average, 64 KiB", "16384 float32", 4.0 * small.size(), all_reduce(world, small)},
        {"all_reduce average, 16 MiB", std::to_string(large.size()) + " float32", 4.0 * large.size(),
         all_reduce(world, large)},
        {"all_gather, 256 x 128 embeddings per rank", "256x128 float32 -> " + std::to_string(256 * ranks) + "x128",
         4.0 * 256 * 128 * ranks, [&] { world.all_gather(embeddings_256); }},
        {"all_gather, 512 x 128 embeddings per rank", "512x128 float32 -> " + std::to_string(512 * ranks) + "x128",
         4.0 * 512 * 128 * ranks, [&] { world.all_gather(embeddings_512); }},
        {"reduce_scatter sum, back to 512 x 128 per rank", std::to_string(512 * ranks) + "x128 float32 -> 512x128",
         4.0 * 512 * 128, [&] { world.reduce_scatter(gathered_gradient); }},
        {"broadcast from rank 0, bit-tiny + head parameters", gradient_shape, 4.0 * parameters,
         [&] { world.broadcast(gradients.data(), parameters, kFloat32, Device::cpu(), 0); }},
    };

    if (root) {
      std::cout << "bench_distributed: " << world.description() << "; median of " << flags.repeats << " after "
                << flags.warmup << " warm-up, the slowest rank's\n";
      if (ranks == 1) std::cout << "a job of one: every collective is the identity; run under mpirun -np 2\n";
      std::cout << '\n';
    }
    bench::Table table({"case", "MiB per rank", "ms", "GB/s", "memcpy ms", "x memcpy"});
    for (const Row& row : rows) {
      std::vector<char> source(static_cast<size_t>(row.bytes), 1), destination(static_cast<size_t>(row.bytes));
      const auto copy = [&] { std::memcpy(destination.data(), source.data(), source.size()); };
      const std::vector<bench::Timing> t =
          bench::measure_interleaved({row.collective, copy}, flags, [&] { world.barrier(); });
      // The slowest rank's medians: a step waits for the last rank.
      double medians[2] = {t[0].median_ms, t[1].median_ms};
      world.all_reduce(medians, 2, kFloat64, Device::cpu(), ReduceOp::Max);
      const double ms = medians[0], memcpy_ms = medians[1];
      table.add_row({row.name, megabytes(row.bytes), fixed(ms, 3), fixed(row.bytes / (ms * 1e6), 2),
                     fixed(memcpy_ms, 3), fixed(ms / memcpy_ms, 1)});
      nlohmann::json record = bench::make_record(row.name, row.shape, ms, "cpu");
      record["bytes_per_rank"] = row.bytes;
      record["ranks"] = ranks;
      record["transport"] = world.host_transport_name();
      record["memcpy_ms"] = memcpy_ms;
      record["ratio_to_memcpy"] = ms / memcpy_ms;
      json.add(record);
    }
    if (root) {
      table.print(std::cout);
      std::cout << "GB/s: the bytes each rank ends up with per second of the call. x memcpy: the collective's time\n"
                   "over a local memcpy of the same bytes. The call checks exchange 64 bytes per rank before each\n"
                   "collective (engine/distributed/communicator.h).\n";
    }
    if (step_batch > 0) simclr_steps(world, step_batch, flags, json);
    if (root) json.commit();
    return 0;
  });
}
