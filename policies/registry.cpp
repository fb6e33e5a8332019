// The table of tuning rules (see registry.hpp); docs/policies.md explains each row at length.
#include "policies/registry.hpp"

#include <algorithm>
#include <array>

#include "model/knobs.hpp"

namespace tuner::policies {
namespace {

constexpr std::string_view kGunicorn =
    "gunicorn docs, Design: \"How Many Workers?\" (2 × cores + 1), "
    "https://docs.gunicorn.org/en/stable/design.html#how-many-workers";
constexpr std::string_view kLittle =
    "J. D. C. Little, \"A Proof for the Queuing Formula: L = λW\", Operations Research 9(3), "
    "1961; utilisation target: Google SRE book, ch. 21 \"Handling Overload\"";
constexpr std::string_view kMemory =
    "kernel cgroup-v2 docs (memory.max, memory.high, memory.events oom_kill), "
    "https://docs.kernel.org/admin-guide/cgroup-v2.html";

constexpr std::string_view kCompressionSource =
    "nginx gzip_comp_level (1-9), https://nginx.org/en/docs/http/ngx_http_gzip_module.html; "
    "zlib manual, deflateInit2 levels, https://zlib.net/manual.html; brotli qualities 0-11 "
    "(RFC 7932); speed per level measured in docs/benchmarks.md";

constexpr std::string_view kCacheSource =
    "nginx proxy_cache_path max_size (least recently used data removed), "
    "https://nginx.org/en/docs/http/ngx_http_proxy_module.html#proxy_cache_path; Varnish LRU "
    "nuking when storage runs out, "
    "https://varnish-cache.org/docs/trunk/users-guide/sizing-your-cache.html; memory signals as "
    "memory_pressure";

constexpr std::array kTable{
    PolicyInfo{rule::seed_formula, knob::workers_count.name,
               "first cycle (and every cycle in mode = \"formula\"): "
               "min(2×cores+1, floor(budget / per-worker memory)) within workers.min/max",
               kGunicorn},
    PolicyInfo{rule::fixed, knob::workers_count.name,
               "mode = \"fixed\": workers.count and workers.threads as configured, even above "
               "the memory ceiling (with a warning)",
               "DESIGN \"Which bound wins\": the operator's explicit choice"},
    PolicyInfo{rule::littles_law, knob::workers_count.name,
               "grow to ceil(λ × S / (threads × target_utilisation)) when the pool runs above "
               "its target utilisation",
               kLittle},
    PolicyInfo{rule::queue_growth, knob::workers_count.name,
               "a queue matters: grow straight to what it needs, not +1 per cycle. Standing (a "
               "closed loop): ceil((inflight + queued) / (threads × u)); growing or draining: "
               "ceil((λ_recent + backlog / 10 s) × S / (threads × u))",
               kLittle},
    PolicyInfo{rule::cpu_knee, knob::workers_count.name,
               "CPU quota saturated (≥ 90 %, or CPU PSI rising) and the last increase added "
               "< 5 % throughput: settle at the smallest size that reached the best throughput "
               "and grow no further while the CPU stays saturated",
               "Netflix concurrency-limits (TCP Vegas-style: more concurrency without more "
               "throughput is queueing), https://github.com/Netflix/concurrency-limits; "
               "Linux PSI docs, https://docs.kernel.org/accounting/psi.html"},
    PolicyInfo{rule::scale_down, knob::workers_count.name,
               "utilisation below the dead band for scale_down_cooldown: shrink towards the "
               "largest recommendation of that period, half the gap per step",
               "Kubernetes HPA scale-down stabilization window (KEP-853), "
               "https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/"},
    PolicyInfo{rule::memory_ceiling, knob::workers_count.name,
               "the pool is above floor(budget / measured per-process memory) for its thread "
               "count: shrink to that ceiling, below workers.min if need be (warning)",
               kMemory},
    PolicyInfo{rule::memory_pressure, knob::workers_count.name,
               "unreclaimable memory (the working set less the active page cache) ≥ 90 % of "
               "memory.max or memory.high, memory PSI rising, or a new OOM kill: shrink now, "
               "before the kernel OOM-kills, and hold growth",
               "Linux PSI docs, https://docs.kernel.org/accounting/psi.html; kernel "
               "cgroup-v2 docs (memory.high, memory.events), "
               "https://docs.kernel.org/admin-guide/cgroup-v2.html"},
    PolicyInfo{rule::bounds, knob::workers_count.name,
               "the pool is outside workers.min/max (after a reload) or threads outside "
               "workers.threads..threads_max: clamp",
               "DESIGN \"Which bound wins\""},
    PolicyInfo{rule::threads_wait_share, knob::workers_threads.name,
               "processes capped by memory (or the database) and requests mostly wait "
               "(1 − CPU per request / S ≥ 50 %): raise threads per process to carry the "
               "demand concurrency",
               "Little's law per process (Little 1961); gunicorn docs, settings \"threads\" "
               "(gthread worker), https://docs.gunicorn.org/en/stable/settings.html#threads"},
    PolicyInfo{rule::threads_cpu_contention, knob::workers_threads.name,
               "CPU saturated and service time ≥ 1.5 × its uncontended value with more "
               "concurrency than the CPU can use: lower threads",
               "Netflix concurrency-limits, gradient = RTT_noload / RTT_actual, "
               "https://github.com/Netflix/concurrency-limits"},
    PolicyInfo{rule::manual, knob::workers_count.name,
               "an administrator pinned the pool (POST /workers/target); the controller keeps "
               "deciding and its decisions are overridden",
               "DESIGN \"Admin API sketch\""},
    PolicyInfo{rule::compression_cpu_saturated, knob::compression_level.name,
               "CPU quota saturated (mean ≥ 90 % over the last cycles) while compression took "
               "CPU: gzip level one step down (brotli with it), to a floor of 1, at most once "
               "per 10 s",
               kCompressionSource},
    PolicyInfo{rule::compression_headroom, knob::compression_level.name,
               "CPU headroom (mean ≤ 60 %): gzip level one step back up towards "
               "compression.level, at most once per 10 s",
               kCompressionSource},
    PolicyInfo{rule::cache_memory_pressure, knob::cache_capacity.name,
               "memory presses (the memory_pressure signals): the micro-cache's capacity halves, "
               "to a floor of cache.size / 16 (at least 1 MiB), at most once per 5 s; the least "
               "recently used entries are evicted at once",
               kCacheSource},
    PolicyInfo{rule::cache_headroom, knob::cache_capacity.name,
               "10 cycles without memory pressure and 30 s since the last change: the capacity "
               "doubles towards cache.size, as far as the memory held stays ≤ 80 % of the line",
               kCacheSource},
    PolicyInfo{rule::config_reload, knob::workers_min.subsystem,
               "SIGHUP reloaded the config and a bound changed (min, max, threads_max, the fixed "
               "count, the mode); the controller clamps the pool "
               "on its next cycle (rule bounds)",
               "DESIGN \"Interfaces\" (SIGHUP)"},
    PolicyInfo{rule::db_pool, knob::db_pool_size.subsystem,
               "pool_size, max_overflow, pool_recycle and pool_timeout of the app's pools: per "
               "worker pool_size = threads, max_overflow so that every pool at once fits "
               "the live max_connections; caps workers (max_processes_by_db) when it cannot",
               "SQLAlchemy docs, \"Connection Pooling\" (pool_size, max_overflow, pool_recycle); "
               "DESIGN \"Policies\" 4; docs/policies.md \"Database policies\""},
    PolicyInfo{rule::db_pool_connections, "max_connections",
               "PostgreSQL's max_connections sized for the pools that can exist",
               "DESIGN \"Policies\" 4–5; docs/policies.md \"Database policies\""},
    PolicyInfo{rule::pgtune_web, "shared_buffers, effective_cache_size, work_mem, ...",
               "PostgreSQL memory settings on PostgreSQL's share of the memory really there",
               "PGTune, web profile, https://github.com/le0pard/pgtune"},
    PolicyInfo{rule::rollback, "PostgreSQL settings",
               "tunerctl rollback: the settings tunerd changed return to their recorded originals",
               "DESIGN \"Policies\" 5; bpftune's rollback of what it changed"},
};

}  // namespace

std::span<const PolicyInfo> policy_table() {
    return kTable;
}

std::optional<PolicyInfo> find_policy(std::string_view name) {
    const auto it = std::find_if(kTable.begin(), kTable.end(),
                                 [&](const PolicyInfo& p) { return p.name == name; });
    if (it == kTable.end()) return std::nullopt;
    return *it;
}

}  // namespace tuner::policies
