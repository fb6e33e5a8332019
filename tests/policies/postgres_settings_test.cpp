// PGTune's web-profile formulas: expected values are worked out by hand from PGTune's published
// formulas (docs/policies.md), never from the code under test.
#include "policies/postgres_settings.hpp"

#include <algorithm>

#include <gtest/gtest.h>

namespace tuner::policies {
namespace {

PostgresSettingsInputs ssd(std::uint64_t memory_bytes, unsigned cores, unsigned connections) {
    PostgresSettingsInputs in;
    in.memory_bytes = memory_bytes;
    in.effective_cores = cores;
    in.storage = Storage::ssd;
    in.max_connections = connections;
    return in;
}

std::string value_of(const PostgresSettingsResult& r, std::string_view name) {
    const auto* s = r.find(name);
    return s ? s->value : "<absent>";
}

TEST(PostgresSettings, OneGigabyteOnSsdMatchesPgtuneWebProfile) {
    const auto r = postgres_settings(ssd(GiB, 2, 14));
    EXPECT_EQ(value_of(r, "shared_buffers"), "256MB");
    EXPECT_EQ(value_of(r, "effective_cache_size"), "768MB");
    EXPECT_EQ(value_of(r, "maintenance_work_mem"), "64MB");
    EXPECT_EQ(value_of(r, "wal_buffers"), "7864kB");  // 3% of 262144kB = 7864.32
    EXPECT_EQ(value_of(r, "checkpoint_completion_target"), "0.9");
    EXPECT_EQ(value_of(r, "random_page_cost"), "1.1");
    EXPECT_EQ(value_of(r, "effective_io_concurrency"), "200");
    EXPECT_EQ(value_of(r, "min_wal_size"), "1GB");
    EXPECT_EQ(value_of(r, "max_wal_size"), "4GB");
    EXPECT_EQ(value_of(r, "default_statistics_target"), "100");
    EXPECT_TRUE(r.warnings.empty());
}

TEST(PostgresSettings, FourGigabytesMatchesPgtuneWebProfile) {
    const auto r = postgres_settings(ssd(4 * GiB, 2, 100));
    EXPECT_EQ(value_of(r, "shared_buffers"), "1GB");
    EXPECT_EQ(value_of(r, "effective_cache_size"), "3GB");
    EXPECT_EQ(value_of(r, "maintenance_work_mem"), "256MB");
    EXPECT_EQ(value_of(r, "wal_buffers"), "16MB");  // 3% of 1GB = 31457kB, capped
}

TEST(PostgresSettings, MaxConnectionsIsWhatThePoolNeedsNotPgtunes200) {
    auto in = ssd(GiB, 2, 14);
    in.max_connections_formula = "3 workers × (1 + 2) + 3 + 2 = 14";
    const auto r = postgres_settings(in);
    const auto* s = r.find("max_connections");
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->value, "14");
    EXPECT_TRUE(s->needs_restart);
    EXPECT_NE(s->formula.find("3 workers"), std::string::npos) << s->formula;
}

TEST(PostgresSettings, WorkMemFitsTheConnectionsThatCanExist) {
    // (1048576kB − 262144kB) / (14 × 3) / 2 = 9362.3 → 9362kB; with PGTune's 200: 655kB.
    EXPECT_EQ(value_of(postgres_settings(ssd(GiB, 2, 14)), "work_mem"), "9362kB");
    EXPECT_EQ(value_of(postgres_settings(ssd(GiB, 2, 200)), "work_mem"), "655kB");
}

TEST(PostgresSettings, WorkMemIsFlooredAt64kB) {
    // (131072 − 32768) / (1000 × 3) / 2 = 16.4kB → 64kB.
    EXPECT_EQ(value_of(postgres_settings(ssd(128 * MiB, 1, 1000)), "work_mem"), "64kB");
}

TEST(PostgresSettings, NoParallelSettingsBelowFourCores) {
    const auto r = postgres_settings(ssd(GiB, 3, 100));
    EXPECT_EQ(r.find("max_worker_processes"), nullptr);
    EXPECT_EQ(r.find("max_parallel_workers_per_gather"), nullptr);
    EXPECT_EQ(r.find("max_parallel_workers"), nullptr);
    EXPECT_EQ(r.find("max_parallel_maintenance_workers"), nullptr);
}

TEST(PostgresSettings, ParallelSettingsFromFourCores) {
    const auto r = postgres_settings(ssd(GiB, 4, 100));
    EXPECT_EQ(value_of(r, "max_worker_processes"), "4");
    EXPECT_EQ(value_of(r, "max_parallel_workers_per_gather"), "2");
    EXPECT_EQ(value_of(r, "max_parallel_workers"), "4");
    EXPECT_EQ(value_of(r, "max_parallel_maintenance_workers"), "2");
    EXPECT_TRUE(r.find("max_worker_processes")->needs_restart);
    // (1048576 − 262144) / (100 × 3) / 2 = 1310.7 → 1310kB.
    EXPECT_EQ(value_of(r, "work_mem"), "1310kB");
}

TEST(PostgresSettings, ParallelPerGatherIsCappedAtFour) {
    auto in = ssd(16 * GiB, 12, 200);
    in.storage = Storage::hdd;
    const auto r = postgres_settings(in);
    EXPECT_EQ(value_of(r, "max_worker_processes"), "12");
    EXPECT_EQ(value_of(r, "max_parallel_workers_per_gather"), "4");
    EXPECT_EQ(value_of(r, "max_parallel_maintenance_workers"), "4");
    // (16777216 − 4194304) / (200 × 3) / 4 = 5242.9 → 5242kB.
    EXPECT_EQ(value_of(r, "work_mem"), "5242kB");
    EXPECT_EQ(value_of(r, "maintenance_work_mem"), "1GB");
}

TEST(PostgresSettings, HddUsesPostgresDefaultsForCostAndConcurrency) {
    auto in = ssd(GiB, 2, 50);
    in.storage = Storage::hdd;
    const auto r = postgres_settings(in);
    EXPECT_EQ(value_of(r, "random_page_cost"), "4");
    EXPECT_EQ(value_of(r, "effective_io_concurrency"), "2");
}

TEST(PostgresSettings, MaintenanceWorkMemIsCappedAtTwoGigabytes) {
    EXPECT_EQ(value_of(postgres_settings(ssd(64 * GiB, 2, 100)), "maintenance_work_mem"), "2GB");
}

TEST(PostgresSettings, WalBuffersNearSixteenMegabytesRoundUp) {
    // shared_buffers 500000kB → 3% = 15000kB, between 14MB and 16MB → 16MB.
    EXPECT_EQ(value_of(postgres_settings(ssd(2'000'000 * KiB, 2, 100)), "wal_buffers"), "16MB");
}

TEST(PostgresSettings, WalBuffersHave64kBFloor) {
    // 8MB → shared_buffers 2048kB → 3% = 61kB → 64kB.
    EXPECT_EQ(value_of(postgres_settings(ssd(8 * MiB, 1, 10)), "wal_buffers"), "64kB");
}

TEST(PostgresSettings, WarnsBelow256Megabytes) {
    const auto r = postgres_settings(ssd(128 * MiB, 1, 14));
    ASSERT_EQ(r.warnings.size(), 1u);
    EXPECT_NE(r.warnings[0].find("below 256MB"), std::string::npos) << r.warnings[0];
    EXPECT_TRUE(postgres_settings(ssd(256 * MiB, 1, 14)).warnings.empty());
}

TEST(PostgresSettings, RestartFlagsFollowPostgresContexts) {
    const auto r = postgres_settings(ssd(GiB, 4, 14));
    for (const auto& s : r.settings) {
        const bool postmaster = s.name == "max_connections" || s.name == "shared_buffers" ||
                                s.name == "wal_buffers" || s.name == "max_worker_processes";
        EXPECT_EQ(s.needs_restart, postmaster) << s.name;
        EXPECT_FALSE(s.formula.empty()) << s.name;
        EXPECT_FALSE(s.source.empty()) << s.name;
    }
}

TEST(PostgresSettings, TypedValuesMatchText) {
    const auto r = postgres_settings(ssd(GiB, 2, 14));
    const auto* sb = r.find("shared_buffers");
    ASSERT_NE(sb, nullptr);
    EXPECT_EQ(std::get<ByteSize>(sb->typed).bytes, 256 * MiB);
    EXPECT_DOUBLE_EQ(sb->numeric, static_cast<double>(256 * MiB));
    EXPECT_TRUE(sb->is_memory);
    EXPECT_EQ(std::get<Count>(r.find("max_connections")->typed).value, 14);
    EXPECT_EQ(std::get<Text>(r.find("random_page_cost")->typed).value, "1.1");
    EXPECT_DOUBLE_EQ(r.find("random_page_cost")->numeric, 1.1);
}

TEST(PostgresSettings, SettingNamesListCoversEveryOutput) {
    const auto r = postgres_settings(ssd(GiB, 8, 14));
    const auto& names = postgres_setting_names();
    for (const auto& s : r.settings) {
        EXPECT_NE(std::find(names.begin(), names.end(), s.name), names.end()) << s.name;
    }
    EXPECT_EQ(r.settings.size(), names.size());
}

TEST(PostgresSettings, FormatsKilobytesAsPostgresDoes) {
    EXPECT_EQ(format_pg_memory_kb(262144), "256MB");
    EXPECT_EQ(format_pg_memory_kb(1048576), "1GB");
    EXPECT_EQ(format_pg_memory_kb(7864), "7864kB");
    EXPECT_EQ(format_pg_memory_kb(1536), "1536kB");
    EXPECT_EQ(format_pg_memory_kb(0), "0kB");
}

TEST(PostgresSettings, LocalMemoryIsAShareOfTheBoxRemoteIsConfigured) {
    DatabaseConfig db;
    db.memory_share = 0.25;
    EXPECT_EQ(postgres_memory_bytes(db, 4 * GiB), GiB);
    db.location = DatabaseLocation::remote;
    db.memory_bytes = 8 * GiB;
    EXPECT_EQ(postgres_memory_bytes(db, 4 * GiB), 8 * GiB);
}

TEST(PostgresSettings, InputsUseTheCgroupLimitNotTheHost) {
    Snapshot snap;
    snap.memory.limit_bytes = 2 * GiB;
    snap.memory.limited = true;
    snap.memory.host_total_bytes = 64 * GiB;
    snap.cpu.effective_cores = 2;
    Config config;
    config.database.postgres = PostgresMode::recommend;
    const auto in = postgres_settings_inputs(snap, config, 20);
    EXPECT_EQ(in.memory_bytes, 512 * MiB);
    EXPECT_EQ(in.effective_cores, 2u);
    EXPECT_EQ(in.max_connections, 20u);
    EXPECT_NE(in.memory_source.find("25% of 2.0GB cgroup limit"), std::string::npos)
        << in.memory_source;
}

}  // namespace
}  // namespace tuner::policies
