#include "recipes/stop_request.h"

#include <atomic>

namespace visrep::recipes {
namespace {
std::atomic<bool> g_stop_requested{false};
static_assert(std::atomic<bool>::is_always_lock_free, "request_stop() must be async-signal-safe");
}  // namespace

void request_stop() noexcept { g_stop_requested.store(true); }
bool stop_requested() noexcept { return g_stop_requested.load(); }
void clear_stop_request() noexcept { g_stop_requested.store(false); }

}  // namespace visrep::recipes
