// The capacity saturation ratio: the pure computation by mode and bound, and the controller's
// figure on simulated traces (a load workers.max holds back is above 1; a light load below).
#include "policies/capacity_saturation.hpp"

#include <gtest/gtest.h>

#include "policies/worker_controller.hpp"
#include "sim_harness.hpp"

namespace tuner::policies {
namespace {

using sim::AppModel;
using sim::ControlledRun;
using sim::LoadModel;
using sim::MachineModel;
using sim::Simulator;

TEST(CapacitySaturation, WishOverTheSmallerOfMemoryCeilingAndMax) {
    auto s = capacity_saturation(19, 651, 8);  // workers.max binds
    EXPECT_EQ(s.wanted, 19u);
    EXPECT_EQ(s.allowed, 8u);
    EXPECT_DOUBLE_EQ(s.ratio, 19.0 / 8.0);
    s = capacity_saturation(6, 4, 64);  // the memory ceiling binds
    EXPECT_EQ(s.allowed, 4u);
    EXPECT_DOUBLE_EQ(s.ratio, 1.5);
    s = capacity_saturation(3, 12, 64);  // room left
    EXPECT_DOUBLE_EQ(s.ratio, 0.25);
    EXPECT_DOUBLE_EQ(capacity_saturation(12, 12, 64).ratio, 1.0);  // exactly full
}

TEST(CapacitySaturation, IdleIsZeroAndNoBoundDividesByZero) {
    EXPECT_DOUBLE_EQ(capacity_saturation(0, 10, 10).ratio, 0.0);
    const auto s = capacity_saturation(5, 0, 0);
    EXPECT_EQ(s.allowed, 1u);
    EXPECT_DOUBLE_EQ(s.ratio, 5.0);
}

TEST(CapacitySaturation, TheWishFollowsTheMode) {
    EXPECT_EQ(wanted_workers(PoolMode::adaptive, 19, 5, 3), 19u);
    EXPECT_EQ(wanted_workers(PoolMode::formula, 19, 5, 3), 5u);
    EXPECT_EQ(wanted_workers(PoolMode::fixed, 19, 5, 3), 3u);
}

TEST(CapacitySaturation, JsonNamesEveryNumber) {
    const auto j = to_json(capacity_saturation(19, 651, 8));
    EXPECT_EQ(j["wanted_workers"], 19);
    EXPECT_EQ(j["allowed_workers"], 8);
    EXPECT_DOUBLE_EQ(j["ratio"].get<double>(), 19.0 / 8.0);
}

MachineModel cores(double n) {
    MachineModel m;
    m.cores = n;
    m.memory_limit_bytes = 8 * GiB;
    return m;
}

TEST(CapacitySaturation, ControllerAboveOneWhenWorkersMaxHoldsTheLoadBack) {
    Config config;
    config.workers.max = 10;
    Simulator sim(cores(4), AppModel{}, LoadModel::closed(64));
    sim.start_pool(4);
    WorkerController controller{config};
    ControlledRun run(sim, controller);
    run.run(60);
    const auto& s = controller.saturation();
    EXPECT_EQ(s.allowed, 10u);
    EXPECT_GT(s.wanted, 10u);
    EXPECT_GT(s.ratio, 1.0);
    EXPECT_DOUBLE_EQ(controller.explain()["saturation"]["ratio"].get<double>(), s.ratio);
}

TEST(CapacitySaturation, ControllerBelowOneUnderALightLoad) {
    Simulator sim(cores(4), AppModel{}, LoadModel::constant(20));  // needs 2 of 64
    sim.start_pool(2);
    WorkerController controller{Config{}};
    ControlledRun run(sim, controller);
    run.run(30);
    const auto& s = controller.saturation();
    EXPECT_GT(s.wanted, 0u);
    EXPECT_LT(s.ratio, 0.5);
}

TEST(CapacitySaturation, ControllerInFixedModeIsCountOverTheCeiling) {
    Config config;
    config.workers.mode = PoolMode::fixed;
    config.workers.count = 6;
    config.workers.max = 4;
    Simulator sim(cores(2), AppModel{}, LoadModel::constant(5));
    sim.start_pool(4);
    WorkerController controller{config};
    ControlledRun run(sim, controller);
    run.run(3);
    EXPECT_DOUBLE_EQ(controller.saturation().ratio, 6.0 / 4.0);
}

}  // namespace
}  // namespace tuner::policies
