// /metrics (see metrics.hpp). Names follow the Prometheus conventions: base units (seconds,
// bytes), `_total` on counters, a `tunerd_` prefix.
#include "tuner/admin/metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "tuner/build_info.hpp"

namespace tuner {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using Labels = std::vector<ClientMetric::Label>;

MetricFamily family(std::string name, std::string help, MetricType type) {
    MetricFamily f;
    f.name = std::move(name);
    f.help = std::move(help);
    f.type = type;
    return f;
}

void add_value(MetricFamily& f, double value, Labels labels = {}) {
    ClientMetric m;
    m.label = std::move(labels);
    if (f.type == MetricType::Counter) {
        m.counter.value = value;
    } else {
        m.gauge.value = value;
    }
    f.metric.push_back(std::move(m));
}

MetricFamily single(std::string name, std::string help, MetricType type, double value) {
    auto f = family(std::move(name), std::move(help), type);
    add_value(f, value);
    return f;
}

MetricFamily histogram(std::string name, std::string help, const server::CumulativeHistogram& h) {
    auto f = family(std::move(name), std::move(help), MetricType::Histogram);
    ClientMetric m;
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < server::kPrometheusBuckets.size(); ++i) {
        cumulative += h.buckets[i];
        m.histogram.bucket.push_back({cumulative, server::kPrometheusBuckets[i]});
    }
    m.histogram.bucket.push_back({h.count, std::numeric_limits<double>::infinity()});
    m.histogram.sample_count = h.count;
    m.histogram.sample_sum = h.sum_s;
    f.metric.push_back(std::move(m));
    return f;
}

void add_pressure(MetricFamily& stalled, MetricFamily& avg10, const char* resource,
                  const std::optional<PressureResource>& r) {
    if (!r) return;
    for (const auto& [kind, line] : {std::pair{"some", r->some}, std::pair{"full", r->full}}) {
        if (!line) continue;
        add_value(stalled, static_cast<double>(line->total_usec) / 1e6,
                  {{"resource", resource}, {"kind", kind}});
        add_value(avg10, line->avg10 / 100.0, {{"resource", resource}, {"kind", kind}});
    }
}

}  // namespace

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {
    decisions_ = &prometheus::BuildCounter()
                      .Name("tunerd_decisions_total")
                      .Help("Decisions recorded, by knob, rule and outcome")
                      .Register(*registry_);
}

Metrics::~Metrics() = default;

void Metrics::count_decision(const Decision& d) {
    decisions_->Add({{"knob", d.knob}, {"rule", d.rule}, {"outcome", to_string(d.outcome)}})
        .Increment();
}

std::string Metrics::render(const MetricsInputs& in) const {
    std::vector<MetricFamily> out = registry_->Collect();

    auto info =
        family("tunerd_build_info", "Version and revision of this tunerd", MetricType::Gauge);
    add_value(info, 1, {{"version", build::version}, {"revision", build::revision()}});
    out.push_back(std::move(info));

    if (in.pool) {
        const auto& p = *in.pool;
        out.push_back(single("tunerd_workers_target", "Worker processes the pool aims for",
                             MetricType::Gauge, p.state.target));
        out.push_back(single("tunerd_workers_ready", "Worker processes taking requests",
                             MetricType::Gauge, p.state.ready));
        out.push_back(single("tunerd_workers_starting", "Worker processes not yet ready",
                             MetricType::Gauge, p.state.starting));
        out.push_back(single("tunerd_workers_draining",
                             "Worker processes finishing their requests before they stop",
                             MetricType::Gauge, p.state.draining));
        out.push_back(single("tunerd_worker_threads", "Concurrent requests each worker takes",
                             MetricType::Gauge, p.state.threads));
        out.push_back(single("tunerd_workers_manual_target",
                             "Pool size pinned by an admin, 0 when not pinned", MetricType::Gauge,
                             in.manual_target.value_or(0)));
        out.push_back(single("tunerd_worker_crashes_total",
                             "Workers that exited without being asked", MetricType::Counter,
                             static_cast<double>(p.health.crashes_total)));
        out.push_back(
            single("tunerd_worker_recycles_total",
                   "Workers replaced after max_requests, max_worker_rss or a thread change",
                   MetricType::Counter, static_cast<double>(p.health.recycled_total)));
        out.push_back(single("tunerd_worker_spawns_total", "Worker processes started",
                             MetricType::Counter, static_cast<double>(p.health.spawned_total)));
        auto rss = family("tunerd_worker_memory_bytes",
                          "Memory of each worker's process tree (PSS when known, else RSS)",
                          MetricType::Gauge);
        for (const auto& w : p.state.workers) {
            if (w.rss_bytes)
                add_value(rss, static_cast<double>(w.rss_bytes),
                          {{"worker", std::to_string(w.id)}});
        }
        out.push_back(std::move(rss));
    }
    out.push_back(single("tunerd_workers_busy", "Requests at workers right now", MetricType::Gauge,
                         in.counts.inflight));
    out.push_back(single("tunerd_queue_length", "Requests waiting for a worker", MetricType::Gauge,
                         static_cast<double>(in.counts.queued)));
    if (in.connections) {
        const auto& c = *in.connections;
        out.push_back(single("tunerd_open_connections",
                             "Client connections open on the public port", MetricType::Gauge,
                             static_cast<double>(c.open)));
        auto refused =
            family("tunerd_connections_refused_total",
                   "Client connections turned away at accept, by limit", MetricType::Counter);
        add_value(refused, static_cast<double>(c.refused_max_connections),
                  {{"reason", "max_connections"}});
        add_value(refused, static_cast<double>(c.refused_per_address),
                  {{"reason", "max_connections_per_address"}});
        out.push_back(std::move(refused));
        out.push_back(single("tunerd_requests_rate_limited_total",
                             "Requests answered 429 by the rate limit ([rate_limit])",
                             MetricType::Counter, static_cast<double>(c.rate_limited)));
        out.push_back(single("tunerd_rate_limit_clients",
                             "Client addresses the rate limit remembers", MetricType::Gauge,
                             static_cast<double>(c.rate_limit_clients)));
        out.push_back(single("tunerd_connections_evicted_total",
                             "Idle client connections closed to make room (max_connections)",
                             MetricType::Counter, static_cast<double>(c.evicted)));
        out.push_back(single("tunerd_spool_bytes",
                             "Request body bytes held in spool files now (server.spool_max_size)",
                             MetricType::Gauge, static_cast<double>(c.spool_bytes)));
        out.push_back(single("tunerd_spool_refused_total",
                             "Request bodies refused with 503: server.spool_max_size reached",
                             MetricType::Counter, static_cast<double>(c.spool_refused)));
        auto statics = family("tunerd_static_responses_total",
                              "Responses the front gave from [[static]] directories, by status",
                              MetricType::Counter);
        for (const auto& [status, n] : c.static_responses)
            add_value(statics, static_cast<double>(n), {{"status", std::to_string(status)}});
        out.push_back(std::move(statics));
        out.push_back(single("tunerd_static_bytes_total",
                             "Bytes sent for [[static]] requests, headers included",
                             MetricType::Counter, static_cast<double>(c.static_bytes)));
        out.push_back(single("tunerd_access_log_lines_total", "Access log lines written",
                             MetricType::Counter, static_cast<double>(c.access_log_written)));
        out.push_back(single("tunerd_access_log_dropped_total",
                             "Access log lines dropped because the queue was full",
                             MetricType::Counter, static_cast<double>(c.access_log_dropped)));
        out.push_back(single("tunerd_access_log_errors_total",
                             "Access log files that could not be opened or written",
                             MetricType::Counter, static_cast<double>(c.access_log_errors)));
        const auto& z = c.compression;
        auto compressed = family("tunerd_compressed_responses_total",
                                 "Responses compressed by the front ([compression]), by coding",
                                 MetricType::Counter);
        auto bytes = family("tunerd_compression_bytes_total",
                            "Bytes through the compressors: in (from the workers) and out (to "
                            "the clients), by coding",
                            MetricType::Counter);
        for (const auto& [name, per] : {std::pair{"gzip", &z.gzip}, std::pair{"br", &z.br}}) {
            add_value(compressed, static_cast<double>(per->responses), {{"encoding", name}});
            add_value(bytes, static_cast<double>(per->bytes_in),
                      {{"direction", "in"}, {"encoding", name}});
            add_value(bytes, static_cast<double>(per->bytes_out),
                      {{"direction", "out"}, {"encoding", name}});
        }
        out.push_back(std::move(compressed));
        out.push_back(std::move(bytes));
        out.push_back(single("tunerd_compression_cpu_seconds_total",
                             "CPU time the I/O threads spent compressing responses",
                             MetricType::Counter, z.cpu_seconds()));
        out.push_back(single("tunerd_compression_level",
                             "gzip level in use (compression.level, lowered under CPU saturation)",
                             MetricType::Gauge, z.levels.gzip));
        out.push_back(single("tunerd_compression_memory_bytes",
                             "Memory held by the compressors of responses in progress",
                             MetricType::Gauge, static_cast<double>(z.memory_bytes)));
    }

    if (in.cache && in.cache->enabled) {
        const auto& c = *in.cache;
        auto requests =
            family("tunerd_cache_requests_total",
                   "Responses of the micro-cache by X-Cache-Status ([cache])", MetricType::Counter);
        for (const auto& [status, n] :
             {std::pair{"HIT", c.hits}, std::pair{"MISS", c.misses},
              std::pair{"EXPIRED", c.expired}, std::pair{"STALE", c.stale},
              std::pair{"BYPASS", c.bypasses}})
            add_value(requests, static_cast<double>(n), {{"status", status}});
        out.push_back(std::move(requests));
        out.push_back(single("tunerd_cache_bytes",
                             "Bytes the micro-cache holds (keys, headers, bodies; tunerd's own "
                             "memory)",
                             MetricType::Gauge, static_cast<double>(c.bytes)));
        out.push_back(single("tunerd_cache_capacity_bytes", "Bytes the micro-cache may hold",
                             MetricType::Gauge, static_cast<double>(c.capacity)));
        out.push_back(single("tunerd_cache_entries", "Responses the micro-cache holds",
                             MetricType::Gauge, static_cast<double>(c.entries)));
        out.push_back(single("tunerd_cache_evictions_total",
                             "Micro-cache entries dropped for room (least recently used)",
                             MetricType::Counter, static_cast<double>(c.evictions)));
        out.push_back(single("tunerd_cache_collapsed_total",
                             "Cache hits that waited for a concurrent miss of the same key",
                             MetricType::Counter, static_cast<double>(c.collapsed)));
        out.push_back(single("tunerd_cache_stores_total", "Responses stored in the micro-cache",
                             MetricType::Counter, static_cast<double>(c.stores)));
    }

    if (in.requests) {
        const auto& r = *in.requests;
        auto codes = family("tunerd_requests_total", "Responses sent by the front, by status code",
                            MetricType::Counter);
        for (const auto& [code, n] : r.codes)
            add_value(codes, static_cast<double>(n), {{"code", std::to_string(code)}});
        out.push_back(std::move(codes));
        auto rejected = family("tunerd_requests_rejected_total",
                               "Requests answered 503 by the front", MetricType::Counter);
        add_value(rejected, static_cast<double>(r.rejected_queue_full), {{"reason", "queue_full"}});
        add_value(rejected, static_cast<double>(r.timed_out_in_queue),
                  {{"reason", "queue_timeout"}});
        out.push_back(std::move(rejected));
        out.push_back(single("tunerd_request_retries_total",
                             "Idempotent requests retried on another worker", MetricType::Counter,
                             static_cast<double>(r.retries)));
        out.push_back(histogram("tunerd_request_duration_seconds",
                                "Time from request header to response end", r.total));
        out.push_back(histogram("tunerd_request_queue_wait_seconds",
                                "Time requests waited for a worker", r.queue_wait));
        out.push_back(histogram("tunerd_request_service_seconds",
                                "Time workers took, request sent to response received", r.service));
    }

    if (in.view && in.view->valid) {
        const auto& s = in.view->snapshot;
        out.push_back(single("tunerd_cpu_effective_cores",
                             "Cores tunerd may use: min(affinity, ceil(quota))", MetricType::Gauge,
                             s.cpu.effective_cores));
        out.push_back(single("tunerd_cpu_quota_cores",
                             "CPU quota in cores (quota / period), 0 when unlimited",
                             MetricType::Gauge, s.cpu.quota_cores.value_or(0)));
        out.push_back(single("tunerd_cpu_usage_seconds_total", "CPU time used by tunerd's cgroup",
                             MetricType::Counter, static_cast<double>(s.cpu.usage_usec) / 1e6));
        out.push_back(single("tunerd_cpu_throttled_seconds_total",
                             "Time the cgroup was throttled by its CPU quota", MetricType::Counter,
                             static_cast<double>(s.cpu.throttled_usec) / 1e6));
        out.push_back(single("tunerd_cpu_utilisation_ratio",
                             "CPU used over the last interval, of the quota or the cores",
                             MetricType::Gauge, s.cpu.utilisation.value_or(0)));
        out.push_back(single("tunerd_memory_limit_bytes",
                             "Memory limit (cgroup, else host MemTotal)", MetricType::Gauge,
                             static_cast<double>(s.memory.limit_bytes)));
        out.push_back(single("tunerd_memory_usage_bytes",
                             "Memory the cgroup uses, page cache included", MetricType::Gauge,
                             static_cast<double>(s.memory.usage_bytes)));
        out.push_back(single("tunerd_memory_working_set_bytes",
                             "Memory usage minus inactive file cache", MetricType::Gauge,
                             static_cast<double>(s.memory.working_set_bytes)));
        out.push_back(single("tunerd_memory_oom_kills_total",
                             "Processes the kernel OOM-killed in the cgroup", MetricType::Counter,
                             static_cast<double>(s.memory.oom_kills)));
        out.push_back(single("tunerd_self_memory_bytes", "tunerd's own resident memory",
                             MetricType::Gauge,
                             static_cast<double>(s.self.pss_bytes.value_or(s.self.rss_bytes))));
        out.push_back(single("tunerd_workers_memory_ceiling",
                             "Most workers the memory budget allows", MetricType::Gauge,
                             in.view->seed.memory_ceiling));
        out.push_back(single(
            "tunerd_capacity_saturation_ratio",
            "Workers the policy wants, unclamped, over the most this node allows (memory ceiling, "
            "workers.max); above 1 this node cannot grow enough",
            MetricType::Gauge, in.view->saturation.ratio));
        out.push_back(single("tunerd_memory_budget_bytes", "Memory the workers may use",
                             MetricType::Gauge, static_cast<double>(in.view->seed.budget_bytes)));
        auto stalled = family("tunerd_pressure_stalled_seconds_total",
                              "Pressure stall time (PSI total)", MetricType::Counter);
        auto avg10 =
            family("tunerd_pressure_avg10_ratio",
                   "Pressure stall share over the last 10 s (PSI avg10)", MetricType::Gauge);
        add_pressure(stalled, avg10, "cpu", s.pressure.cpu);
        add_pressure(stalled, avg10, "memory", s.pressure.memory);
        add_pressure(stalled, avg10, "io", s.pressure.io);
        out.push_back(std::move(stalled));
        out.push_back(std::move(avg10));
        out.push_back(single("tunerd_control_cycle_seconds", "Duration of the last control cycle",
                             MetricType::Gauge, in.view->last_cycle_ms / 1000.0));
    }

    out.push_back(single("tunerd_decision_log_errors_total",
                         "Failed writes and opens of the SQLite decision log", MetricType::Counter,
                         static_cast<double>(in.decision_log.errors_total)));
    out.push_back(single("tunerd_decision_log_dropped_total",
                         "Entries dropped from the decision log's full queue", MetricType::Counter,
                         static_cast<double>(in.decision_log.dropped_total)));
    out.push_back(single("tunerd_decision_log_queued",
                         "Entries waiting to be written to the decision log", MetricType::Gauge,
                         static_cast<double>(in.decision_log.queued)));
    out.push_back(single("tunerd_decision_log_healthy",
                         "1 while the decision log writes, 0 while it fails", MetricType::Gauge,
                         in.decision_log.healthy ? 1 : 0));

    // Families with no sample would be printed as bare HELP/TYPE lines: leave them out.
    std::erase_if(out, [](const MetricFamily& f) { return f.metric.empty(); });
    return prometheus::TextSerializer().Serialize(out);
}

}  // namespace tuner
