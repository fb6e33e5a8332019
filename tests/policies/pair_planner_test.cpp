// The (processes × threads) pair planner: unit tests of plan_pair and traces of the
// controller on the simulator (2 cores, 150 MB per process, a 512 MB cgroup).
#include "policies/pair_planner.hpp"

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

// Memory for 2 processes at any thread count up to 16, as measured on the reference app.
PairInputs memory_capped_io() {
    PairInputs in;
    in.current = {2, 1};
    in.threads_min = 1;
    in.threads_max = 16;
    in.slots_needed = 40;
    in.process_cap = [](unsigned) { return 2u; };
    in.process_cap_text = "memory ceiling 2 processes at 151MB p95";
    in.cpu_useful_concurrency = 22;
    in.wait_share = 0.91;
    in.cpu_utilisation = 0.1;
    return in;
}

TEST(PairPlanner, RaisesThreadsWhenProcessesAreCappedAndRequestsWait) {
    PairInputs in = memory_capped_io();
    in.slot_limit = 22;
    const auto plan = plan_pair(in);
    ASSERT_TRUE(plan);
    EXPECT_EQ(plan->rule, "threads_wait_share");
    EXPECT_EQ(plan->shape.processes, 2u);
    EXPECT_EQ(plan->shape.threads, 11u);  // the fewest threads that carry 22 in 2 processes
    EXPECT_NE(plan->reason.find("memory ceiling 2 processes at 151MB p95; wait share 91 %"),
              std::string::npos)
        << plan->reason;
    EXPECT_NE(plan->reason.find("threads 1 → 11"), std::string::npos) << plan->reason;
}

TEST(PairPlanner, CpuBoundRequestsGetNoThreads) {
    PairInputs in = memory_capped_io();
    in.wait_share = 0.09;  // 50 ms CPU of 55 ms
    EXPECT_FALSE(plan_pair(in));
}

TEST(PairPlanner, ProcessesBelowTheirCapStillGetThreadsWhenOneThreadEachCannotCarryTheLoad) {
    // 4 processes fit, 40 concurrent requests are needed: at 1 thread that is 40 processes.
    PairInputs in = memory_capped_io();
    in.process_cap = [](unsigned) { return 4u; };
    const auto plan = plan_pair(in);
    ASSERT_TRUE(plan);
    EXPECT_EQ(plan->shape.processes, 3u);  // the fewest: ceil(40 / 16)
    EXPECT_EQ(plan->shape.threads, 14u);   // ceil(40 / 3)
    EXPECT_NE(plan->reason.find("1 threads would need 40 processes, 4 fit"), std::string::npos)
        << plan->reason;
}

// Memory is plentiful: what shapes the pool is the CPU work and the preference for few processes.
PairInputs plenty_of_memory(PoolShape current, unsigned processes_for_cpu) {
    PairInputs in = memory_capped_io();
    in.current = current;
    in.process_cap = [](unsigned) { return 64u; };
    in.process_cap_text = "memory ceiling 64 processes";
    in.processes_for_cpu = processes_for_cpu;
    in.processes_for_cpu_text = "1.9 cores of CPU work at ≤ 0.6 core per process → ≥ 4 workers";
    return in;
}

TEST(PairPlanner, ManySingleThreadedProcessesBecomeFewWithThreads) {
    // 36 × 1 carries 36 of the 40 needed; 4 processes (what the CPU work asks) of 10 threads
    // carry them all with a ninth of the processes.
    const auto plan = plan_pair(plenty_of_memory({36, 1}, 4));
    ASSERT_TRUE(plan);
    EXPECT_EQ(plan->shape.processes, 4u);
    EXPECT_EQ(plan->shape.threads, 10u);
    EXPECT_NE(plan->reason.find("1 threads would need 40 processes"), std::string::npos)
        << plan->reason;
    EXPECT_NE(plan->reason.find("≥ 4 workers"), std::string::npos) << plan->reason;
}

TEST(PairPlanner, FewerProcessesThanTheCpuWorkNeedsGetMore) {
    // 2 × 16: each process carries ~1 core of CPython work on its GIL; the work asks for 4.
    const auto plan = plan_pair(plenty_of_memory({2, 16}, 4));
    ASSERT_TRUE(plan);
    EXPECT_EQ(plan->shape.processes, 4u);
    EXPECT_EQ(plan->shape.threads, 10u);  // ceil(40 needed / 4)
    EXPECT_NE(plan->reason.find("2 processes are fewer than the CPU work needs"), std::string::npos)
        << plan->reason;
}

TEST(PairPlanner, ANearbyShapeIsNotWorthRollingEveryProcess) {
    // 5 × 8 against the planned 4 × 10: 5 processes at 8 threads are not 1.5 × 4 + 1.
    EXPECT_FALSE(plan_pair(plenty_of_memory({5, 8}, 4)));
}

TEST(PairPlanner, AReshapeMeasuredToServeNoMoreIsKept) {
    PairInputs in = plenty_of_memory({36, 1}, 4);
    in.measured_rps = [](const PoolShape& shape) -> std::optional<double> {
        if (shape == PoolShape{36, 1}) return 320;
        if (shape == PoolShape{4, 10}) return 318;
        return std::nullopt;
    };
    std::string kept;
    EXPECT_FALSE(plan_pair(in, &kept));
    EXPECT_EQ(kept,
              "shape kept at 36 workers: 4 workers × 10 threads served 318 rps, 36 workers 320 "
              "rps (less than +2 %)");
}

TEST(PairPlanner, ProcessesForTheCpuWorkAreAboutOneCoreEachUnlessTheyRunInParallel) {
    EXPECT_EQ(processes_for_cpu(1.9, false), 4u);  // ceil(1.9 / 0.6)
    EXPECT_EQ(processes_for_cpu(0.5, false), 1u);
    EXPECT_EQ(processes_for_cpu(0, false), 1u);
    EXPECT_EQ(processes_for_cpu(1.9, true), 1u);  // no GIL: threads use every core
}

TEST(PairPlanner, ThreadsMaxEqualToThreadsNeverPlans) {
    PairInputs in = memory_capped_io();
    in.threads_max = 1;
    EXPECT_FALSE(plan_pair(in));
}

TEST(PairPlanner, FewerProcessesWhenThreadsCostMemory) {
    PairInputs in = memory_capped_io();
    in.current = {3, 1};
    in.slots_needed = 16;
    // Three processes fit at 1 thread, two from 4 threads on.
    in.process_cap = [](unsigned t) { return t < 4 ? 3u : 2u; };
    const auto plan = plan_pair(in);
    ASSERT_TRUE(plan);
    EXPECT_EQ(plan->shape.threads, 8u);
    EXPECT_EQ(plan->shape.processes, 2u);
}

// The CPU saturated and the service time doubled against its uncontended value.
PairInputs contended(PoolShape current, double useful_concurrency) {
    PairInputs in = memory_capped_io();
    in.current = current;
    in.cpu_utilisation = 0.97;
    in.service_ratio = 2.0;
    in.cpu_useful_concurrency = useful_concurrency;
    return in;
}

TEST(PairPlanner, LowersThreadsWhenLatencyGrowsFromCpuContention) {
    const auto plan = plan_pair(contended({2, 16}, 12));
    ASSERT_TRUE(plan);
    EXPECT_EQ(plan->rule, "threads_cpu_contention");
    EXPECT_EQ(plan->shape.threads, 6u);
    EXPECT_EQ(plan->shape.processes, 2u);
}

TEST(PairPlanner, KeepsThreadsUnderContentionWhileTheCpuServesAtItsCapacity) {
    // The demo app at 2 × 16 under 32 clients: 376 rps at 97 % CPU, where the CPU can serve
    // 345 rps at today's cost per request. Fewer threads would only queue the wait.
    PairInputs in = contended({2, 16}, 19);
    in.cpu_bound_rps = 345;
    in.measured_rps = [](const PoolShape& s) -> std::optional<double> {
        if (s == PoolShape{2, 16}) return 376.0;
        return std::nullopt;
    };
    std::string kept;
    EXPECT_FALSE(plan_pair(in, &kept));
    EXPECT_NE(kept.find("threads kept at 16 despite contention: 2 workers × 16 threads serves "
                        "376 rps"),
              std::string::npos)
        << kept;
    // Far beyond what the CPU can use, even at its capacity: down to twice that.
    in.cpu_useful_concurrency = 5;
    auto far = plan_pair(in);
    ASSERT_TRUE(far);
    EXPECT_EQ(far->shape.threads, 5u);  // 2 × 5 / 2 processes
    in.cpu_useful_concurrency = 19;
    // Well below the CPU's capacity, the contention is waste: threads come back.
    in.measured_rps = [](const PoolShape& s) -> std::optional<double> {
        if (s == PoolShape{2, 16}) return 250.0;
        return std::nullopt;
    };
    const auto plan = plan_pair(in);
    ASSERT_TRUE(plan);
    EXPECT_EQ(plan->rule, "threads_cpu_contention");
    EXPECT_EQ(plan->shape.threads, 10u);
}

TEST(PairPlanner, NeverLowersBelowTheConfiguredThreads) {
    PairInputs in = contended({2, 4}, 2);
    in.threads_min = 4;
    EXPECT_FALSE(plan_pair(in));
}

// ---- traces ----------------------------------------------------------------------------------

struct PairScenario {
    double cpu_ms = 5;
    double wait_ms = 50;
    std::optional<unsigned> threads_max = 16;
};

MachineModel small_box() {
    MachineModel m;
    m.cores = 2;
    m.memory_limit_bytes = 512 * MiB;
    return m;
}

AppModel app_of(const PairScenario& s) {
    AppModel app;
    app.cpu_ms = s.cpu_ms;
    app.wait_ms = s.wait_ms;
    app.process_bytes = 150 * MiB;
    app.thread_bytes = 1 * MiB;
    return app;
}

Config config_of(const PairScenario& s) {
    Config config;
    config.workers.threads_max = s.threads_max;
    config.workers.memory_per_worker_bytes = 150 * MiB;  // the operator's estimate for this app
    return config;
}

// Requests per second a static pair serves under 32 closed-loop clients (after 30 s of warm-up,
// over 60 s: the same measurement as the adaptive run's).
double static_pair_rps(const PairScenario& s, unsigned processes, unsigned threads) {
    Simulator sim(small_box(), app_of(s), LoadModel::closed(32));
    sim.start_pool(processes, threads);
    sim.advance(30);
    const auto before = sim.served_total();
    sim.advance(60);
    return static_cast<double>(sim.served_total() - before) / 60.0;
}

// The scenario under the controller: 32 closed-loop clients on 3 processes of 1 thread at first.
struct PairRun {
    explicit PairRun(const PairScenario& s)
        : sim(small_box(), app_of(s), LoadModel::closed(32)), controller(config_of(s)) {
        sim.start_pool(3);
    }
    Simulator sim;
    WorkerController controller;
    ControlledRun run{sim, controller};
};

TEST(PairPlannerTrace, MemoryBoundIoAppGetsThreadsAndNearlyTheBestStaticPair) {
    const PairScenario scenario;
    PairRun r(scenario);
    r.run.run(150);

    EXPECT_EQ(r.sim.oom_kills(), 0u);
    const auto raises = r.run.with_rule("threads_wait_share");
    ASSERT_FALSE(raises.empty());
    EXPECT_NE(raises.front().reason.find("memory ceiling 2 processes at 151MB p95; wait share"),
              std::string::npos)
        << raises.front().reason;
    EXPECT_EQ(r.run.workers_at(150), 2u);
    EXPECT_GE(r.run.threads_at(150), 8u);

    double best = 0;
    for (unsigned p : {1u, 2u}) {
        for (unsigned t : {1u, 4u, 8u, 16u}) best = std::max(best, static_pair_rps(scenario, p, t));
    }
    const double adaptive = r.run.throughput(90, 150);
    EXPECT_GE(adaptive, 0.9 * best) << "adaptive " << adaptive << " rps, best static " << best;
    // The estimate per thread count was measured, not assumed flat.
    const auto memory = r.controller.explain()["memory"]["measured"];
    EXPECT_GE(memory.size(), 2u) << memory.dump();
}

// No decision of the run touched the threads, and the pool ends at 1 thread.
void expect_threads_untouched(const ControlledRun& run) {
    for (const auto& d : run.decisions()) EXPECT_NE(d.knob, "workers.threads") << d.reason;
    EXPECT_EQ(run.threads_at(150), 1u);
}

TEST(PairPlannerTrace, CpuBoundAppNeverGetsExtraThreads) {
    PairScenario scenario;
    scenario.cpu_ms = 50;
    scenario.wait_ms = 5;
    PairRun r(scenario);
    r.run.run(150);
    expect_threads_untouched(r.run);
    EXPECT_EQ(r.sim.oom_kills(), 0u);
}

TEST(PairPlannerTrace, ThreadsMaxEqualToThreadsNeverChangesThreads) {
    PairScenario scenario;
    scenario.threads_max = std::nullopt;  // the default: threads_max = threads
    PairRun r(scenario);
    r.run.run(150);
    expect_threads_untouched(r.run);
}

TEST(PairPlannerTrace, ThreadsComeDownWhenTheAppTurnsCpuBound) {
    PairRun r(PairScenario{});
    r.run.run(60);
    ASSERT_EQ(r.run.threads_at(60), 16u);
    r.sim.set_cpu_ms(25);  // a release: requests now burn 25 ms; 2 cores serve at most 80/s
    r.run.run(120);

    const auto lowered = r.run.with_rule("threads_cpu_contention");
    ASSERT_FALSE(lowered.empty());
    EXPECT_NE(lowered.front().reason.find("× uncontended"), std::string::npos)
        << lowered.front().reason;
    // Down from 16; the climb back is judged by measured throughput (a few threads more than
    // the CPU's ~5 useful keep it busy through the randomness of arrivals), and an optional
    // change waits 20 s after the last thread change, so it stops well below where it was.
    EXPECT_LE(r.run.threads_at(180), 10u);
    EXPECT_GE(r.run.throughput(150, 180), 0.9 * 80);  // still saturating the CPU
}

TEST(PairPlannerTrace, APairChangeIsTwoDecisionsWithOnePlanId) {
    const PairScenario scenario;
    PairRun r(scenario);
    r.run.run(60);
    ASSERT_EQ(r.run.workers_at(60), 2u);
    ASSERT_GT(r.run.threads_at(60), 8u);

    // A reload that narrows both bounds moves both knobs in one plan.
    Config config = config_of(scenario);
    config.workers.max = 1;
    config.workers.threads_max = 8;
    r.controller.reconfigure(config);
    const Plan plan = r.controller.decide(r.sim.snapshot());
    ASSERT_EQ(plan.decisions.size(), 2u);
    EXPECT_EQ(plan.decisions[0].knob, "workers.count");
    EXPECT_EQ(plan.decisions[1].knob, "workers.threads");
    EXPECT_EQ(plan.decisions[0].plan_id, plan.plan_id);
    EXPECT_EQ(plan.decisions[1].plan_id, plan.plan_id);
    EXPECT_EQ(std::get<Count>(plan.decisions[1].new_value).value, 8);
}

}  // namespace
}  // namespace tuner::policies
