// PGTune's web-profile formulas on PostgreSQL's memory (see postgres_settings.hpp).
#include "policies/postgres_settings.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace tuner::policies {
namespace {

// Every formula below follows PGTune at this commit unless its source says otherwise; newer
// PGTune versions changed work_mem's divisor and the maintenance_work_mem cap (docs/policies.md).
constexpr const char* kPgtune =
    "PGTune web profile (github.com/le0pard/pgtune, "
    "src/features/configuration/configurationSlice.js @ 27bf803)";
constexpr const char* kPoolPolicy =
    "tunerd db_pool policy: the connections the app's pools can really open (DESIGN Policies 4), "
    "not PGTune's 200";

constexpr std::uint64_t kKbPerMb = 1024;
constexpr std::uint64_t kKbPerGb = 1024 * 1024;
// PGTune caps maintenance_work_mem at 2GB "on servers with lots of memory".
constexpr std::uint64_t kMaintenanceWorkMemCapKb = 2 * kKbPerGb;
// wal_buffers: at most one WAL segment (16MB); PostgreSQL's own auto-tuning (wal_buffers = -1)
// never goes below 64kB (PostgreSQL docs, "Write Ahead Log: Settings"); PGTune rounds 14..16MB up.
constexpr std::uint64_t kWalBuffersMaxKb = 16 * kKbPerMb;
constexpr std::uint64_t kWalBuffersNearMaxKb = 14 * kKbPerMb;
constexpr std::uint64_t kWalBuffersMinKb = 64;
// work_mem below 64kB is PostgreSQL's minimum and PGTune's floor.
constexpr std::uint64_t kWorkMemMinKb = 64;
// PostgreSQL's default max_parallel_workers_per_gather, PGTune's divisor when cores < 4.
constexpr unsigned kDefaultParallelPerGather = 2;
// PGTune: "no clear evidence that each new worker will provide big benefit" beyond 4.
constexpr unsigned kMaxParallelPerGather = 4;
// PGTune's low-memory warning threshold.
constexpr std::uint64_t kLowMemoryBytes = 256 * MiB;

std::string format_real(double value) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", value);
    return buf;
}

PostgresSetting memory_setting(std::string name, std::uint64_t kilobytes, bool needs_restart,
                               std::string formula, std::string source = kPgtune) {
    PostgresSetting s;
    s.name = std::move(name);
    s.value = format_pg_memory_kb(kilobytes);
    s.typed = ByteSize{kilobytes * KiB};
    s.numeric = static_cast<double>(kilobytes * KiB);
    s.is_memory = true;
    s.needs_restart = needs_restart;
    s.formula = std::move(formula) + " = " + s.value;
    s.source = std::move(source);
    return s;
}

PostgresSetting count_setting(std::string name, std::int64_t value, bool needs_restart,
                              std::string formula, std::string source = kPgtune) {
    PostgresSetting s;
    s.name = std::move(name);
    s.value = std::to_string(value);
    s.typed = Count{value};
    s.numeric = static_cast<double>(value);
    s.needs_restart = needs_restart;
    s.formula = std::move(formula);
    s.source = std::move(source);
    return s;
}

PostgresSetting real_setting(std::string name, double value, std::string formula,
                             std::string source = kPgtune) {
    PostgresSetting s;
    s.name = std::move(name);
    s.value = format_real(value);
    s.typed = Text{s.value};
    s.numeric = value;
    s.formula = std::move(formula);
    s.source = std::move(source);
    return s;
}

}  // namespace

std::string format_pg_memory_kb(std::uint64_t kilobytes) {
    if (kilobytes != 0 && kilobytes % kKbPerGb == 0)
        return fmt::format("{}GB", kilobytes / kKbPerGb);
    if (kilobytes != 0 && kilobytes % kKbPerMb == 0)
        return fmt::format("{}MB", kilobytes / kKbPerMb);
    return fmt::format("{}kB", kilobytes);
}

const PostgresSetting* PostgresSettingsResult::find(std::string_view name) const {
    for (const auto& s : settings) {
        if (s.name == name) return &s;
    }
    return nullptr;
}

const std::vector<std::string>& postgres_setting_names() {
    static const std::vector<std::string> names = {"max_connections",
                                                   "shared_buffers",
                                                   "effective_cache_size",
                                                   "maintenance_work_mem",
                                                   "checkpoint_completion_target",
                                                   "wal_buffers",
                                                   "default_statistics_target",
                                                   "random_page_cost",
                                                   "effective_io_concurrency",
                                                   "work_mem",
                                                   "min_wal_size",
                                                   "max_wal_size",
                                                   "max_worker_processes",
                                                   "max_parallel_workers_per_gather",
                                                   "max_parallel_workers",
                                                   "max_parallel_maintenance_workers"};
    return names;
}

PostgresSettingsResult postgres_settings(const PostgresSettingsInputs& in) {
    PostgresSettingsResult r;
    const std::uint64_t ram_kb = in.memory_bytes / KiB;
    const std::string ram = format_pg_memory_kb(ram_kb);
    const unsigned cores = std::max(1u, in.effective_cores);
    const unsigned max_connections = std::max(1u, in.max_connections);
    const bool ssd = in.storage == Storage::ssd;

    std::string connections_formula = in.max_connections_formula.empty()
                                          ? "what the pool policy needs"
                                          : in.max_connections_formula;
    r.settings.push_back(count_setting("max_connections", max_connections, true,
                                       std::move(connections_formula), kPoolPolicy));

    const std::uint64_t shared_buffers_kb = ram_kb / 4;
    r.settings.push_back(
        memory_setting("shared_buffers", shared_buffers_kb, true, "RAM/4 = " + ram + "/4"));
    r.settings.push_back(
        memory_setting("effective_cache_size", ram_kb * 3 / 4, false, "RAM×3/4 = " + ram + "×3/4"));

    const std::uint64_t maintenance_kb = std::min(ram_kb / 16, kMaintenanceWorkMemCapKb);
    r.settings.push_back(memory_setting("maintenance_work_mem", maintenance_kb, false,
                                        "RAM/16 = " + ram + "/16, at most 2GB"));

    r.settings.push_back(real_setting("checkpoint_completion_target", 0.9,
                                      "0.9 (PostgreSQL 14's default, postgres commit bbcc4eb2)"));

    std::uint64_t wal_buffers_kb = std::min(3 * shared_buffers_kb / 100, kWalBuffersMaxKb);
    if (wal_buffers_kb > kWalBuffersNearMaxKb && wal_buffers_kb < kWalBuffersMaxKb)
        wal_buffers_kb = kWalBuffersMaxKb;
    wal_buffers_kb = std::max(wal_buffers_kb, kWalBuffersMinKb);
    r.settings.push_back(memory_setting(
        "wal_buffers", wal_buffers_kb, true,
        "3% of shared_buffers " + format_pg_memory_kb(shared_buffers_kb) +
            ", within [64kB, 16MB], 14MB..16MB rounded up to 16MB",
        std::string(kPgtune) + "; 64kB floor from PostgreSQL's wal_buffers auto-tuning"));

    r.settings.push_back(count_setting("default_statistics_target", 100, false, "100 (web)"));
    r.settings.push_back(real_setting("random_page_cost", ssd ? 1.1 : 4.0,
                                      ssd ? "1.1 (ssd)" : "4 (hdd, PostgreSQL's default)"));
    r.settings.push_back(count_setting("effective_io_concurrency", ssd ? 200 : 2, false,
                                       ssd ? "200 (ssd)" : "2 (hdd)"));

    // Parallel query settings only from 4 cores, as PGTune does; below that PostgreSQL's defaults
    // stay, and work_mem is divided by the default max_parallel_workers_per_gather (2).
    unsigned parallel_per_gather = kDefaultParallelPerGather;
    std::vector<PostgresSetting> parallel;
    if (cores >= 4) {
        const unsigned half = (cores + 1) / 2;
        parallel_per_gather = std::min(half, kMaxParallelPerGather);
        const std::string all_cores = fmt::format("cores = {}", cores);
        const std::string half_cores = fmt::format("ceil(cores/2) = ceil({}/2), at most 4", cores);
        parallel.push_back(count_setting("max_worker_processes", cores, true, all_cores));
        parallel.push_back(count_setting("max_parallel_workers_per_gather", parallel_per_gather,
                                         false, half_cores));
        parallel.push_back(count_setting("max_parallel_workers", cores, false, all_cores));
        parallel.push_back(count_setting("max_parallel_maintenance_workers", parallel_per_gather,
                                         false, half_cores));
    }

    // PGTune: "(RAM - shared_buffers) / (max_connections * 3) / max_parallel_workers_per_gather";
    // ×3 because one query may allocate work_mem several times (sorts, hashes).
    const double work_mem_exact = static_cast<double>(ram_kb - shared_buffers_kb) /
                                  (static_cast<double>(max_connections) * 3.0) /
                                  static_cast<double>(parallel_per_gather);
    const auto work_mem_kb =
        std::max(static_cast<std::uint64_t>(std::floor(work_mem_exact)), kWorkMemMinKb);
    r.settings.push_back(memory_setting(
        "work_mem", work_mem_kb, false,
        fmt::format("(RAM − shared_buffers) / (max_connections × 3) / "
                    "max_parallel_workers_per_gather = ({} − {}) / ({} × 3) / {}, at least 64kB",
                    ram, format_pg_memory_kb(shared_buffers_kb), max_connections,
                    parallel_per_gather)));

    r.settings.push_back(memory_setting("min_wal_size", kKbPerGb, false, "web profile"));
    r.settings.push_back(memory_setting("max_wal_size", 4 * kKbPerGb, false, "web profile"));
    for (auto& p : parallel) r.settings.push_back(std::move(p));

    if (in.memory_bytes < kLowMemoryBytes) {
        r.warnings.push_back("PostgreSQL's memory " + format_size_approx(in.memory_bytes) +
                             " is below 256MB: PGTune's formulas are not optimal for such small "
                             "systems; consider more memory or a remote database");
    }

    nlohmann::json inputs = {{"memory_bytes", in.memory_bytes},
                             {"memory_source", in.memory_source},
                             {"effective_cores", cores},
                             {"storage", to_string(in.storage)},
                             {"max_connections", max_connections},
                             {"parallel_per_gather", parallel_per_gather},
                             {"profile", "web"}};
    r.inputs_json = inputs.dump();
    return r;
}

std::uint64_t postgres_memory_bytes(const DatabaseConfig& db, std::uint64_t box_memory_bytes) {
    if (db.location == DatabaseLocation::remote) return db.memory_bytes;
    return static_cast<std::uint64_t>(static_cast<double>(box_memory_bytes) * db.memory_share);
}

PostgresSettingsInputs postgres_settings_inputs(const Snapshot& snapshot, const Config& config,
                                                unsigned max_connections,
                                                std::string max_connections_formula) {
    PostgresSettingsInputs in;
    const auto& db = config.database;
    in.memory_bytes = postgres_memory_bytes(db, snapshot.memory.limit_bytes);
    if (db.location == DatabaseLocation::remote) {
        in.memory_source = "database.memory";
    } else {
        char share[16];
        std::snprintf(share, sizeof share, "%g%%", db.memory_share * 100.0);
        in.memory_source = std::string(share) + " of " +
                           format_size_approx(snapshot.memory.limit_bytes) +
                           (snapshot.memory.limited ? " cgroup limit" : " host memory");
    }
    in.effective_cores = snapshot.cpu.effective_cores;
    in.storage = db.storage;
    in.max_connections = max_connections;
    in.max_connections_formula = std::move(max_connections_formula);
    return in;
}

}  // namespace tuner::policies
