// The communicator's own work: choosing the transports, checking each call's arguments,
// making sure every rank makes the same call (the call records), watching the wait, and
// ending the job when a transport fails. The bytes move in the transports (transport.h).
#include "engine/distributed/communicator.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "engine/distributed/transport.h"
#include "engine/distributed/watchdog.h"
#include "engine/error.h"

namespace visrep::distributed {
namespace {

// ---- call records ------------------------------------------------------------------------------

enum class Kind : int64_t { Setup = 1, AllReduce, AllGather, ReduceScatter, Broadcast, Barrier };

std::string_view kind_name(Kind kind) {
  switch (kind) {
    case Kind::Setup: return "communicator setup";
    case Kind::AllReduce: return "all_reduce";
    case Kind::AllGather: return "all_gather";
    case Kind::ReduceScatter: return "reduce_scatter";
    case Kind::Broadcast: return "broadcast";
    case Kind::Barrier: return "barrier";
  }
  return "collective";
}

constexpr int64_t kRefused = 1;          // flags: this rank refused its own arguments
constexpr int64_t kDeviceTransport = 2;  // flags: the buffer goes through the device transport (NCCL)

// One rank's record of the call it is about to make. With options.check_calls the ranks
// all-gather their records before every collective and compare them, so that calls that do
// not match are an error on every rank rather than wrong data or a hang.
struct CallRecord {
  int64_t kind = 0;
  int64_t dtype = -1;        // -1: no buffer (barrier, setup)
  int64_t op = -1;           // -1: not a reduction
  int64_t root = -1;         // -1: not a broadcast
  int64_t count = 0;         // elements (reduce_scatter: of each rank's block)
  int64_t row_elements = 0;  // elements per row of a tensor call; 0 for raw buffers
  int64_t sequence = 0;      // the communicator's collectives before this one
  int64_t flags = 0;         // kRefused | kDeviceTransport

  bool same_call(const CallRecord& other, bool compare_rows) const {
    return kind == other.kind && dtype == other.dtype && op == other.op && root == other.root && count == other.count &&
           (!compare_rows || row_elements == other.row_elements) && sequence == other.sequence &&
           (flags & ~kRefused) == (other.flags & ~kRefused);
  }
};
static_assert(sizeof(CallRecord) == 8 * sizeof(int64_t), "the records travel as 8 int64 values");
constexpr int64_t kRecordElements = sizeof(CallRecord) / sizeof(int64_t);

// "all_reduce (sum) of 1024 float32 elements, call 7"
std::string describe(const CallRecord& record) {
  const Kind kind = static_cast<Kind>(record.kind);
  std::string text(kind_name(kind));
  if (kind == Kind::Setup) {
    text += (record.flags & kDeviceTransport) != 0 ? " of the NCCL transport" : " without a device transport";
  }
  if (record.op >= 0) text += fmt::format(" ({})", reduce_op_name(static_cast<ReduceOp>(record.op)));
  if (record.root >= 0) text += fmt::format(" from rank {}", record.root);
  if (record.dtype >= 0) {
    text += fmt::format(" of {} {} element{}", record.count, dtype_name(static_cast<DType>(record.dtype)),
                        record.count == 1 ? "" : "s");
    if (kind == Kind::ReduceScatter) text += " per rank";
    if (record.row_elements > 0) text += fmt::format(" (rows of {})", record.row_elements);
    if (kind != Kind::Setup && (record.flags & kDeviceTransport) != 0) text += " through NCCL";
  }
  text += fmt::format(", call {}", record.sequence);
  return text;
}

// "rank 3", "ranks 0, 2", "ranks 0, 1, 2, 3, 4, 5, 6, 7 and 9 more"
std::string rank_list(const std::vector<int>& ranks) {
  std::string text = ranks.size() == 1 ? "rank " : "ranks ";
  const size_t shown = std::min<size_t>(ranks.size(), 8);
  for (size_t i = 0; i < shown; ++i) text += (i > 0 ? ", " : "") + std::to_string(ranks[i]);
  if (ranks.size() > shown) text += fmt::format(" and {} more", ranks.size() - shown);
  return text;
}

bool reducible(DType dtype) { return dtype == kFloat32 || dtype == kFloat64 || dtype == kInt32 || dtype == kInt64; }

bool overlap(const void* a, size_t a_bytes, const void* b, size_t b_bytes) {
  const auto* x = static_cast<const char*>(a);
  const auto* y = static_cast<const char*>(b);
  return a_bytes > 0 && b_bytes > 0 && x < y + b_bytes && y < x + a_bytes;
}

// ---- tensors as buffers ---------------------------------------------------------------------------

// Elements per row (dim 0) of a tensor call: the product of the other sizes (1 for 1-D and 0-d).
int64_t row_elements(const Tensor& tensor) {
  int64_t elements = 1;
  for (int64_t d = 1; d < tensor.dim(); ++d) elements *= tensor.size(d);
  return elements;
}

// The buffer of a tensor an in-place collective writes: itself when contiguous, else a copy
// that write_back() copies into it afterwards.
struct InPlace {
  Tensor target;
  Tensor buffer;
  explicit InPlace(const Tensor& tensor)
      : target(tensor.detach()), buffer(target.is_contiguous() ? target : target.contiguous()) {}
  void write_back() {
    if (buffer.storage() == target.storage() && buffer.storage_offset() == target.storage_offset()) {
      target.storage()->bump_version();
    } else {
      target.copy_(buffer);
    }
  }
};

// ---- ending the process --------------------------------------------------------------------------

// Plain write(2): another thread may hold stdio's lock when the watchdog gives up.
void write_stderr(const std::string& text) {
  size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(STDERR_FILENO, text.data() + written, text.size() - written);
    if (n <= 0) return;
    written += static_cast<size_t>(n);
  }
}

// The watchdog's give_up: exit status 1, which makes mpirun end the other ranks.
void give_up_and_exit(const std::string& message) {
  write_stderr(message +
               ". Giving up: exiting with status 1, which ends the job (the limit is "
               "VISREP_DISTRIBUTED_TIMEOUT seconds, or CommunicatorOptions::timeout_seconds).\n");
  std::_Exit(1);
}

double timeout_from_text(const char* name, const char* text) {
  char* end = nullptr;
  const double value = std::strtod(text, &end);
  VISREP_CHECK(*text != '\0' && end != nullptr && *end == '\0' && std::isfinite(value) && value > 0 && value <= 1e9,
               "communicator: {}='{}' is not a number of seconds in (0, 1e9]", name, text);
  return value;
}

}  // namespace

std::string_view reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return "sum";
    case ReduceOp::Average: return "average";
    case ReduceOp::Max: return "max";
  }
  return "?";
}

bool mpi_built() {
#if VISREP_WITH_MPI
  return true;
#else
  return false;
#endif
}

bool nccl_built() {
#if VISREP_WITH_NCCL
  return true;
#else
  return false;
#endif
}

void finalize() {
#if VISREP_WITH_MPI
  try {
    finalize_mpi();
  } catch (const TransportFailure& failure) {
    VISREP_FAIL("finalize: {}", failure.what());
  }
#endif
}

CommunicatorOptions CommunicatorOptions::from_environment() {
  CommunicatorOptions options;
  if (const char* timeout = std::getenv("VISREP_DISTRIBUTED_TIMEOUT")) {
    options.timeout_seconds = timeout_from_text("VISREP_DISTRIBUTED_TIMEOUT", timeout);
  }
  if (const char* checks = std::getenv("VISREP_DISTRIBUTED_CHECKS")) {
    const std::string_view value(checks);
    VISREP_CHECK(value == "0" || value == "1", "communicator: VISREP_DISTRIBUTED_CHECKS='{}' must be 0 or 1", value);
    options.check_calls = value == "1";
  }
  return options;
}

// ---- the communicator's state ----------------------------------------------------------------------

struct Communicator::State {
  CommunicatorOptions options;
  Membership membership;
  std::string who;  // "rank 1 of 4"
  bool host_is_mpi = false;
  // Declared before the transports, so destroyed after them: the NCCL transport unhooks
  // itself from the watchdog when it goes.
  std::unique_ptr<Watchdog> watchdog;
  std::unique_ptr<JobTransport> host;
  std::unique_ptr<Transport> device_transport;
  std::optional<Device> transport_device;  // the device whose buffers take device_transport
  int64_t sequence = 0;

  bool on_device_transport(Device device) const {
    return device_transport != nullptr && device.is_cuda() && transport_device && device == *transport_device;
  }
  Transport& transport_for(Device device) {
    if (on_device_transport(device)) return *device_transport;
    return *host;
  }
  int64_t max_count(Device device) { return transport_for(device).max_count(); }

  // "" when `count` elements of `dtype` on `device` can go, reduced with `op` if given.
  std::string buffer_problem(int64_t count, DType dtype, Device device, std::optional<ReduceOp> op, int64_t blocks) {
    if (count < 0) return fmt::format("count {} is negative", count);
    const int64_t limit = max_count(device);
    if (count > limit) {
      return fmt::format("count {} is more than the {} elements one call through {} can carry: split the buffer", count,
                         limit, transport_for(device).name());
    }
    if (static_cast<double>(count) * element_size(dtype) * blocks > 9.0e18) {
      return fmt::format("count {} of {} over {} ranks does not fit in 64-bit byte offsets", count, dtype_name(dtype),
                         blocks);
    }
    if (op && !reducible(dtype)) {
      return fmt::format(
          "cannot reduce {}: reductions take float32, float64, int32 and int64 (reduce bfloat16 "
          "in float32)",
          dtype_name(dtype));
    }
    if (op == ReduceOp::Average && !is_floating(dtype)) {
      return fmt::format("the average of {} is not defined: use sum and divide", dtype_name(dtype));
    }
    if (device.is_cuda()) {
      try {
        check_device_usable(device, "the buffer's device");
      } catch (const Error& error) {
        return error.what();
      }
      if (device_transport != nullptr && !on_device_transport(device)) {
        return fmt::format("the buffer is on {} but this communicator's {} is for {}", device.str(),
                           device_transport->name(), transport_device->str());
      }
    }
    return {};
  }

  // Runs one collective: the record exchange (or the local check), the watch, the transport
  // call, and the hand-over of queued GPU work to the watchdog. `problem` is this rank's
  // objection to its own arguments, "" when there is none.
  template <class Body>
  void run(CallRecord record, Device device, const std::string& problem, Body&& body) {
    const std::string_view op = kind_name(static_cast<Kind>(record.kind));
    VISREP_CHECK(!(host_is_mpi && mpi_finalized_now()),
                 "{} ({}): MPI was finalised (distributed::finalize()); no "
                 "collective can run after it",
                 op, who);
    record.sequence = sequence++;
    if (on_device_transport(device)) record.flags |= kDeviceTransport;
    const std::string what = describe(record) + " on " + device.str();
    Watchdog::Scope scope = watchdog ? watchdog->watch(what) : Watchdog::Scope();
    if (options.check_calls && membership.size > 1) {
      agree(record, problem);
    } else if (!problem.empty()) {
      throw Error(fmt::format("{} ({}): {}", op, who, problem));
    }
    Transport& transport = transport_for(device);
    try {
      body(transport);
    } catch (const TransportFailure& failure) {
      fail_job(what, failure.what());
    }
    if (watchdog) {
      if (std::function<bool()> done = transport.last_call_done()) watchdog->track(what, std::move(done));
    }
  }

  static bool mpi_finalized_now() {
#if VISREP_WITH_MPI
    return mpi_finalized();
#else
    return false;
#endif
  }

  // Every rank's record of this call, compared: throws the same visrep::Error on every rank
  // when a rank refused its arguments or two ranks are about to make different calls.
  void agree(CallRecord mine, const std::string& problem) {
    const std::string_view op = kind_name(static_cast<Kind>(mine.kind));
    if (!problem.empty()) mine.flags |= kRefused;
    std::vector<CallRecord> records(static_cast<size_t>(membership.size));
    try {
      host->all_gather(&mine, records.data(), kRecordElements, kInt64, Device::cpu());
    } catch (const TransportFailure& failure) {
      fail_job("the exchange of call records before " + describe(mine), failure.what());
    }
    if (!problem.empty()) throw Error(fmt::format("{} ({}): {}", op, who, problem));
    std::vector<int> refused;
    for (int rank = 0; rank < membership.size; ++rank) {
      if ((records[rank].flags & kRefused) != 0) refused.push_back(rank);
    }
    if (!refused.empty()) {
      throw Error(fmt::format("{} ({}): {} refused {} arguments (see {} message), so no rank ran this {}", op, who,
                              rank_list(refused), refused.size() == 1 ? "its" : "their",
                              refused.size() == 1 ? "its" : "their", op));
    }
    // Rows are compared when every rank gave a tensor (raw buffers have no rows).
    const bool compare_rows =
        std::all_of(records.begin(), records.end(), [](const CallRecord& record) { return record.row_elements > 0; });
    std::vector<std::pair<CallRecord, std::vector<int>>> groups;
    for (int rank = 0; rank < membership.size; ++rank) {
      auto group = std::find_if(groups.begin(), groups.end(),
                                [&](const auto& g) { return g.first.same_call(records[rank], compare_rows); });
      if (group == groups.end())
        groups.push_back({records[rank], {rank}});
      else
        group->second.push_back(rank);
    }
    if (groups.size() == 1) return;
    std::string calls;
    for (size_t g = 0; g < groups.size() && g < 6; ++g) {
      calls += fmt::format("{}{}: {}", g > 0 ? "; " : "", rank_list(groups[g].second), describe(groups[g].first));
    }
    if (groups.size() > 6) calls += fmt::format("; and {} other calls", groups.size() - 6);
    throw Error(
        fmt::format("{} ({}): the ranks are not making the same call ({}). Every rank must make the same "
                    "collective calls, with the same count, dtype, op and root, in the same order",
                    op, who, calls));
  }

  // all_reduce and broadcast of a tensor: in place, through a contiguous buffer;
  // body(transport, data, count, dtype, device) makes the call.
  template <class Body>
  void run_in_place(const Tensor& tensor, Kind kind, std::optional<ReduceOp> op, int root, Body&& body) {
    refuse_if_undefined(tensor, kind);
    InPlace in_place(tensor);
    const int64_t count = tensor.numel();
    const DType dtype = tensor.dtype();
    const Device device = tensor.device();
    const bool broadcast = kind == Kind::Broadcast;
    std::string problem = buffer_problem(count, dtype, device, op, 1);
    if (problem.empty() && broadcast) problem = root_problem(root);
    if (!problem.empty()) problem += fmt::format(" (tensor {})", tensor.description());
    CallRecord record{static_cast<int64_t>(kind),
                      static_cast<int64_t>(dtype),
                      op ? static_cast<int64_t>(*op) : -1,
                      broadcast && problem.empty() ? root : -1,
                      count,
                      row_elements(tensor)};
    run(record, device, problem,
        [&](Transport& transport) { body(transport, in_place.buffer.raw_data(), count, dtype, device); });
    if (!broadcast || membership.rank != root) in_place.write_back();
  }

  // An undefined tensor: refused like any bad argument; run() throws on every rank for it.
  void refuse_if_undefined(const Tensor& tensor, Kind kind) {
    if (!tensor.defined())
      run({static_cast<int64_t>(kind)}, Device::cpu(), "the tensor is undefined", [](Transport&) {});
  }

  std::string root_problem(int root) const {
    if (root >= 0 && root < membership.size) return {};
    return fmt::format("root {} is not a rank: expected 0 ... {}", root, membership.size - 1);
  }

  // A transport failed: the ranks can no longer tell what the others did, so the job ends.
  [[noreturn]] void fail_job(const std::string& what, const std::string& failure) {
    write_stderr(fmt::format("{}: {} failed: {}. Ending the job.\n", who, what, failure));
    host->end_job(1);
    std::_Exit(1);  // not reached; GCC does not take [[noreturn]] through a virtual call
  }
};

// ---- construction --------------------------------------------------------------------------------

Communicator::Communicator(const CommunicatorOptions& options) : state_(std::make_unique<State>()) {
  State& state = live();
  state.options = options;
  VISREP_CHECK(std::isfinite(options.timeout_seconds) && options.timeout_seconds > 0 && options.timeout_seconds <= 1e9,
               "communicator: timeout_seconds must be in (0, 1e9], got {}", options.timeout_seconds);
  VISREP_CHECK(!(options.device_transport == DeviceTransport::NCCL && !(options.device && options.device->is_cuda())),
               "communicator: the NCCL transport needs a CUDA device (options.device is {})",
               options.device ? options.device->str() : "not set");

  const LaunchEnvironment environment = LaunchEnvironment::detect();
  HostTransport host = options.host;
  if (host == HostTransport::Auto) host = environment.launched() ? HostTransport::MPI : HostTransport::SingleProcess;
  if (host == HostTransport::MPI) {
#if VISREP_WITH_MPI
    try {
      state.host = make_mpi_transport(environment, options.timeout_seconds);
    } catch (const TransportFailure& failure) {
      VISREP_FAIL("communicator: starting MPI: {}", failure.what());
    }
    state.host_is_mpi = true;
#else
    if (environment.launched()) {
      VISREP_FAIL(
          "communicator: this process was started by {} as rank {} of {} ({}), but visrep was built "
          "without MPI: install libopenmpi-dev and openmpi-bin (tools/install-deps.sh) and configure "
          "again (-DVISREP_MPI=ON)",
          environment.launcher, environment.rank, environment.size, environment.source);
    }
    VISREP_FAIL("communicator: the MPI transport was asked for, but visrep was built without MPI (-DVISREP_MPI=ON)");
#endif
  } else {
    state.host = make_single_process_transport();
  }
  state.membership = state.host->membership();
  state.who = fmt::format("rank {} of {}", state.membership.rank, state.membership.size);
  if (state.membership.size > 1) {
    state.watchdog = std::make_unique<Watchdog>(options.timeout_seconds, state.who, give_up_and_exit);
  }

  // The device transport. Every rank takes part in the setup record, so that one rank's bad
  // device (or a different choice) is an error on every rank, not a hang in NCCL's setup.
  const bool cuda_device = options.device && options.device->is_cuda();
  const bool want_nccl =
      cuda_device && (options.device_transport == DeviceTransport::NCCL ||
                      (options.device_transport == DeviceTransport::Auto && nccl_built() && state.membership.size > 1));
  std::string problem;
  if (want_nccl && !nccl_built()) {
    problem = "the NCCL transport was asked for, but visrep was built without NCCL (-DVISREP_NCCL=ON)";
  } else if (cuda_device) {
    try {
      check_device_usable(*options.device, "communicator device");
    } catch (const Error& error) {
      problem = error.what();
    }
  }
  CallRecord setup;
  setup.kind = static_cast<int64_t>(Kind::Setup);
  setup.flags = want_nccl ? kDeviceTransport : 0;
  state.run(setup, Device::cpu(), problem, [&](Transport&) {
    if (!want_nccl) return;
#if VISREP_WITH_NCCL
    state.device_transport =
        make_nccl_transport(*state.host, *options.device, options.timeout_seconds, state.watchdog.get());
    state.transport_device = options.device;
#endif
  });
}

Communicator::~Communicator() = default;
Communicator::Communicator(Communicator&&) noexcept = default;
Communicator& Communicator::operator=(Communicator&&) noexcept = default;

// ---- what it is ----------------------------------------------------------------------------------

Communicator::State& Communicator::live() const {
  VISREP_CHECK(state_ != nullptr, "communicator: used after being moved from");
  return *state_;
}

int Communicator::rank() const { return live().membership.rank; }
int Communicator::size() const { return live().membership.size; }
int Communicator::local_rank() const { return live().membership.local_rank; }
int Communicator::local_size() const { return live().membership.local_size; }

std::string Communicator::host_transport_name() const { return live().host->name(); }

std::string Communicator::transport_name_for(Device device) const {
  const State& state = live();
  if (state.on_device_transport(device)) return state.device_transport->name();
  if (device.is_cuda() && state.host_is_mpi) return state.host->name() + " through pinned host memory";
  return state.host->name();
}

std::string Communicator::description() const {
  const State& state = live();
  std::string text = fmt::format("{}, {}, local rank {} of {}", state.host->name(), state.who,
                                 state.membership.local_rank, state.membership.local_size);
  if (state.options.device && state.options.device->is_cuda()) {
    text +=
        fmt::format("; {} buffers through {}", state.options.device->str(), transport_name_for(*state.options.device));
  }
  return text;
}

// ---- raw buffers -----------------------------------------------------------------------------------

void Communicator::all_reduce(void* data, int64_t count, DType dtype, Device device, ReduceOp op) {
  State& state = live();
  std::string problem = state.buffer_problem(count, dtype, device, op, 1);
  if (problem.empty() && count > 0 && data == nullptr) problem = fmt::format("data is null for {} elements", count);
  CallRecord record{static_cast<int64_t>(Kind::AllReduce), static_cast<int64_t>(dtype), static_cast<int64_t>(op), -1,
                    count};
  state.run(record, device, problem, [&](Transport& t) { t.all_reduce(data, count, dtype, op, device); });
}

void Communicator::all_gather(const void* send, void* receive, int64_t count, DType dtype, Device device) {
  State& state = live();
  const int ranks = state.membership.size;
  std::string problem = state.buffer_problem(count, dtype, device, std::nullopt, ranks);
  if (problem.empty() && count > 0) {
    const size_t block = static_cast<size_t>(count) * element_size(dtype);
    const void* own_block = static_cast<const char*>(receive) + block * state.membership.rank;
    if (send == nullptr || receive == nullptr) {
      problem = fmt::format("{} is null for {} elements", send == nullptr ? "send" : "receive", count);
    } else if (send != own_block && overlap(send, block, receive, block * ranks)) {
      problem = fmt::format(
          "send overlaps receive but is not this rank's block of it (receive + {} * {} elements, "
          "the in-place form)",
          state.membership.rank, count);
    }
  }
  CallRecord record{static_cast<int64_t>(Kind::AllGather), static_cast<int64_t>(dtype), -1, -1, count};
  state.run(record, device, problem, [&](Transport& t) { t.all_gather(send, receive, count, dtype, device); });
}

void Communicator::reduce_scatter(const void* send, void* receive, int64_t count, DType dtype, Device device,
                                  ReduceOp op) {
  State& state = live();
  const int ranks = state.membership.size;
  std::string problem = state.buffer_problem(count, dtype, device, op, ranks);
  if (problem.empty() && count > 0) {
    const size_t block = static_cast<size_t>(count) * element_size(dtype);
    const void* own_block = static_cast<const char*>(send) + block * state.membership.rank;
    if (send == nullptr || receive == nullptr) {
      problem = fmt::format("{} is null for {} elements", send == nullptr ? "send" : "receive", count);
    } else if (receive != own_block && overlap(send, block * ranks, receive, block)) {
      problem = fmt::format(
          "receive overlaps send but is not this rank's block of it (send + {} * {} elements, "
          "the in-place form)",
          state.membership.rank, count);
    }
  }
  CallRecord record{static_cast<int64_t>(Kind::ReduceScatter), static_cast<int64_t>(dtype), static_cast<int64_t>(op),
                    -1, count};
  state.run(record, device, problem, [&](Transport& t) { t.reduce_scatter(send, receive, count, dtype, op, device); });
}

void Communicator::broadcast(void* data, int64_t count, DType dtype, Device device, int root) {
  State& state = live();
  std::string problem = state.buffer_problem(count, dtype, device, std::nullopt, 1);
  if (problem.empty()) problem = state.root_problem(root);
  if (problem.empty() && count > 0 && data == nullptr) problem = fmt::format("data is null for {} elements", count);
  CallRecord record{static_cast<int64_t>(Kind::Broadcast), static_cast<int64_t>(dtype), -1, problem.empty() ? root : -1,
                    count};
  state.run(record, device, problem, [&](Transport& t) { t.broadcast(data, count, dtype, root, device); });
}

void Communicator::barrier() {
  State& state = live();
  CallRecord record{static_cast<int64_t>(Kind::Barrier)};
  state.run(record, Device::cpu(), {}, [&](Transport&) { state.host->barrier(); });
}

// ---- tensors ---------------------------------------------------------------------------------------

void Communicator::all_reduce(const Tensor& tensor, ReduceOp op) {
  live().run_in_place(tensor, Kind::AllReduce, op, -1,
                      [&](Transport& t, void* data, int64_t count, DType dtype, Device device) {
                        t.all_reduce(data, count, dtype, op, device);
                      });
}

Tensor Communicator::all_gather(const Tensor& tensor) {
  State& state = live();
  state.refuse_if_undefined(tensor, Kind::AllGather);
  const int ranks = state.membership.size;
  const Tensor input = tensor.detach().contiguous();
  const int64_t count = input.numel();
  std::string problem = state.buffer_problem(count, input.dtype(), input.device(), std::nullopt, ranks);
  if (!problem.empty()) problem += fmt::format(" (tensor {})", tensor.description());
  Shape shape = input.shape();
  if (shape.empty())
    shape = {ranks};
  else
    shape[0] *= ranks;
  const Tensor output = problem.empty() ? empty(shape, TensorOptions(input.dtype(), input.device())) : Tensor();
  CallRecord record{
      static_cast<int64_t>(Kind::AllGather), static_cast<int64_t>(input.dtype()), -1, -1, count, row_elements(input)};
  state.run(record, input.device(), problem, [&](Transport& t) {
    t.all_gather(input.raw_data(), output.raw_data(), count, input.dtype(), input.device());
  });
  return output;
}

Tensor Communicator::reduce_scatter(const Tensor& tensor, ReduceOp op) {
  State& state = live();
  state.refuse_if_undefined(tensor, Kind::ReduceScatter);
  const int ranks = state.membership.size;
  const Tensor input = tensor.detach().contiguous();
  std::string problem;
  if (input.dim() == 0) {
    problem = fmt::format("a 0-d tensor cannot be scattered: it needs a first dimension of {} * n rows", ranks);
  } else if (input.size(0) % ranks != 0) {
    problem = fmt::format("the first dimension, {}, of tensor {} is not a multiple of the {} ranks", input.size(0),
                          tensor.description(), ranks);
  }
  const int64_t count = problem.empty() ? input.numel() / ranks : 0;
  if (problem.empty()) {
    problem = state.buffer_problem(count, input.dtype(), input.device(), op, ranks);
    if (!problem.empty()) problem += fmt::format(" (tensor {})", tensor.description());
  }
  Tensor output;
  if (problem.empty()) {
    Shape shape = input.shape();
    shape[0] /= ranks;
    output = empty(shape, TensorOptions(input.dtype(), input.device()));
  }
  CallRecord record{static_cast<int64_t>(Kind::ReduceScatter),
                    static_cast<int64_t>(input.dtype()),
                    static_cast<int64_t>(op),
                    -1,
                    count,
                    row_elements(input)};
  state.run(record, input.device(), problem, [&](Transport& t) {
    t.reduce_scatter(input.raw_data(), output.raw_data(), count, input.dtype(), op, input.device());
  });
  return output;
}

void Communicator::broadcast(const Tensor& tensor, int root) {
  live().run_in_place(tensor, Kind::Broadcast, std::nullopt, root,
                      [&](Transport& t, void* data, int64_t count, DType dtype, Device device) {
                        t.broadcast(data, count, dtype, root, device);
                      });
}

void Communicator::abort(std::string_view message, int exit_code) const {
  const State& state = live();
  std::fflush(stdout);
  write_stderr(fmt::format("{}: {}\n", state.who, message));
  state.host->end_job(exit_code);
  std::_Exit(exit_code);  // not reached (as in fail_job)
}

}  // namespace visrep::distributed
