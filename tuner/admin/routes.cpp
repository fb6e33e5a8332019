// The admin API's handlers (see routes.hpp; shapes documented in docs/api.md).
#include "tuner/admin/routes.hpp"

#include <charconv>
#include <cmath>

#include "model/knobs.hpp"
#include "policies/registry.hpp"
#include "tuner/admin/status_page.hpp"
#include "tuner/build_info.hpp"
#include "tuner/control/apply.hpp"
#include "tuner/control/control_loop.hpp"
#include "tuner/decision_log/timestamps.hpp"
#include "tuner/report/probe_report.hpp"

namespace tuner {

namespace {

using report::cgroup_json;
using report::cpu_json;
using report::memory_json;
using report::pressure_json;
using report::process_tree_json;
using report::seed_formula_json;
using server::AdminRequest;
using server::AdminRespond;
using server::AdminResponse;

constexpr std::size_t kRecentDecisions = 20;
constexpr std::size_t kMaxDecisionsLimit = 10000;

// Every admin answer is valid JSON: text from outside (a query value quoted in an error, a
// worker's stderr in /health, a path) may hold bytes that are not UTF-8; they become U+FFFD
// instead of making dump() throw and the answer a 500.
AdminResponse json_response(int status, const nlohmann::json& body) {
    AdminResponse r;
    r.status = status;
    r.body = body.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    return r;
}

AdminResponse error_response(int status, const std::string& message) {
    return json_response(status, {{"error", message}});
}

double seconds_since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
}

nlohmann::json percentiles_json(const Percentiles& p) {
    return {
        {"p50_ms", p.p50_ms}, {"p95_ms", p.p95_ms}, {"p99_ms", p.p99_ms}, {"mean_ms", p.mean_ms}};
}

nlohmann::json window_json(const WindowStats& w) {
    nlohmann::json codes = nlohmann::json::object();
    for (const auto& [code, n] : w.codes) codes[std::to_string(code)] = n;
    nlohmann::json workers = nlohmann::json::array();
    for (const auto& ws : w.workers) {
        workers.push_back(
            {{"id", ws.id}, {"busy_fraction", ws.busy_fraction}, {"served", ws.served}});
    }
    return {{"window_s", to_seconds(w.window)},
            {"completed", w.completed},
            {"rate_rps", w.rate_rps},
            {"arrival_rps", w.arrival_rps},
            {"queue_wait", percentiles_json(w.queue_wait)},
            {"service", percentiles_json(w.service)},
            {"total", percentiles_json(w.total)},
            {"inflight_mean", w.inflight_mean},
            {"inflight_max", w.inflight_max},
            {"queue_length_mean", w.queue_length_mean},
            {"queue_length_max", w.queue_length_max},
            {"codes", codes},
            {"rejected_queue_full", w.rejected_queue_full},
            {"timed_out_in_queue", w.timed_out_in_queue},
            {"upstream_errors", w.upstream_errors},
            {"min_ready", w.min_ready},
            {"workers", workers}};
}

nlohmann::json worker_info_json(const WorkerInfo& w) {
    return {{"id", w.id},
            {"pid", w.pid},
            {"port", w.port ? nlohmann::json(*w.port) : nlohmann::json(nullptr)},
            {"state", to_string(w.state)},
            {"threads", w.threads},
            {"inflight", w.inflight},
            {"served", w.served},
            {"rss_bytes", w.rss_bytes},
            {"age_s", std::round(w.age_s * 10) / 10},
            {"restarts", w.restarts},
            {"generation", w.generation}};
}

nlohmann::json restart_json(const server::RestartStatus& r) {
    return {{"state", server::to_string(r.state)},
            {"generation", r.generation},
            {"trigger", r.trigger.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.trigger)},
            {"replaced", r.replaced},
            {"remaining", r.remaining},
            {"elapsed_s", r.elapsed_s ? nlohmann::json(std::round(*r.elapsed_s * 10) / 10)
                                      : nlohmann::json(nullptr)},
            {"halted_reason",
             r.halted_reason.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.halted_reason)}};
}

nlohmann::json decisions_json(const std::vector<Decision>& decisions) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& d : decisions) {
        out.push_back(decision_json(d));
    }
    return out;
}

Result<std::size_t> parse_limit(const std::map<std::string, std::string>& query) {
    auto it = query.find("limit");
    if (it == query.end() || it->second.empty()) return std::size_t{100};
    std::size_t n = 0;
    const auto& text = it->second;
    const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc{} || p != text.data() + text.size() || n == 0 || n > kMaxDecisionsLimit) {
        return make_error("limit", "must be a whole number from 1 to " +
                                       std::to_string(kMaxDecisionsLimit) + ", not \"" + text +
                                       "\"");
    }
    return n;
}

void handle_set_target(AdminContext& ctx, const AdminRequest& req, const AdminRespond& respond) {
    const auto body = nlohmann::json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
        respond(error_response(400, "body must be a JSON object like {\"workers\": 4}"));
        return;
    }
    const auto it = body.find("workers");
    if (it == body.end() || !it->is_number_integer()) {
        respond(error_response(400, "\"workers\" must be a whole number, e.g. {\"workers\": 4}"));
        return;
    }
    const Config cfg = ctx.control.config();
    const auto wanted = it->get<std::int64_t>();
    if (wanted < cfg.workers.min || wanted > cfg.workers.max) {
        respond(json_response(
            400, {{"error", "workers must be between " + std::to_string(cfg.workers.min) + " and " +
                                std::to_string(cfg.workers.max) + " (workers.min and workers.max)"},
                  {"min", cfg.workers.min},
                  {"max", cfg.workers.max}}));
        return;
    }
    const auto n = static_cast<unsigned>(wanted);
    const auto status = ctx.pool.status();
    const auto previous = ctx.applier.manual_target();
    Decision d = make_decision(
        knob::workers_count, WallClock::now(), Count{status.state.target}, Count{n},
        {policies::rule::manual,
         "manual target " + std::to_string(n) + " set through the admin API; the pool stays at " +
             std::to_string(n) + " until DELETE /workers/target or a config reload",
         nlohmann::json{{"workers", n},
                        {"previous_target", status.state.target},
                        {"previous_manual_target",
                         previous ? nlohmann::json(*previous) : nlohmann::json(nullptr)}}
             .dump()});
    d.plan_id = ctx.applier.next_plan_id();
    // A manual target acts even in dry-run mode: the admin asked for exactly this.
    d = ctx.applier.pin_workers(d, n);
    respond(json_response(200, {{"target", n}, {"pinned", true}, {"decision", decision_json(d)}}));
}

void handle_release_target(AdminContext& ctx, const AdminRespond& respond) {
    const auto pinned = ctx.applier.manual_target();
    if (!pinned) {
        respond(
            json_response(200, {{"target", ctx.pool.status().state.target}, {"pinned", false}}));
        return;
    }
    Decision d = make_decision(
        knob::workers_manual_target, WallClock::now(), Count{*pinned}, {},
        {policies::rule::manual,
         "manual target " + std::to_string(*pinned) + " released through the admin API; the " +
             to_string(ctx.control.config().workers.mode) + " policy decides again",
         nlohmann::json{{"released", *pinned}}.dump()});
    d.plan_id = ctx.applier.next_plan_id();
    d = ctx.applier.release_workers(d);
    // Let the controller take over at once rather than at its next tick.
    ctx.control.optimize_now();
    respond(json_response(200, {{"target", ctx.pool.status().state.target},
                                {"pinned", false},
                                {"decision", decision_json(d)}}));
}

}  // namespace

namespace {

// The preloader of workers.preload (null without one).
nlohmann::json preloader_json(const std::optional<server::PreloaderStatus>& p) {
    if (!p) return nullptr;
    return {{"generation", p->generation},
            {"pid", p->pid > 0 ? nlohmann::json(p->pid) : nlohmann::json(nullptr)},
            {"state", p->state},
            {"restarts", p->restarts},
            {"workers_forked", p->workers_forked},
            {"last_error",
             p->last_error.empty() ? nlohmann::json(nullptr) : nlohmann::json(p->last_error)},
            {"last_stderr", p->last_stderr},
            {"restart_in_s",
             p->restart_in_s ? nlohmann::json(*p->restart_in_s) : nlohmann::json(nullptr)},
            {"older_running", p->older_running}};
}

}  // namespace

nlohmann::json health_json(AdminContext& ctx, bool& healthy) {
    const auto pool = ctx.pool.status();
    const auto view = ctx.control.view();
    const auto log = ctx.log.stats();
    const Config cfg = ctx.control.config();
    nlohmann::json problems = nlohmann::json::array();
    std::string status = "ok";
    if (!pool.ever_ready) {
        status = "starting";
        problems.push_back("no worker has become ready yet");
    }
    for (const auto& p : pool.health.problems) problems.push_back(p);
    if (pool.health.degraded) status = "degraded";
    if (pool.ever_ready && pool.state.ready == 0) {
        status = "degraded";
        problems.push_back("no worker is ready: requests wait in the queue");
    }
    if (pool.below_target_for_s &&
        *pool.below_target_for_s > to_seconds(cfg.workers.startup_timeout)) {
        status = "degraded";
        problems.push_back(std::to_string(pool.state.ready) + " of " +
                           std::to_string(pool.state.target) + " workers ready for " +
                           std::to_string(static_cast<long>(*pool.below_target_for_s)) + "s");
    }
    if (pool.health.next_restart_in_s) {
        problems.push_back(
            "a crashed worker restarts in " +
            std::to_string(static_cast<long>(std::ceil(*pool.health.next_restart_in_s))) + "s");
    }
    if (!log.healthy) {
        problems.push_back("decision log failing (" + std::to_string(log.errors_total) +
                           " errors; decisions kept in memory): " + log.last_error);
    }
    if (view.valid && view.seed.below_min)
        problems.push_back("memory ceiling below workers.min: " + view.seed.reason);
    for (const auto& p : view.snapshot.problems) problems.push_back("probe: " + p);
    if (ctx.shutting_down && ctx.shutting_down()) status = "stopping";
    healthy = status == "ok";

    nlohmann::json limits = nullptr;
    if (view.valid || view.snapshot.taken_at != Clock::time_point{}) {
        limits = {{"cgroup", cgroup_json(view.snapshot.cgroup)},
                  {"cpu", cpu_json(view.snapshot.cpu)},
                  {"memory", memory_json(view.snapshot.memory)}};
    }
    nlohmann::json last_crash = nullptr;
    if (!pool.health.last_exit.empty()) {
        last_crash = {{"exit", pool.health.last_exit}, {"stderr", pool.health.last_stderr}};
    }
    return {{"status", status},
            {"version", build::version},
            {"workers",
             {{"target", pool.state.target},
              {"ready", pool.state.ready},
              {"starting", pool.state.starting},
              {"draining", pool.state.draining},
              {"threads", pool.state.threads},
              {"crashes_total", pool.health.crashes_total},
              {"crash_streak", pool.health.crash_streak},
              {"last_crash", last_crash},
              {"restart", restart_json(pool.restart)},
              {"preloader", preloader_json(pool.preloader)}}},
            {"uptime_s", std::round(seconds_since(ctx.started_at))},
            {"limits", limits},
            {"decision_log",
             {{"healthy", log.healthy},
              {"errors_total", log.errors_total},
              {"dropped_total", log.dropped_total},
              {"queued", log.queued},
              {"last_error", log.last_error}}},
            {"problems", problems}};
}

nlohmann::json cache_json(const server::CacheStats& c, const CacheConfig& cfg) {
    return {{"enabled", c.enabled},
            {"entries", c.entries},
            {"bytes", c.bytes},
            {"capacity", c.capacity},
            {"size", cfg.size_bytes},
            {"max_entries", c.max_entries},
            {"max_entry_size", cfg.max_entry_size_bytes},
            {"hits", c.hits},
            {"misses", c.misses},
            {"expired", c.expired},
            {"stale", c.stale},
            {"bypasses", c.bypasses},
            {"hit_ratio", c.hit_ratio()},
            {"collapsed", c.collapsed},
            {"stores", c.stores},
            {"evictions", c.evictions},
            {"fills_in_flight", c.fills_in_flight}};
}

nlohmann::json workers_json(AdminContext& ctx) {
    const auto pool = ctx.pool.status();
    nlohmann::json workers = nlohmann::json::array();
    for (const auto& w : pool.state.workers) workers.push_back(worker_info_json(w));
    const auto manual = ctx.applier.manual_target();
    return {{"target", pool.state.target},
            {"ready", pool.state.ready},
            {"threads", pool.state.threads},
            {"manual_target", manual ? nlohmann::json(*manual) : nlohmann::json(nullptr)},
            {"mode", to_string(ctx.control.config().workers.mode)},
            {"restart", restart_json(pool.restart)},
            {"preloader", preloader_json(pool.preloader)},
            {"workers", workers}};
}

// front.compression: the level in use, and per coding the responses, bytes and CPU time.
nlohmann::json compression_json(const server::CompressionStats& z) {
    auto ratio = [](std::uint64_t in, std::uint64_t out) {
        return out == 0 ? nlohmann::json(nullptr)
                        : nlohmann::json(static_cast<double>(in) / static_cast<double>(out));
    };
    auto coding = [&](const server::CompressionStats::PerCoding& p) {
        return nlohmann::json{{"responses", p.responses},
                              {"bytes_in", p.bytes_in},
                              {"bytes_out", p.bytes_out},
                              {"ratio", ratio(p.bytes_in, p.bytes_out)},
                              {"cpu_seconds", p.cpu_seconds}};
    };
    const std::uint64_t in = z.gzip.bytes_in + z.br.bytes_in;
    const std::uint64_t out = z.gzip.bytes_out + z.br.bytes_out;
    return {{"enabled", z.enabled},
            {"level", z.levels.gzip},
            {"brotli_level", z.levels.brotli},
            {"configured_level", z.configured_level},
            {"min_size", z.min_size_bytes},
            {"responses", z.gzip.responses + z.br.responses},
            {"bytes_in", in},
            {"bytes_out", out},
            {"ratio", ratio(in, out)},
            {"cpu_seconds", z.cpu_seconds()},
            {"memory_bytes", z.memory_bytes},
            {"skipped_for_memory", z.over_memory},
            {"gzip", coding(z.gzip)},
            {"br", coding(z.br)}};
}

nlohmann::json performance_json(AdminContext& ctx) {
    const auto view = ctx.control.view();
    const auto pool = ctx.pool.status();
    const Config cfg = ctx.control.config();
    const auto& s = view.snapshot;
    const auto manual = ctx.applier.manual_target();
    nlohmann::json limits = {{"cgroup", cgroup_json(s.cgroup)},
                             {"cpu", cpu_json(s.cpu)},
                             {"memory", memory_json(s.memory)},
                             {"pressure", pressure_json(s.pressure)},
                             {"self", process_tree_json(s.self)}};
    nlohmann::json latency = window_json(s.window);
    nlohmann::json workers = workers_json(ctx);
    workers["memory_ceiling"] = view.seed.memory_ceiling;
    workers["min"] = cfg.workers.min;
    workers["max"] = cfg.workers.max;
    workers["threads_max"] = cfg.workers.effective_threads_max();
    workers["dry_run"] = ctx.applier.dry_run();
    nlohmann::json front = nlohmann::json::object();
    if (ctx.connections) {
        const auto c = ctx.connections();
        front = {{"open_connections", c.open},
                 {"max_connections", cfg.server.max_connections},
                 {"connections_evicted", c.evicted},
                 {"connections_refused",
                  {{"max_connections", c.refused_max_connections},
                   {"max_connections_per_address", c.refused_per_address}}},
                 {"request_buffering", cfg.server.request_buffering},
                 {"spool",
                  {{"held_bytes", c.spool_bytes},
                   {"max_bytes", cfg.server.spool_max_size_bytes},
                   {"refused", c.spool_refused}}},
                 {"rate_limit",
                  {{"rate", cfg.server.rate_limit.rate},
                   {"burst", cfg.server.rate_limit.burst},
                   {"limited", c.rate_limited},
                   {"clients", c.rate_limit_clients}}},
                 {"compression", compression_json(c.compression)}};
        nlohmann::json responses = nlohmann::json::object();
        for (const auto& [status, n] : c.static_responses) responses[std::to_string(status)] = n;
        nlohmann::json mounts = nlohmann::json::array();
        for (const auto& m : cfg.server.static_mounts) {
            mounts.push_back(
                {{"prefix", m.prefix},
                 {"root", m.root},
                 {"max_age_s", std::chrono::duration_cast<std::chrono::seconds>(m.max_age).count()},
                 {"index", m.index}});
        }
        front["static"] = {{"mounts", mounts}, {"responses", responses}, {"bytes", c.static_bytes}};
        front["access_log"] = {{"enabled", c.access_log_enabled},
                               {"path", cfg.server.access_log.path},
                               {"format", to_string(cfg.server.access_log.format)},
                               {"written", c.access_log_written},
                               {"dropped", c.access_log_dropped},
                               {"errors", c.access_log_errors}};
    }
    if (ctx.cache_stats) {
        const auto cache = ctx.cache_stats();
        front["cache"] = cache_json(cache, cfg.server.cache);
        // The cache's entries are tunerd's own memory (in its RSS): said beside it.
        limits["self"]["cache_bytes"] = cache.bytes;
    }
    return {
        {"limits", limits},
        {"budget", seed_formula_json(view.seed_inputs, view.seed)},
        {"workers", workers},
        {"latency", latency},
        {"front", front},
        {"decisions", decisions_json(ctx.log.recent(kRecentDecisions))},
        {"recommendations",
         {{"workers", view.controller},
          {"database", view.database},
          {"last_plan", plan_json(view.last_plan)},
          {"manual_target", manual ? nlohmann::json(*manual) : nlohmann::json(nullptr)}}},
        {"control",
         {{"cycles", view.cycles},
          {"last_cycle_ms", view.last_cycle_ms},
          {"interval_s", to_seconds(cfg.policy.interval)}}},
        {"decision_log",
         {{"healthy", ctx.log.stats().healthy}, {"errors_total", ctx.log.stats().errors_total}}}};
}

void register_admin_routes(server::AdminServer& admin, AdminContext& context) {
    AdminContext* ctx = &context;
    register_status_page(admin);
    admin.route("GET", "/health", [ctx](const AdminRequest&, AdminRespond respond) {
        bool healthy = false;
        auto body = health_json(*ctx, healthy);
        respond(json_response(healthy ? 200 : 503, body));
    });
    admin.route("GET", "/workers", [ctx](const AdminRequest&, AdminRespond respond) {
        respond(json_response(200, workers_json(*ctx)));
    });
    admin.route("POST", "/workers/target", [ctx](const AdminRequest& req, AdminRespond respond) {
        handle_set_target(*ctx, req, respond);
    });
    admin.route("DELETE", "/workers/target", [ctx](const AdminRequest&, AdminRespond respond) {
        handle_release_target(*ctx, respond);
    });
    admin.route("POST", "/workers/restart", [ctx](const AdminRequest&, AdminRespond respond) {
        if (!ctx->restart_workers) {
            respond(error_response(503, "rolling restart not available"));
            return;
        }
        auto [status, body] = ctx->restart_workers("admin API");
        respond(json_response(status, body));
    });
    admin.route("GET", "/performance", [ctx](const AdminRequest&, AdminRespond respond) {
        respond(json_response(200, performance_json(*ctx)));
    });
    admin.route(
        "GET", "/performance/decisions", [ctx](const AdminRequest& req, AdminRespond respond) {
            std::optional<WallClock::time_point> since;
            if (auto it = req.query.find("since"); it != req.query.end()) {
                auto parsed = parse_since_time(it->second, "since");
                if (!parsed) {
                    respond(error_response(400, parsed.error().to_string()));
                    return;
                }
                since = *parsed;
            }
            auto limit = parse_limit(req.query);
            if (!limit) {
                respond(error_response(400, limit.error().to_string()));
                return;
            }
            auto decisions = ctx->log.query(since, *limit);
            if (!decisions) {
                respond(error_response(500, decisions.error().to_string()));
                return;
            }
            respond(json_response(
                200, {{"decisions", decisions_json(*decisions)}, {"count", decisions->size()}}));
        });
    admin.route("POST", "/performance/optimize", [ctx](const AdminRequest&, AdminRespond respond) {
        // The cycle runs on the control thread; it answers from there when it is done.
        ctx->control.optimize_now([respond = std::move(respond)](nlohmann::json plan) {
            respond(json_response(plan.contains("error") ? 503 : 200, plan));
        });
    });
    admin.route("GET", "/performance/cache/stats",
                [ctx](const AdminRequest&, AdminRespond respond) {
                    if (!ctx->cache_stats) {
                        respond(error_response(404, "no micro-cache in this daemon"));
                        return;
                    }
                    respond(json_response(
                        200, cache_json(ctx->cache_stats(), ctx->control.config().server.cache)));
                });
    admin.route(
        "POST", "/performance/cache/clear", [ctx](const AdminRequest&, AdminRespond respond) {
            if (!ctx->clear_cache || !ctx->cache_stats) {
                respond(error_response(404, "no micro-cache in this daemon"));
                return;
            }
            const auto before = ctx->cache_stats();
            ctx->clear_cache();
            respond(
                json_response(200, {{"cleared", before.entries}, {"bytes_freed", before.bytes}}));
        });
    admin.route("POST", "/postgres/rollback", [ctx](const AdminRequest&, AdminRespond respond) {
        // Restores PostgreSQL's original settings; tunerd holds off re-applying them until a
        // config reload or a restart (docs/policies.md, "Database policies").
        ctx->control.rollback_postgres(
            [respond = std::move(respond)](nlohmann::json report, int status) {
                respond(json_response(status, report));
            });
    });
    admin.route("GET", "/metrics", [ctx](const AdminRequest&, AdminRespond respond) {
        const auto view = ctx->control.view();
        const auto requests = ctx->dispatcher.cumulative();
        const auto pool = ctx->pool.status();
        MetricsInputs in;
        in.view = &view;
        in.requests = &requests;
        in.pool = &pool;
        in.counts = ctx->dispatcher.counts();
        in.decision_log = ctx->log.stats();
        in.manual_target = ctx->applier.manual_target();
        if (ctx->connections) in.connections = ctx->connections();
        if (ctx->cache_stats) in.cache = ctx->cache_stats();
        AdminResponse r;
        r.content_type = "text/plain; version=0.0.4; charset=utf-8";
        r.body = ctx->metrics.render(in);
        respond(std::move(r));
    });
}

}  // namespace tuner
