// The pool's reconcile rules as a pure function: scale up and down, the crash backoff, retiring
// workers, one replacement at a time, and the memory ceiling's drain-first order.
#include "server/reconcile.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace tuner::server {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

const Clock::time_point kNow = Clock::time_point{} + 1h;

ReconcileInput::Worker worker(unsigned id, Lifecycle phase, unsigned inflight = 0,
                              Duration age = 60s, unsigned threads = 1) {
    return {id, phase, threads, kNow - age, inflight};
}

ReconcileInput pool(std::vector<ReconcileInput::Worker> workers, unsigned target,
                    unsigned threads = 1) {
    ReconcileInput in;
    in.workers = std::move(workers);
    in.target = target;
    in.threads = threads;
    in.now = kNow;
    return in;
}

TEST(PlanReconcile, AtTargetDoesNothing) {
    const auto plan =
        plan_reconcile(pool({worker(1, Lifecycle::ready), worker(2, Lifecycle::ready)}, 2));
    EXPECT_TRUE(plan.empty());
}

TEST(PlanReconcile, ScalesUpByTheWholeGapAtOnce) {
    const auto plan = plan_reconcile(pool({worker(1, Lifecycle::ready)}, 5));
    EXPECT_EQ(plan.spawn, 4u);
    EXPECT_THAT(plan.drain, IsEmpty());
}

TEST(PlanReconcile, StartingWorkersCountTowardsTheTarget) {
    const auto plan =
        plan_reconcile(pool({worker(1, Lifecycle::ready), worker(2, Lifecycle::starting)}, 3));
    EXPECT_EQ(plan.spawn, 1u);
}

TEST(PlanReconcile, ASlotInCrashBackoffHoldsOnlyItsOwnWorkerBack) {
    // Two workers missing: one slot is in backoff for 4 s more, the other was never filled.
    auto in = pool({worker(1, Lifecycle::ready)}, 3);
    in.vacant_slots = {kNow + 4s};
    const auto plan = plan_reconcile(in);
    EXPECT_EQ(plan.spawn, 1u);
    ASSERT_TRUE(plan.retry_after);
    EXPECT_GE(*plan.retry_after, 4s);
    EXPECT_LT(*plan.retry_after, 4s + 10ms);
}

TEST(PlanReconcile, ASlotWhoseBackoffEndedIsFilledAtOnce) {
    auto in = pool({worker(1, Lifecycle::ready)}, 2);
    in.vacant_slots = {kNow - 1s};
    const auto plan = plan_reconcile(in);
    EXPECT_EQ(plan.spawn, 1u);
    EXPECT_FALSE(plan.retry_after);
}

TEST(CrashBackoff, DoublesFromOneSecondUpToThirty) {
    EXPECT_EQ(crash_backoff(1), 1s);
    EXPECT_EQ(crash_backoff(2), 2s);
    EXPECT_EQ(crash_backoff(3), 4s);
    EXPECT_EQ(crash_backoff(5), 16s);
    EXPECT_EQ(crash_backoff(6), 30s);
    EXPECT_EQ(crash_backoff(100), 30s);
}

TEST(CrashBackoff, AWorkerThatServedIsReplacedAtOnceEvenAfterManyKills) {
    // kill -9 of a healthy worker every 6 s: never a backoff, however long it goes on.
    SlotHistory slot;
    for (int i = 0; i < 20; ++i) {
        const auto verdict = judge_crash(slot, /*served=*/true, kNow + i * 6s);
        EXPECT_EQ(verdict.backoff, Duration{0}) << i << ": " << verdict.why;
    }
    EXPECT_EQ(slot.restarts, 20u);
}

TEST(CrashBackoff, WorkersThatDieBeforeServingBackOffDoublingAndServingResetsIt) {
    SlotHistory slot;
    EXPECT_EQ(judge_crash(slot, false, kNow).backoff, 1s);
    EXPECT_EQ(judge_crash(slot, false, kNow + 20s).backoff, 2s);
    EXPECT_EQ(judge_crash(slot, false, kNow + 40s).backoff, 4s);
    // A worker of the slot served: health resets the streak.
    EXPECT_EQ(judge_crash(slot, true, kNow + 60s).backoff, Duration{0});
    EXPECT_EQ(judge_crash(slot, false, kNow + 80s).backoff, 1s);
}

TEST(CrashBackoff, ASlotThatDiesThreeTimesWithinTenSecondsBacksOffThoughEachServed) {
    // An app that crashes on every request: each worker serves one, then dies.
    SlotHistory slot;
    EXPECT_EQ(judge_crash(slot, true, kNow).backoff, Duration{0});
    EXPECT_EQ(judge_crash(slot, true, kNow + 2s).backoff, Duration{0});
    const auto third = judge_crash(slot, true, kNow + 4s);
    EXPECT_EQ(third.backoff, 1s);
    EXPECT_NE(third.why.find("3 deaths of this slot within 10s"), std::string::npos) << third.why;
    EXPECT_EQ(judge_crash(slot, true, kNow + 6s).backoff, 2s);
}

TEST(PlanReconcile, ScaleDownKillsStartingWorkersFirst) {
    const auto plan = plan_reconcile(
        pool({worker(1, Lifecycle::ready, 0, 90s), worker(2, Lifecycle::starting, 0, 1s),
              worker(3, Lifecycle::ready, 0, 30s)},
             2));
    EXPECT_THAT(plan.kill, ElementsAre(2u));
    EXPECT_THAT(plan.drain, IsEmpty());
}

TEST(PlanReconcile, ScaleDownDrainsIdleWorkersBeforeBusyOnesAndYoungestBusyFirst) {
    const auto plan = plan_reconcile(
        pool({worker(1, Lifecycle::ready, 3, 300s), worker(2, Lifecycle::ready, 1, 10s),
              worker(3, Lifecycle::ready, 0, 200s), worker(4, Lifecycle::ready, 2, 100s)},
             1));
    EXPECT_THAT(plan.kill, IsEmpty());
    EXPECT_THAT(plan.drain, ElementsAre(3u, 2u, 4u));
}

TEST(PlanReconcile, DrainingAndStoppingWorkersAreNotCountedOrChosenAgain) {
    const auto plan =
        plan_reconcile(pool({worker(1, Lifecycle::ready), worker(2, Lifecycle::draining),
                             worker(3, Lifecycle::stopping)},
                            2));
    EXPECT_EQ(plan.spawn, 1u);
    EXPECT_THAT(plan.drain, IsEmpty());
}

TEST(PlanReconcile, RecycleDueReplacesOneWorkerReplacementFirst) {
    const auto plan =
        plan_reconcile(pool({worker(1, Lifecycle::ready), worker(2, Lifecycle::recycle_due),
                             worker(3, Lifecycle::recycle_due)},
                            3));
    ASSERT_EQ(plan.replace.size(), 1u);
    EXPECT_EQ(plan.replace[0].id, 2u);
    EXPECT_TRUE(plan.replace[0].replacement_first);
    EXPECT_EQ(plan.spawn, 1u);
    EXPECT_THAT(plan.drain, IsEmpty());
}

TEST(PlanReconcile, AtTheMemoryCeilingTheOldWorkerDrainsFirst) {
    auto in = pool({worker(1, Lifecycle::ready), worker(2, Lifecycle::recycle_due)}, 2);
    in.max_processes = 2;
    const auto plan = plan_reconcile(in);
    ASSERT_EQ(plan.replace.size(), 1u);
    EXPECT_FALSE(plan.replace[0].replacement_first);
    EXPECT_EQ(plan.spawn, 0u);
    EXPECT_THAT(plan.drain, ElementsAre(2u));
}

TEST(PlanReconcile, NoSecondReplacementWhileOneIsUnderWay) {
    // Worker 2 retires while its replacement (4) starts: worker 3 waits its turn.
    const auto plan =
        plan_reconcile(pool({worker(1, Lifecycle::ready), worker(2, Lifecycle::retiring),
                             worker(3, Lifecycle::recycle_due), worker(4, Lifecycle::starting)},
                            3));
    EXPECT_TRUE(plan.replace.empty());
    EXPECT_EQ(plan.spawn, 0u);
    EXPECT_THAT(plan.drain, IsEmpty());
}

TEST(PlanReconcile, RetiringWorkerDrainsOnceItsReplacementIsReady) {
    const auto plan = plan_reconcile(pool(
        {worker(1, Lifecycle::ready), worker(2, Lifecycle::retiring), worker(4, Lifecycle::ready)},
        2));
    EXPECT_THAT(plan.drain, ElementsAre(2u));
    EXPECT_TRUE(plan.replace.empty());  // one step at a time: the drain first
}

TEST(PlanReconcile, NewThreadCountReplacesAsManyAtOnceAsMemoryHasRoomFor) {
    auto in = pool({worker(1, Lifecycle::ready, 0, 60s, 1), worker(2, Lifecycle::ready, 0, 60s, 1),
                    worker(3, Lifecycle::ready, 0, 60s, 1)},
                   3, 4);
    in.max_processes = 5;
    const auto plan = plan_reconcile(in);
    ASSERT_EQ(plan.replace.size(), 2u);
    EXPECT_EQ(plan.replace[0].id, 1u);
    EXPECT_EQ(plan.replace[1].id, 2u);
    EXPECT_EQ(plan.replace[0].reason, "threads 1 → 4");
    EXPECT_TRUE(plan.replace[0].replacement_first);
    EXPECT_EQ(plan.spawn, 2u);
    // Without a memory limit, every one at once: a shape change costs one start-up.
    in.max_processes.reset();
    EXPECT_EQ(plan_reconcile(in).replace.size(), 3u);
}

TEST(PlanReconcile, NewThreadCountAtTheMemoryCeilingRollsThroughTheOldestFirstDrainingFirst) {
    auto in = pool({worker(1, Lifecycle::ready, 0, 60s, 1), worker(2, Lifecycle::ready, 0, 60s, 1)},
                   2, 4);
    in.max_processes = 2;
    const auto plan = plan_reconcile(in);
    ASSERT_EQ(plan.replace.size(), 1u);
    EXPECT_EQ(plan.replace[0].id, 1u);
    EXPECT_EQ(plan.replace[0].reason, "threads 1 → 4");
    EXPECT_FALSE(plan.replace[0].replacement_first);
    EXPECT_THAT(plan.drain, ElementsAre(1u));
    EXPECT_EQ(plan.spawn, 0u);
}

ReconcileInput::Worker of_generation(ReconcileInput::Worker w, unsigned generation) {
    w.generation = generation;
    return w;
}

TEST(PlanReconcile, RestartReplacesOlderGenerationsOneAtATimeOldestFirstReplacementFirst) {
    auto in = pool({of_generation(worker(1, Lifecycle::ready), 1),
                    of_generation(worker(2, Lifecycle::ready), 1),
                    of_generation(worker(3, Lifecycle::ready), 2)},
                   3);
    EXPECT_TRUE(plan_reconcile(in).empty());  // no restart under way: generations may differ
    in.restart_generation = 2;
    const auto plan = plan_reconcile(in);
    ASSERT_EQ(plan.replace.size(), 1u);
    EXPECT_EQ(plan.replace[0].id, 1u);
    EXPECT_TRUE(plan.replace[0].replacement_first);
    EXPECT_EQ(plan.replace[0].reason, "restart: generation 1 → 2");
    EXPECT_EQ(plan.spawn, 1u);
    EXPECT_THAT(plan.drain, IsEmpty());
}

TEST(PlanReconcile, RestartWaitsWhileAReplacementStartsAndDrainsTheOldOneOnceItIsReady) {
    auto in = pool({of_generation(worker(1, Lifecycle::retiring), 1),
                    of_generation(worker(2, Lifecycle::ready), 1),
                    of_generation(worker(3, Lifecycle::starting), 2)},
                   2);
    in.restart_generation = 2;
    EXPECT_TRUE(plan_reconcile(in).empty());  // worker 2 waits its turn
    in.workers[2].phase = Lifecycle::ready;
    const auto plan = plan_reconcile(in);
    EXPECT_THAT(plan.drain, ElementsAre(1u));
    EXPECT_TRUE(plan.replace.empty());  // the drain first, then worker 2
}

TEST(PlanReconcile, RestartAtTheMemoryCeilingDrainsTheOldWorkerFirst) {
    auto in = pool({of_generation(worker(1, Lifecycle::ready), 1),
                    of_generation(worker(2, Lifecycle::ready), 1)},
                   2);
    in.restart_generation = 2;
    in.max_processes = 2;
    const auto plan = plan_reconcile(in);
    ASSERT_EQ(plan.replace.size(), 1u);
    EXPECT_FALSE(plan.replace[0].replacement_first);
    EXPECT_THAT(plan.drain, ElementsAre(1u));
    EXPECT_EQ(plan.spawn, 0u);
}

TEST(PlanReconcile, RestartLeavesRecyclingFirstAndIsDoneWhenEveryWorkerIsNew) {
    auto in = pool({of_generation(worker(1, Lifecycle::ready), 1),
                    of_generation(worker(2, Lifecycle::recycle_due), 1)},
                   2);
    in.restart_generation = 2;
    auto plan = plan_reconcile(in);
    ASSERT_EQ(plan.replace.size(), 1u);
    EXPECT_EQ(plan.replace[0].id, 2u);  // the recycle due anyway goes first
    in = pool({of_generation(worker(3, Lifecycle::ready), 2),
               of_generation(worker(4, Lifecycle::ready), 2)},
              2);
    in.restart_generation = 2;
    EXPECT_TRUE(plan_reconcile(in).empty());
}

TEST(PlanReconcile, GrowthAndANewThreadCountTogetherShareTheRoom) {
    // 1 × 1 to 4 × 8 with room for 4 processes: 3 new ones plus 1 replacement, all at once.
    auto in = pool({worker(1, Lifecycle::ready, 0, 60s, 1)}, 4, 8);
    in.max_processes = 5;
    const auto plan = plan_reconcile(in);
    EXPECT_EQ(plan.spawn, 4u);
    ASSERT_EQ(plan.replace.size(), 1u);
    in.max_processes = 4;  // room only for the growth: the replacement waits its turn
    EXPECT_TRUE(plan_reconcile(in).replace.empty());
}

TEST(PlanReconcile, GrowthAndANewThreadCountAtTheCeilingNeverHoldThreeProcessesForTwo) {
    // 1 × 1 to 2 × 16 where memory holds 2: the growth worker starts; the old one waits.
    auto in = pool({worker(1, Lifecycle::ready, 0, 60s, 1)}, 2, 16);
    in.max_processes = 2;
    auto plan = plan_reconcile(in);
    EXPECT_EQ(plan.spawn, 1u);
    EXPECT_TRUE(plan.replace.empty());
    // The new worker (at 16 threads) is ready: the old one drains before its replacement starts.
    in.workers.push_back(worker(2, Lifecycle::ready, 0, 1s, 16));
    plan = plan_reconcile(in);
    ASSERT_EQ(plan.replace.size(), 1u);
    EXPECT_EQ(plan.replace[0].id, 1u);
    EXPECT_FALSE(plan.replace[0].replacement_first);
    EXPECT_THAT(plan.drain, ElementsAre(1u));
    EXPECT_EQ(plan.spawn, 0u);
    // A worker still draining (or stopping) holds its memory: nothing starts beside it.
    in.workers[0].phase = Lifecycle::draining;
    EXPECT_EQ(plan_reconcile(in).spawn, 0u);
    EXPECT_TRUE(plan_reconcile(in).replace.empty());
}

TEST(PlanReconcile, NoReplacementWhileTheSizeIsOff) {
    // Below target: spawning comes first; a recycle waits for a settled pool.
    const auto plan = plan_reconcile(pool({worker(1, Lifecycle::recycle_due)}, 2));
    EXPECT_EQ(plan.spawn, 1u);
    EXPECT_TRUE(plan.replace.empty());
}

TEST(Lifecycle, PhasesMapToWhatWorkersShowsAndWhatCounts) {
    EXPECT_EQ(public_state(Lifecycle::retiring), WorkerState::ready);
    EXPECT_EQ(public_state(Lifecycle::recycle_due), WorkerState::ready);
    EXPECT_EQ(public_state(Lifecycle::start_failed), WorkerState::stopping);
    EXPECT_TRUE(counts_towards_target(Lifecycle::recycle_due));
    EXPECT_FALSE(counts_towards_target(Lifecycle::retiring));
    EXPECT_TRUE(takes_requests(Lifecycle::retiring));
    EXPECT_FALSE(takes_requests(Lifecycle::draining));
    EXPECT_TRUE(exit_expected(Lifecycle::stopping));
    EXPECT_FALSE(exit_expected(Lifecycle::start_failed));
    EXPECT_FALSE(exit_expected(Lifecycle::ready));
}

}  // namespace
}  // namespace tuner::server
