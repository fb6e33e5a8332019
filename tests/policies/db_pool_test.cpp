// Connection pools coupled to the worker pool and PostgreSQL's live max_connections, and the
// PostgreSQL settings that follow from them. Expected numbers are worked out by hand.
#include "policies/db_pool.hpp"

#include <gtest/gtest.h>

#include "policies/postgres_settings.hpp"

namespace tuner::policies {
namespace {

using namespace std::chrono_literals;

// A box with a cgroup memory limit, PostgreSQL local with the default 25 % share, workers of the
// configured 100MB and no tunerd RSS: budget = 75 % of the limit.
struct Box {
    std::uint64_t memory_bytes;
    unsigned cores;
    PoolMode mode;
};

struct Coupled {
    SeedResult seed;
    unsigned max_workers = 0;
    DbPoolResult pool;
    PostgresSettingsResult settings;
};

Coupled couple(const Box& box, unsigned threads = 1,
               std::optional<PostgresServerFacts> server = PostgresServerFacts{}) {
    Config config;
    config.workers.mode = box.mode;
    config.workers.threads = threads;
    config.database.postgres = PostgresMode::apply;
    Snapshot snap;
    snap.cpu.effective_cores = box.cores;
    snap.memory.limit_bytes = box.memory_bytes;
    snap.memory.limited = true;

    Coupled c;
    c.seed = seed_formula(seed_inputs(snap, config));
    const auto pool_inputs = db_pool_inputs(snap, config, c.seed, server);
    c.max_workers = pool_inputs.max_workers;
    c.pool = size_db_pool(pool_inputs);
    c.settings = postgres_settings(postgres_settings_inputs(
        snap, config, c.pool.wanted_max_connections, c.pool.wanted_max_connections_formula));
    return c;
}

std::string work_mem(const Coupled& c) {
    return c.settings.find("work_mem")->value;
}

struct CouplingCase {
    Box box;
    unsigned workers;          // the most processes: seed formula / memory ceiling
    unsigned max_overflow;     // against the live default max_connections 100
    unsigned max_connections;  // recommended: workers × (1 + 2) + 3 + 2
    const char* work_mem;      // (RAM − RAM/4) / (max_connections × 3) / 2
};

// Formula mode: workers = min(2×cores+1, floor(0.75 × limit / 100MB)).
// 512MB: 384MB → 3 workers whatever the cores. 2GB and 8GB: 3, 5, 9 by cores.
// Adaptive mode: workers up to min(workers.max 64, memory ceiling) with the limit's headroom
// (1/8) kept free: 512MB: (384 − 64)MB → 3; 2GB: (1536 − 256)MB → 12; 8GB: (6144 − 1024)MB → 51.
// work_mem, e.g. 512MB: RAM 128MB = 131072kB, (131072 − 32768) / (14 × 3) / 2 = 1170.3kB.
const CouplingCase kCouplingCases[] = {
    {{512 * MiB, 1, PoolMode::formula}, 3, 2, 14, "1170kB"},
    {{512 * MiB, 2, PoolMode::formula}, 3, 2, 14, "1170kB"},
    {{512 * MiB, 4, PoolMode::formula}, 3, 2, 14, "1170kB"},
    {{2 * GiB, 1, PoolMode::formula}, 3, 2, 14, "4681kB"},   // 393216 / 42 / 2 = 4681.1
    {{2 * GiB, 2, PoolMode::formula}, 5, 2, 20, "3276kB"},   // 393216 / 60 / 2 = 3276.8
    {{2 * GiB, 4, PoolMode::formula}, 9, 2, 32, "2MB"},      // 393216 / 96 / 2 = 2048kB
    {{8 * GiB, 1, PoolMode::formula}, 3, 2, 14, "18724kB"},  // 1572864 / 42 / 2 = 18724.6
    {{8 * GiB, 2, PoolMode::formula}, 5, 2, 20, "13107kB"},  // 1572864 / 60 / 2 = 13107.2
    {{8 * GiB, 4, PoolMode::formula}, 9, 2, 32, "8MB"},      // 1572864 / 96 / 2 = 8192kB
    {{512 * MiB, 1, PoolMode::adaptive}, 3, 2, 14, "1170kB"},
    {{2 * GiB, 2, PoolMode::adaptive}, 12, 2, 41, "1598kB"},  // 95 / 12 = 7 per worker
    // 95 / 51 = 1 per worker: no overflow. 51 × 3 + 5 = 158; 1572864 / 474 / 2 = 1659.1.
    {{8 * GiB, 4, PoolMode::adaptive}, 51, 0, 158, "1659kB"},
};

TEST(DbPool, CouplesPoolsWorkersAndPostgresAcrossBoxSizes) {
    for (const auto& tc : kCouplingCases) {
        const auto c = couple(tc.box);
        SCOPED_TRACE(format_size(tc.box.memory_bytes) + " × " + std::to_string(tc.box.cores) +
                     " cores, " + to_string(tc.box.mode));
        EXPECT_EQ(c.max_workers, tc.workers);
        EXPECT_EQ(c.pool.values.pool_size, 1u);
        EXPECT_EQ(c.pool.values.max_overflow, tc.max_overflow);
        EXPECT_EQ(c.pool.connection_budget, 95u);
        EXPECT_EQ(c.pool.wanted_max_connections, tc.max_connections);
        EXPECT_EQ(c.settings.find("max_connections")->value, std::to_string(tc.max_connections));
        EXPECT_EQ(work_mem(c), tc.work_mem);
        EXPECT_FALSE(c.pool.max_processes_by_db.has_value());
        // The invariant the policy exists for: every pool at once fits the live budget.
        EXPECT_LE(tc.workers * (c.pool.values.pool_size + c.pool.values.max_overflow),
                  c.pool.connection_budget);
        EXPECT_NE(c.pool.reason.find(std::to_string(tc.workers) + " workers"), std::string::npos)
            << c.pool.reason;
    }
}

TEST(DbPool, PoolSizeIsThreadsPerWorker) {
    const auto c = couple({2 * GiB, 2, PoolMode::formula}, 4);
    EXPECT_EQ(c.pool.values.pool_size, 4u);
    // 5 workers: 95 / 5 = 19 per worker → overflow min(8, 15) = 8.
    EXPECT_EQ(c.pool.values.max_overflow, 8u);
    EXPECT_EQ(c.pool.wanted_max_connections, 5u * 12u + 5u);
}

TEST(DbPool, CapsWorkersAndRecommendsPgBouncerWhenBudgetCannotHold) {
    DbPoolInputs in;
    in.max_workers = 8;
    in.threads = 4;
    in.server = PostgresServerFacts{20, 3, 0ms, 0ms};
    const auto r = size_db_pool(in);
    // Budget 20 − 3 − 2 = 15 < 8 × 4 = 32: at most 15 / 4 = 3 processes.
    EXPECT_EQ(r.connection_budget, 15u);
    EXPECT_EQ(r.values.pool_size, 4u);
    EXPECT_EQ(r.values.max_overflow, 0u);
    ASSERT_TRUE(r.max_processes_by_db.has_value());
    EXPECT_EQ(*r.max_processes_by_db, 3u);
    ASSERT_TRUE(r.pgbouncer.has_value());
    EXPECT_EQ(r.pgbouncer->default_pool_size, 15u);
    EXPECT_EQ(r.pgbouncer->max_client_conn, 96u);  // 8 × (4 + 8)
    EXPECT_NE(r.reason.find("PgBouncer"), std::string::npos) << r.reason;
    EXPECT_NE(r.reason.find("pool_mode = transaction"), std::string::npos) << r.reason;
    EXPECT_NE(r.reason.find("default_pool_size = 15"), std::string::npos) << r.reason;
    EXPECT_NE(r.reason.find("max_client_conn = 96"), std::string::npos) << r.reason;
    EXPECT_NE(r.reason.find("capped at 3"), std::string::npos) << r.reason;
    EXPECT_NE(r.inputs_json.find("\"max_processes_by_db\":3"), std::string::npos) << r.inputs_json;
}

TEST(DbPool, EightGigabytesWithFourThreadsNeedsPgBouncerAgainstDefaultMaxConnections) {
    const auto c = couple({8 * GiB, 4, PoolMode::adaptive}, 4);
    // 51 workers × 4 = 204 > 95 → 95 / 4 = 23 processes.
    ASSERT_TRUE(c.pool.max_processes_by_db.has_value());
    EXPECT_EQ(*c.pool.max_processes_by_db, 23u);
    EXPECT_EQ(c.pool.pgbouncer->max_client_conn, 51u * 12u);
}

TEST(DbPool, BudgetSmallerThanOnePoolKeepsOneWorkerWithASmallerPool) {
    DbPoolInputs in;
    in.max_workers = 2;
    in.threads = 4;
    in.server = PostgresServerFacts{6, 3, 0ms, 0ms};  // budget 1
    const auto r = size_db_pool(in);
    EXPECT_EQ(*r.max_processes_by_db, 1u);
    EXPECT_EQ(r.values.pool_size, 1u);
}

TEST(DbPool, UnknownServerAssumesPostgresDefaultsAndSaysSo) {
    DbPoolInputs in;
    in.max_workers = 3;
    const auto r = size_db_pool(in);
    EXPECT_EQ(r.connection_budget, 95u);
    EXPECT_NE(r.reason.find("not read yet"), std::string::npos) << r.reason;
}

TEST(DbPool, RecyclesHourlyWithoutServerHorizon) {
    DbPoolInputs in;
    in.server = PostgresServerFacts{};
    EXPECT_EQ(size_db_pool(in).values.pool_recycle, 3600s);
}

TEST(DbPool, RecyclesBelowIdleSessionTimeout) {
    DbPoolInputs in;
    in.server = PostgresServerFacts{100, 3, 60s, 0ms};
    const auto r = size_db_pool(in);
    EXPECT_EQ(r.values.pool_recycle, 54s);  // 60 s − 10 %
    EXPECT_LT(r.values.pool_recycle, 60s);
}

TEST(DbPool, RecyclesBelowTheShorterHorizon) {
    DbPoolInputs in;
    in.server = PostgresServerFacts{100, 3, 600s, 120s};
    EXPECT_EQ(size_db_pool(in).values.pool_recycle, 108s);
    in.server = PostgresServerFacts{100, 3, 0ms, 7200s};  // long horizon: still hourly
    EXPECT_EQ(size_db_pool(in).values.pool_recycle, 3600s);
}

TEST(DbPool, PoolTimeoutStaysBelowRequestTimeout) {
    DbPoolInputs in;
    in.request_timeout = 60s;
    EXPECT_EQ(size_db_pool(in).values.pool_timeout, 30s);
    in.request_timeout = 10s;
    EXPECT_EQ(size_db_pool(in).values.pool_timeout, 5s);
    in.request_timeout = 1s;
    EXPECT_EQ(size_db_pool(in).values.pool_timeout, 1s);
}

TEST(DbPool, EnvironmentForWorkers) {
    DbPoolInputs in;
    in.max_workers = 3;
    in.threads = 2;
    in.server = PostgresServerFacts{};
    const auto r = size_db_pool(in);
    EXPECT_EQ(r.env.at("DB_POOL_SIZE"), "2");
    EXPECT_EQ(r.env.at("DB_MAX_OVERFLOW"), "4");
    EXPECT_EQ(r.env.at("DB_POOL_RECYCLE"), "3600");
    EXPECT_EQ(r.env.at("DB_POOL_TIMEOUT"), "30");
    EXPECT_EQ(r.env.count("DATABASE_URL"), 0u);  // the daemon adds it from url_file
}

TEST(DbPool, DecidesEveryKnobTheFirstTime) {
    DbPoolInputs in;
    const auto r = size_db_pool(in);
    ASSERT_EQ(r.decisions.size(), 4u);
    EXPECT_EQ(r.decisions[0].knob, "db_pool.pool_size");
    EXPECT_EQ(r.decisions[1].knob, "db_pool.max_overflow");
    EXPECT_EQ(r.decisions[2].knob, "db_pool.pool_recycle");
    EXPECT_EQ(r.decisions[3].knob, "db_pool.pool_timeout");
    for (const auto& d : r.decisions) {
        EXPECT_EQ(d.subsystem, "db_pool");
        EXPECT_EQ(d.rule, "db_pool");
        EXPECT_FALSE(d.reason.empty());
        EXPECT_EQ(d.inputs_json.front(), '{');
        EXPECT_EQ(d.old_value.index(), 0u);
    }
    EXPECT_EQ(std::get<Seconds>(r.decisions[2].new_value).value, 3600.0);
}

TEST(DbPool, DecidesOnlyWhatChanged) {
    DbPoolInputs in;
    in.max_workers = 3;
    auto first = size_db_pool(in);
    in.current = first.values;
    EXPECT_TRUE(size_db_pool(in).decisions.empty());

    in.max_workers = 40;  // 95 / 40 = 2 per worker → overflow 1
    const auto r = size_db_pool(in);
    ASSERT_EQ(r.decisions.size(), 1u);
    EXPECT_EQ(r.decisions[0].knob, "db_pool.max_overflow");
    EXPECT_EQ(std::get<Count>(r.decisions[0].old_value).value, 2);
    EXPECT_EQ(std::get<Count>(r.decisions[0].new_value).value, 1);
}

TEST(DbPool, MaxWorkersFollowThePoolMode) {
    SeedResult seed;
    seed.workers = 5;
    seed.memory_ceiling = 12;
    PoolConfig pool;
    pool.mode = PoolMode::formula;
    EXPECT_EQ(max_workers_for_pool(seed, pool), 5u);
    pool.mode = PoolMode::adaptive;
    pool.max = 64;
    EXPECT_EQ(max_workers_for_pool(seed, pool), 12u);
    pool.max = 8;
    EXPECT_EQ(max_workers_for_pool(seed, pool), 8u);
    pool.mode = PoolMode::fixed;
    pool.count = 20;  // the operator's explicit choice, even above the memory ceiling
    EXPECT_EQ(max_workers_for_pool(seed, pool), 20u);
}

TEST(DbPool, UsesThePoolsLiveThreadsOnceRunning) {
    Config config;
    config.workers.threads = 2;
    Snapshot snap;
    SeedResult seed;
    seed.workers = 3;
    seed.memory_ceiling = 3;
    EXPECT_EQ(db_pool_inputs(snap, config, seed, std::nullopt).threads, 2u);
    snap.pool.target = 3;
    snap.pool.threads = 4;
    EXPECT_EQ(db_pool_inputs(snap, config, seed, std::nullopt).threads, 4u);
}

}  // namespace
}  // namespace tuner::policies
