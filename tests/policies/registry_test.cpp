// The rule table: one row per rule, each with its knob, description and a citation.
#include "policies/registry.hpp"

#include <set>
#include <string>

#include <gtest/gtest.h>

namespace tuner::policies {
namespace {

TEST(PolicyTable, NamesAreUniqueAndEveryRowIsComplete) {
    std::set<std::string_view> names;
    for (const auto& p : policy_table()) {
        EXPECT_TRUE(names.insert(p.name).second) << "duplicate " << p.name;
        EXPECT_FALSE(p.knob.empty()) << p.name;
        EXPECT_FALSE(p.description.empty()) << p.name;
        EXPECT_FALSE(p.source.empty()) << p.name;
    }
}

TEST(PolicyTable, EveryWorkerRuleIsRegistered) {
    for (const auto name : {rule::seed_formula,
                            rule::fixed,
                            rule::littles_law,
                            rule::queue_growth,
                            rule::cpu_knee,
                            rule::scale_down,
                            rule::memory_ceiling,
                            rule::memory_pressure,
                            rule::bounds,
                            rule::threads_wait_share,
                            rule::threads_cpu_contention,
                            rule::manual,
                            rule::config_reload,
                            rule::db_pool,
                            rule::db_pool_connections,
                            rule::pgtune_web,
                            rule::rollback,
                            rule::compression_cpu_saturated,
                            rule::compression_headroom,
                            rule::cache_memory_pressure,
                            rule::cache_headroom}) {
        const auto row = find_policy(name);
        ASSERT_TRUE(row) << name;
        EXPECT_EQ(row->name, name);
    }
    EXPECT_EQ(find_policy("threads_wait_share")->knob, "workers.threads");
    EXPECT_EQ(find_policy("cache_memory_pressure")->knob, "cache.capacity");
}

TEST(PolicyTable, UnknownRuleIsNotFound) {
    EXPECT_FALSE(find_policy("no_such_rule"));
}

}  // namespace
}  // namespace tuner::policies
