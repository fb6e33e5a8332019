// The test simulator itself: it must agree with queueing theory before it can judge a controller.
#include "simulator.hpp"

#include <gtest/gtest.h>

namespace tuner::sim {
namespace {

double served_per_second(Simulator& sim, double warm_up_s, double measure_s) {
    sim.advance(warm_up_s);
    const auto before = sim.served_total();
    sim.advance(measure_s);
    return static_cast<double>(sim.served_total() - before) / measure_s;
}

TEST(Simulator, ClosedLoopThroughputFollowsLittlesLaw) {
    // 8 slots always busy, 55 ms each: X = N / S ≈ 145 requests per second.
    Simulator sim(MachineModel{}, AppModel{}, LoadModel::closed(32));
    sim.start_pool(2, 4);
    EXPECT_NEAR(served_per_second(sim, 10, 60), 8 / 0.0555, 6);
}

TEST(Simulator, CpuBoundThroughputIsCoresOverCpuTime) {
    AppModel app;
    app.cpu_ms = 10;
    app.wait_ms = 0;
    Simulator sim(MachineModel{}, app, LoadModel::closed(64));  // 2 cores
    sim.start_pool(16);
    EXPECT_NEAR(served_per_second(sim, 10, 60), 200, 8);
    EXPECT_GT(sim.snapshot().cpu.utilisation.value_or(0), 0.98);
}

TEST(Simulator, AGilCapsAProcessAtOneCore) {
    AppModel app;
    app.cpu_ms = 10;
    app.wait_ms = 0;
    app.gil = true;
    Simulator sim(MachineModel{}, app, LoadModel::closed(64));
    sim.start_pool(1, 16);
    EXPECT_NEAR(served_per_second(sim, 10, 60), 100, 5);
}

TEST(Simulator, OpenLoopArrivalsAtTheGivenRate) {
    MachineModel machine;
    machine.cores = 8;  // no CPU queueing: S is the request's own time
    Simulator sim(machine, AppModel{}, LoadModel::constant(200));
    sim.start_pool(20);
    sim.advance(20);
    const auto s = sim.snapshot();
    EXPECT_NEAR(s.window.arrival_rps, 200, 15);
    EXPECT_NEAR(s.window.inflight_mean, 200 * 0.0555, 1.5);  // Little: L = λW
    EXPECT_NEAR(s.window.service.mean_ms, 55.5, 1.5);
    EXPECT_EQ(s.pool.ready, 20u);
}

TEST(Simulator, MemoryAboveTheLimitOomKillsTheLargestWorker) {
    MachineModel machine;
    machine.memory_limit_bytes = 512 * MiB;
    AppModel app;
    app.process_bytes = 150 * MiB;
    Simulator sim(machine, app, LoadModel::constant(10));
    sim.start_pool(4);  // 4 × 151 MB + 20 MB > 512 MB
    sim.advance(1);
    EXPECT_GE(sim.oom_kills(), 1u);
    EXPECT_EQ(sim.snapshot().memory.oom_kills, sim.oom_kills());
}

TEST(Simulator, AThreadChangeRollsOneWorkerAtATime) {
    Simulator sim(MachineModel{}, AppModel{}, LoadModel::constant(50));
    sim.start_pool(3, 1);
    sim.set_threads(4);
    sim.advance(0.5);
    const auto s = sim.snapshot();
    unsigned replaced_or_replacing = 0;
    for (const auto& w : s.pool.workers) {
        if (w.threads == 4 || w.state == WorkerState::draining) ++replaced_or_replacing;
    }
    EXPECT_EQ(replaced_or_replacing, 1u);
    sim.advance(10);
    for (const auto& w : sim.snapshot().pool.workers) EXPECT_EQ(w.threads, 4u);
}

}  // namespace
}  // namespace tuner::sim
