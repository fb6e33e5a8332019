// The worker controller on simulated traces: steps up and down,
// noise, the CPU knee, a closed loop, memory ramps and pressure, the modes and the bounds.
#include "policies/worker_controller.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "policies/registry.hpp"
#include "sim_harness.hpp"
#include "snapshot_builder.hpp"

namespace tuner::policies {
namespace {

using sim::AppModel;
using sim::ControlledRun;
using sim::LoadModel;
using sim::MachineModel;
using sim::Simulator;

MachineModel cores(double n, std::uint64_t memory_limit_bytes = 8 * GiB) {
    MachineModel m;
    m.cores = n;
    m.memory_limit_bytes = memory_limit_bytes;
    return m;
}

// Little's law at the simulator's service time: 5 ms CPU + 50 ms wait, plus about 1.5 ms of
// 1-ms tick rounding, at the default target utilisation 0.8.
unsigned littles_target(double rps) {
    return static_cast<unsigned>(std::ceil(rps * 0.0565 / 0.8));
}

// Every decision names a registered rule, says why with numbers, and carries its inputs.
void expect_well_formed(const ControlledRun& run) {
    EXPECT_EQ(run.inconsistent_decisions(), 0);
    for (const auto& d : run.decisions()) {
        EXPECT_TRUE(find_policy(d.rule).has_value()) << d.rule;
        EXPECT_EQ(d.subsystem, "workers");
        EXPECT_NE(d.reason.find_first_of("0123456789"), std::string::npos) << d.reason;
        const auto inputs = nlohmann::json::parse(d.inputs_json, nullptr, false);
        ASSERT_TRUE(inputs.is_object()) << d.inputs_json;
        EXPECT_TRUE(inputs.contains("signals"));
        EXPECT_TRUE(inputs.contains("need"));
        EXPECT_TRUE(inputs["memory"].contains("ceiling_workers"));
    }
}

TEST(WorkerController, FirstAdaptiveCycleIsTheSeedFormula) {
    Simulator sim(cores(2), AppModel{}, LoadModel::constant(20));
    sim.start_pool(2);
    WorkerController controller{Config{}};
    ControlledRun run(sim, controller);
    run.run(1);
    ASSERT_EQ(run.decisions().size(), 1u);
    const auto& d = run.decisions().front();
    EXPECT_EQ(d.rule, "seed_formula");
    EXPECT_EQ(std::get<Count>(d.old_value).value, 2);
    EXPECT_EQ(std::get<Count>(d.new_value).value, 5);  // 2 × 2 cores + 1
    expect_well_formed(run);
}

TEST(WorkerController, StepUpGrowsStraightToTheLittlesLawTarget) {
    Simulator sim(cores(4), AppModel{},
                  LoadModel::open([](double t) { return t < 60 ? 50.0 : 400.0; }));
    sim.start_pool(4);
    WorkerController controller{Config{}};
    ControlledRun run(sim, controller);
    run.run(240);

    const unsigned target = littles_target(400);  // 29
    EXPECT_LE(run.workers_at(59), 9u);
    // One jump, not +1 per cycle: within 3 s of the step the pool is at the target.
    EXPECT_GE(run.workers_at(63), target - 1);
    // Capacity bought to drain the backlog is bounded and given back.
    EXPECT_LE(run.max_workers_between(60, 240), target + 6);
    const double settled = run.settled_from(target - 1, target + 2, 240);
    EXPECT_GE(settled, 60);
    EXPECT_LE(settled, 150);
    const auto growth = run.with_rule("queue_growth");
    ASSERT_FALSE(growth.empty());
    EXPECT_NE(growth.back().reason.find("arrivals"), std::string::npos) << growth.back().reason;
    expect_well_formed(run);
}

// The growth decisions' reasons of a run from 50 to `rps` on 4 cores.
std::vector<std::string> growth_reasons(const AppModel& app, const Config& config,
                                        double rps = 400) {
    Simulator sim(cores(4), app, LoadModel::open([rps](double t) { return t < 60 ? 50.0 : rps; }));
    sim.start_pool(4);
    WorkerController controller{config};
    ControlledRun run(sim, controller);
    run.run(120);
    std::vector<std::string> reasons;
    for (const auto& d : run.decisions()) {
        if (d.rule == "queue_growth" || d.rule == "littles_law") reasons.push_back(d.reason);
    }
    return reasons;
}

bool any_names_threads_max(const std::vector<std::string>& reasons) {
    return std::any_of(reasons.begin(), reasons.end(), [](const std::string& r) {
        return r.find("set workers.threads_max") != std::string::npos;
    });
}

TEST(WorkerController, GrowthWithThreadsFixedNamesThreadsMaxWhenRequestsMostlyWait) {
    // 5 ms CPU + 50 ms wait at 400 rps: 2 cores of CPU work (4-7 processes at 0.6 core each), ~29
    // processes of one thread. An event loop or a thread-safe app would carry it with fewer.
    const auto waiting = growth_reasons(AppModel{}, Config{});
    ASSERT_FALSE(waiting.empty());
    EXPECT_TRUE(any_names_threads_max(waiting));
    for (const auto& r : waiting) {
        if (r.find("set workers.threads_max") == std::string::npos) continue;
        EXPECT_NE(r.find("requests wait 9"), std::string::npos) << r;  // ~90 % of their time
        EXPECT_NE(r.find(" workers would do the CPU work: "), std::string::npos) << r;
        EXPECT_NE(r.find("above 1 if the app serves requests concurrently"), std::string::npos)
            << r;
    }

    // Threads may already change: the controller reshapes by itself, nothing to say (even when
    // threads_max = 2 still leaves ~15 processes to grow to).
    Config with_threads;
    with_threads.workers.threads_max = 2;
    const auto reshaped = growth_reasons(AppModel{}, with_threads);
    ASSERT_FALSE(reshaped.empty());
    EXPECT_FALSE(any_names_threads_max(reshaped)) << reshaped.front();

    // Requests that do not wait (8 ms of CPU at 600 rps, more than 4 cores serve): the pool
    // grows on the queue, but processes are what the CPU work needs; threads would not help.
    AppModel cpu_only;
    cpu_only.cpu_ms = 8;
    cpu_only.wait_ms = 0;
    const auto cpu = growth_reasons(cpu_only, Config{}, 600);
    ASSERT_FALSE(cpu.empty());
    EXPECT_FALSE(any_names_threads_max(cpu)) << cpu.front();
}

TEST(WorkerController, StepDownShrinksAfterTheCooldownInSteps) {
    Simulator sim(cores(4), AppModel{},
                  LoadModel::open([](double t) { return t < 90 ? 400.0 : 50.0; }));
    sim.start_pool(29);
    Config config;
    WorkerController controller{config};
    ControlledRun run(sim, controller);
    run.run(300);

    const auto steps = run.with_rule("scale_down");
    ASSERT_GE(steps.size(), 3u);
    // Nothing before the cooldown after the drop at t=90.
    EXPECT_GE(run.workers_at(119), littles_target(400) - 1);
    for (const auto& d : steps) {
        const auto from = std::get<Count>(d.old_value).value;
        const auto to = std::get<Count>(d.new_value).value;
        EXPECT_LT(to, from);
        EXPECT_LE(from - to, (from - 4 + 1) / 2 + 1) << d.reason;  // about half the gap at most
    }
    EXPECT_GE(run.workers_at(300), littles_target(50));
    EXPECT_LE(run.workers_at(300), littles_target(50) + 1);
    expect_well_formed(run);
}

TEST(WorkerController, NoisyLoadChangesDirectionAtMostOncePerMinute) {
    Simulator sim(cores(4), AppModel{}, LoadModel::constant(300, 0.2), 7);
    sim.start_pool(9);
    WorkerController controller{Config{}};
    ControlledRun run(sim, controller);
    run.run(600);
    EXPECT_LE(run.max_direction_changes(60), 1);
    EXPECT_GE(run.workers_at(600), littles_target(300) - 1);
    EXPECT_LE(run.workers_at(600), littles_target(300) + 3);
    expect_well_formed(run);
}

TEST(WorkerController, CpuSaturatedTraceStopsAtTheKneeAndLogsBothThroughputs) {
    // 600 rps of 5 ms CPU on 2 cores: the CPU serves at most ~350; more workers only queue.
    Simulator sim(cores(2), AppModel{}, LoadModel::constant(600));
    sim.start_pool(5);
    WorkerController controller{Config{}};
    ControlledRun run(sim, controller);
    run.run(180);

    const auto knees = run.with_rule("cpu_knee");
    ASSERT_EQ(knees.size(), 1u);
    const auto& knee = knees.front();
    EXPECT_NE(knee.reason.find("rps → "), std::string::npos) << knee.reason;
    const auto inputs = nlohmann::json::parse(knee.inputs_json);
    EXPECT_GT(inputs["rule_inputs"]["previous_rps"].get<double>(), 300);
    EXPECT_GT(inputs["rule_inputs"]["probed_rps"].get<double>(), 300);
    const double knee_at = run.first_time_of("cpu_knee");
    const auto settled = static_cast<unsigned>(std::get<Count>(knee.new_value).value);
    EXPECT_LT(knee_at, 40);
    // It stays at the knee while the CPU stays saturated, whatever the queue says.
    EXPECT_EQ(run.max_workers_between(knee_at, 180), settled);
    EXPECT_EQ(run.workers_at(180), settled);
    EXPECT_LE(settled, 40u);
    expect_well_formed(run);
}

TEST(WorkerController, ClosedLoopReachesTheKneeWithin30SecondsOfRelease) {
    // The integration shape: 64 connections, 5 ms CPU + 50 ms wait, 2 cores; phase 1 pins the
    // seed size with a manual target for 10 s, phase 2 releases it. With and without the front's
    // instant counters (then the window's means stand in).
    for (const bool instant_counters : {true, false}) {
        SCOPED_TRACE(instant_counters ? "instant counters" : "window only");
        sim::FrontModel front;
        front.instant_counters = instant_counters;
        Simulator sim(cores(2), AppModel{}, LoadModel::closed(64), 1, front);
        sim.start_pool(5);
        WorkerController controller{Config{}};
        ControlledRun run(sim, controller);
        run.pin_until(10);
        run.run(50);

        EXPECT_FALSE(run.overridden().empty());  // it kept deciding while pinned
        const double knee_at = run.first_time_of("cpu_knee");
        ASSERT_GT(knee_at, 10);
        EXPECT_LE(knee_at, 40);
        const double phase1 = run.throughput(1, 10);
        const double phase2 = run.throughput(40, 50);
        EXPECT_GE(phase2, 2.5 * phase1) << phase1 << " → " << phase2;
        expect_well_formed(run);
    }
}

TEST(WorkerController, MemoryRampShrinksBeforeTheLimitWithoutOomKills) {
    AppModel app;
    app.process_bytes = 60 * MiB;
    // Each process grows from 61 MB to 201 MB over five minutes (a leak, a cache).
    app.growth_bytes = [](double t) {
        return static_cast<std::uint64_t>(std::min(t, 300.0) / 300.0 * 140.0 * MiB);
    };
    Simulator sim(cores(2, 512 * MiB), app, LoadModel::constant(150));
    sim.start_pool(4);
    WorkerController controller{Config{}};
    ControlledRun run(sim, controller);
    run.run(400);

    EXPECT_EQ(sim.oom_kills(), 0u);
    EXPECT_LT(sim.peak_memory_bytes(), 512 * MiB * 9 / 10);
    EXPECT_GE(run.with_rule("memory_ceiling").size(), 2u);
    EXPECT_EQ(run.workers_at(400), 2u);  // (512 − 64 headroom − 20) MB / 201 MB
    expect_well_formed(run);
}

TEST(WorkerController, MemoryPressureShrinksBeforeTheKernelOomKills) {
    MachineModel machine = cores(2, 512 * MiB);
    // Something else in the cgroup grows to 250 MB: invisible to the seed formula's budget.
    machine.other_bytes = [](double t) {
        return static_cast<std::uint64_t>(std::clamp(t - 30, 0.0, 100.0) / 100.0 * 250.0 * MiB);
    };
    AppModel app;
    app.process_bytes = 60 * MiB;
    Simulator sim(machine, app, LoadModel::constant(150));
    sim.start_pool(4);
    WorkerController controller{Config{}};
    ControlledRun run(sim, controller);
    run.run(200);

    EXPECT_EQ(sim.oom_kills(), 0u);
    const auto pressure = run.with_rule("memory_pressure");
    ASSERT_FALSE(pressure.empty());
    EXPECT_NE(pressure.front().reason.find("working set"), std::string::npos);
    EXPECT_LE(run.workers_at(200), 3u);
    expect_well_formed(run);
}

// A hand-built snapshot: `workers` ready workers of `rss` each in a cgroup of `limit`.
Snapshot pool_snapshot(unsigned workers, std::uint64_t rss, std::uint64_t limit, int second) {
    Snapshot s = testing::snapshot_at(second);
    s.cpu.effective_cores = 2;
    s.memory.limited = true;
    s.memory.limit_bytes = limit;
    s.memory.working_set_bytes = 20 * MiB + workers * rss;
    s.self.rss_bytes = 20 * MiB;
    s.pool.target = workers;
    s.pool.ready = workers;
    for (unsigned id = 1; id <= workers; ++id) testing::add_ready_worker(s, id, 1, rss);
    return s;
}

TEST(WorkerController, AnOomKillShrinksAtOnce) {
    WorkerController controller{Config{}};
    auto s = pool_snapshot(4, 60 * MiB, 1 * GiB, 0);
    (void)controller.decide(s);  // the seed cycle
    s = pool_snapshot(4, 60 * MiB, 1 * GiB, 1);
    s.memory.oom_kills = 1;
    const Plan plan = controller.decide(s);
    ASSERT_EQ(plan.decisions.size(), 1u);
    EXPECT_EQ(plan.decisions[0].rule, "memory_pressure");
    EXPECT_EQ(std::get<Count>(plan.decisions[0].new_value).value, 3);
    EXPECT_NE(plan.decisions[0].reason.find("OOM kill"), std::string::npos);
    // Growing back to 4 waits for evidence (smaller processes, a higher limit), not for a time.
    const auto mark = controller.explain()["memory"]["pressure_mark"];
    ASSERT_FALSE(mark.is_null());
    EXPECT_EQ(mark["processes"].get<unsigned>(), 4u);
    EXPECT_NE(plan.decisions[0].reason.find("no growth back to 4 workers"), std::string::npos)
        << plan.decisions[0].reason;
}

// Preloaded workers share pages (the app's copy-on-write heap): 4 workers of 60 MB RSS but
// 20 MB PSS each, beside tunerd (20 MB) and 300 MB of something else in a 1 GiB cgroup. Summing
// RSS counts the shared pages four times and hides 160 MB of the other memory, so more processes
// seem to fit than do; PSS sees it.
TEST(WorkerController, MaxProcessesCountsWorkersByPssWhereMeasured) {
    constexpr std::uint64_t rss = 60 * MiB;
    constexpr std::uint64_t pss = 20 * MiB;
    constexpr std::uint64_t other = 300 * MiB;
    const auto shared_pool = [&](bool with_pss, int second) {
        auto s = pool_snapshot(4, rss, 1 * GiB, second);
        s.memory.working_set_bytes = 20 * MiB + 4 * pss + other;
        for (auto& [id, tree] : s.worker_trees) {
            if (with_pss) tree.pss_bytes = pss;
        }
        return s;
    };
    WorkerController controller{Config{}};
    (void)controller.decide(shared_pool(true, 0));  // learns 20 MB per worker
    const auto by_pss = controller.max_processes(shared_pool(true, 1), 1);
    const auto by_rss = controller.max_processes(shared_pool(false, 1), 1);
    ASSERT_TRUE(by_pss && by_rss);
    const std::uint64_t usable = 1 * GiB - memory_headroom_bytes(1 * GiB);
    const std::uint64_t per =
        controller.explain()["memory"]["per_process_by_threads"]["1"]["bytes"].get<std::uint64_t>();
    ASSERT_GT(per, 0u);
    // By PSS: room for what is left beside tunerd and the other 300 MB.
    EXPECT_EQ(*by_pss, (usable - 20 * MiB - other) / per);
    // Without PSS the fallback is RSS, which overcounts the workers by 160 MB.
    EXPECT_EQ(*by_rss, (usable - (20 * MiB + other - 4 * (rss - pss))) / per);
    EXPECT_LT(*by_pss, *by_rss);
}

TEST(WorkerController, FixedModeHonoursCountAboveTheMemoryCeilingWithAWarning) {
    Config config;
    config.workers.mode = PoolMode::fixed;
    config.workers.count = 4;
    AppModel app;
    app.process_bytes = 110 * MiB;  // 4 × 111 MB fit in 512 MB, but not with the 1.2 margin
    Simulator sim(cores(2, 512 * MiB), app, LoadModel::constant(400));
    sim.start_pool(2);
    WorkerController controller{config};
    ControlledRun run(sim, controller);
    run.run(60);

    ASSERT_EQ(run.decisions().size(), 1u);  // one change, then nothing whatever the load
    const auto& d = run.decisions().front();
    EXPECT_EQ(d.rule, "fixed");
    EXPECT_EQ(std::get<Count>(d.new_value).value, 4);
    // 492 MB / (111 MB × 1.2) fits 3.
    EXPECT_NE(d.reason.find("WARNING: above the memory ceiling 3"), std::string::npos) << d.reason;
    EXPECT_EQ(run.workers_at(60), 4u);
    expect_well_formed(run);
}

TEST(WorkerController, FormulaModeFollowsMeasuredMemoryWithHysteresis) {
    Config config;
    config.workers.mode = PoolMode::formula;
    AppModel app;
    app.process_bytes = 60 * MiB;
    // 61 MB per process, 101 MB from t=60 to t=120, then 61 MB again.
    app.growth_bytes = [](double t) { return t >= 60 && t < 120 ? 40 * MiB : 0; };
    Simulator sim(cores(2, 512 * MiB), app, LoadModel::constant(50));
    sim.start_pool(2);
    WorkerController controller{config};
    ControlledRun run(sim, controller);
    run.run(300);

    for (const auto& d : run.decisions()) EXPECT_EQ(d.rule, "seed_formula");
    EXPECT_EQ(run.workers_at(59), 5u);  // min(2×2+1, 492 MB / 73 MB = 6)
    EXPECT_EQ(run.workers_at(62), 4u);  // 492 MB / 121 MB: down at once
    // Back up only after the measurement's hold (60 s) and the cooldown (30 s).
    EXPECT_EQ(run.workers_at(200), 4u);
    EXPECT_EQ(run.workers_at(300), 5u);
    EXPECT_EQ(run.decisions().size(), 3u);
    expect_well_formed(run);
}

TEST(WorkerController, MinHoldsAgainstLowLoad) {
    Config config;
    config.workers.min = 6;
    Simulator sim(cores(4), AppModel{}, LoadModel::constant(30));
    sim.start_pool(6);
    WorkerController controller{config};
    ControlledRun run(sim, controller);
    run.run(200);
    for (const auto& p : run.points()) EXPECT_GE(p.workers, 6u);
    expect_well_formed(run);
}

TEST(WorkerController, MaxHoldsAgainstHighLoad) {
    Config config;
    config.workers.max = 10;
    Simulator sim(cores(4), AppModel{}, LoadModel::closed(64));
    sim.start_pool(4);
    WorkerController controller{config};
    ControlledRun run(sim, controller);
    run.run(60);
    EXPECT_EQ(run.max_workers_between(0, 60), 10u);
    EXPECT_EQ(run.workers_at(60), 10u);
    expect_well_formed(run);
}

TEST(WorkerController, MemoryCeilingPushesBelowMinWithAWarning) {
    Config config;
    config.workers.min = 6;
    AppModel app;
    app.process_bytes = 80 * MiB;  // 81 MB per worker: (512 − 64 − 20) MB fits 5
    Simulator sim(cores(2, 512 * MiB), app, LoadModel::constant(30));
    sim.start_pool(6);  // 6 × 81 MB + 20 MB = 506 MB: fits, but not with the headroom
    WorkerController controller{config};
    ControlledRun run(sim, controller);
    run.run(60);
    ASSERT_FALSE(run.decisions().empty());
    const auto& first = run.decisions().front();
    EXPECT_EQ(std::get<Count>(first.new_value).value, 5);
    EXPECT_NE(first.reason.find("below workers.min 6"), std::string::npos) << first.reason;
    EXPECT_EQ(run.workers_at(60), 5u);
    EXPECT_EQ(sim.oom_kills(), 0u);
    expect_well_formed(run);
}

TEST(WorkerController, ReloadClampsToNewBoundsAndKeepsWhatItLearned) {
    Simulator sim(cores(2), AppModel{}, LoadModel::closed(64));
    sim.start_pool(5);
    Config config;
    WorkerController controller{config};
    ControlledRun run(sim, controller);
    run.run(40);
    ASSERT_FALSE(controller.explain()["cpu"]["knee"].is_null());

    config.workers.max = 12;
    controller.reconfigure(config);
    run.run(2);
    const auto& last = run.decisions().back();
    EXPECT_EQ(last.rule, "bounds");
    EXPECT_EQ(std::get<Count>(last.new_value).value, 12);
    EXPECT_FALSE(controller.explain()["cpu"]["knee"].is_null());  // the knee is kept
    expect_well_formed(run);
}

TEST(WorkerController, ExplainBeforeTheFirstCycleIsValid) {
    const WorkerController controller{Config{}};
    const auto j = controller.explain();
    EXPECT_EQ(j["mode"], "adaptive");
    EXPECT_FALSE(j["seeded"].get<bool>());
    EXPECT_TRUE(j["cpu"]["knee"].is_null());
}

TEST(WorkerController, ExplainShowsCeilingMemoryKneeAndTimers) {
    Simulator sim(cores(2, 2 * GiB), AppModel{}, LoadModel::closed(64));
    sim.start_pool(5);
    WorkerController controller{Config{}};
    ControlledRun run(sim, controller);
    run.run(40);
    const auto j = controller.explain();
    EXPECT_EQ(j["mode"], "adaptive");
    // (2 GB − 256 MB headroom − 20 MB tunerd) / 21 MB per worker.
    EXPECT_EQ(j["memory"]["ceiling_workers"].get<unsigned>(), 84u);
    EXPECT_TRUE(j["memory"]["per_process_by_threads"]["1"]["measured"].get<bool>());
    EXPECT_FALSE(j["cpu"]["knee"].is_null());
    EXPECT_FALSE(j["cpu"]["throughput_by_shape"].empty());
    EXPECT_EQ(j["scale_down"]["cooldown_s"].get<double>(), 30);
    EXPECT_TRUE(j["need"].contains("needed_workers"));
    EXPECT_TRUE(j["target"].contains("reason"));
}

}  // namespace
}  // namespace tuner::policies
