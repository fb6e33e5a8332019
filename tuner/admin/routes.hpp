// The admin API's handlers (docs/api.md): /health, /workers, /workers/target, /performance,
// /performance/decisions, /performance/optimize and /metrics, registered on the server's admin
// listener. They only read the daemon's parts and change the world through apply().
#pragma once

#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "server/admin.hpp"
#include "server/dispatcher.hpp"
#include "server/pool.hpp"
#include "tuner/admin/metrics.hpp"
#include "tuner/decision_log/log.hpp"

namespace tuner {

class Applier;
class ControlLoop;

struct AdminContext {
    server::WorkerPool& pool;
    server::Dispatcher& dispatcher;
    ControlLoop& control;
    Applier& applier;
    DecisionLog& log;
    Metrics& metrics;
    Clock::time_point started_at;
    std::function<bool()> shutting_down;
    std::function<server::ConnectionStats()> connections;  // the public front's clients
    // A rolling restart of the workers (the config file reread first): HTTP status and body.
    std::function<std::pair<int, nlohmann::json>(const std::string& trigger)> restart_workers = {};
    // The front's micro-cache ([cache]): its counters, and emptying it.
    std::function<server::CacheStats()> cache_stats = {};
    std::function<void()> clear_cache = {};
};

void register_admin_routes(server::AdminServer& admin, AdminContext& context);

// The JSON bodies, also used by tunerctl and tests.
nlohmann::json health_json(AdminContext& context, bool& healthy);
nlohmann::json workers_json(AdminContext& context);
nlohmann::json performance_json(AdminContext& context);
// GET /performance/cache/stats, and "cache" in /performance's "front".
nlohmann::json cache_json(const server::CacheStats& stats, const CacheConfig& config);

}  // namespace tuner
