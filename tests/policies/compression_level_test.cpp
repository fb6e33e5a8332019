// The compression level policy (policies/compression_level.hpp) over fixture snapshots: one step
// down while the CPU quota is saturated and compression costs CPU, one step back up with
// headroom, nothing in between, at most one change per cooldown, within 1..compression.level.
#include "policies/compression_level.hpp"

#include <gtest/gtest.h>

#include "model/knobs.hpp"
#include "policies/registry.hpp"
#include "tests/policies/snapshot_builder.hpp"

namespace tuner::policies {
namespace {

using testing::snapshot_at;

struct LevelRun {
    CompressionLevelPolicy policy;
    CompressionState state;
    int second = 0;

    // One cycle a second at this CPU utilisation, compression spending `cpu_s` in it; the
    // decision (if any) is applied to the state, as the actuator would.
    std::optional<Decision> cycle(std::optional<double> utilisation, double cpu_s = 0.01) {
        Snapshot s = snapshot_at(second++);
        s.cpu.utilisation = utilisation;
        state.cpu_seconds += cpu_s;
        auto d = policy.decide(s, state);
        if (d) state.level = static_cast<unsigned>(std::get<Count>(d->new_value).value);
        return d;
    }
    // Cycles until a decision comes (at most `n`); the seconds it took.
    std::optional<Decision> until_decision(double utilisation, int n = 30, double cpu_s = 0.01) {
        for (int i = 0; i < n; ++i) {
            if (auto d = cycle(utilisation, cpu_s)) return d;
        }
        return std::nullopt;
    }
};

TEST(CompressionLevel, SaturatedCpuLowersTheLevelOneStepWithAReason) {
    LevelRun run;
    const auto d = run.until_decision(0.97);
    ASSERT_TRUE(d);
    EXPECT_TRUE(moves(*d, knob::compression_level));
    EXPECT_EQ(d->rule, rule::compression_cpu_saturated);
    EXPECT_EQ(std::get<Count>(d->old_value).value, 6);
    EXPECT_EQ(std::get<Count>(d->new_value).value, 5);
    EXPECT_NE(d->reason.find("CPU 97 %"), std::string::npos) << d->reason;
    EXPECT_NE(d->reason.find("gzip level 6 → 5 (brotli 4 → 3)"), std::string::npos) << d->reason;
    EXPECT_TRUE(find_policy(d->rule)) << "registered";
    EXPECT_NE(d->inputs_json.find("cpu_utilisation"), std::string::npos);
}

TEST(CompressionLevel, OneNoisyCycleDecidesNothing) {
    LevelRun run;
    EXPECT_FALSE(run.cycle(0.99));
    EXPECT_FALSE(run.cycle(0.99)) << "fewer than kCompressionMinSamples";
    EXPECT_FALSE(run.cycle(0.30)) << "the mean of 99, 99 and 30 % is in the band";
    EXPECT_EQ(run.state.level, 6u);
}

TEST(CompressionLevel, AtMostOneChangePerCooldownAndNeverBelowOne) {
    LevelRun run;
    std::vector<int> changed_at;
    for (int i = 0; i < 120; ++i) {
        if (run.cycle(1.0)) changed_at.push_back(run.second);
    }
    EXPECT_EQ(run.state.level, kCompressionFloor);
    ASSERT_EQ(changed_at.size(), 5u) << "6 → 1 in five steps, then the floor holds";
    for (std::size_t i = 1; i < changed_at.size(); ++i) {
        EXPECT_GE(changed_at[i] - changed_at[i - 1],
                  std::chrono::duration_cast<std::chrono::seconds>(kCompressionCooldown).count());
    }
}

TEST(CompressionLevel, NoCompressionCpuMeansNothingToGainByLowering) {
    LevelRun run;
    EXPECT_FALSE(run.until_decision(0.99, 30, 0.0));
    EXPECT_EQ(run.state.level, 6u);
}

TEST(CompressionLevel, HeadroomRaisesItBackToTheCeilingAndNoFurther) {
    LevelRun run;
    run.state.level = 3;
    const auto d = run.until_decision(0.40);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->rule, rule::compression_headroom);
    EXPECT_EQ(std::get<Count>(d->new_value).value, 4);
    EXPECT_TRUE(run.until_decision(0.40));
    EXPECT_TRUE(run.until_decision(0.40));
    EXPECT_EQ(run.state.level, 6u);
    EXPECT_FALSE(run.until_decision(0.10)) << "the configured level is the ceiling";
}

TEST(CompressionLevel, TheBandBetweenHoldsTheLevel) {
    LevelRun run;
    run.state.level = 4;
    EXPECT_FALSE(run.until_decision(0.75, 60));
    EXPECT_EQ(run.state.level, 4u);
}

TEST(CompressionLevel, DisabledOrUnmeasuredDecidesNothing) {
    LevelRun run;
    run.state.config.enabled = false;
    EXPECT_FALSE(run.until_decision(1.0));
    LevelRun unknown;
    for (int i = 0; i < 30; ++i) EXPECT_FALSE(unknown.cycle(std::nullopt));
}

}  // namespace
}  // namespace tuner::policies
