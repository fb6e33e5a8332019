// apply() in-process: what it records and when it acts, through the knob's actuator: dry run,
// the manual pin and what it overrides, an unchanged repeat, a failed actuator, a knob without
// one, and a pin racing a controller resize.
#include "tuner/control/apply.hpp"

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "policies/registry.hpp"

namespace tuner {
namespace {

using namespace std::chrono_literals;

DecisionLog::Options memory_only() {
    DecisionLog::Options o;
    o.path = "";  // memory only: record() keeps decisions for recent()
    return o;
}

Decision resize_to(unsigned from, unsigned to,
                   std::string_view rule = policies::rule::littles_law) {
    return make_decision(knob::workers_count, {}, Count{from}, Count{to},
                         {rule, "test: " + std::to_string(from) + " -> " + std::to_string(to)});
}

// An Applier over a memory-only log with a workers.count actuator that records what it did.
struct Fixture {
    explicit Fixture(bool dry_run = false) : applier(log, dry_run) {
        applier.set_actuator(knob::workers_count, [this](const Decision& d) {
            resized_to.push_back(*new_count(d));
            return Status{};
        });
    }
    DecisionLog log{memory_only()};
    Applier applier;
    std::vector<unsigned> resized_to;
};

TEST(Applier, RecordsThenActsThroughTheKnobsActuator) {
    Fixture f;
    const Decision d = f.applier.apply(resize_to(2, 5));
    EXPECT_EQ(d.outcome, Outcome::applied);
    EXPECT_GT(d.id, 0u);
    EXPECT_EQ(f.resized_to, std::vector<unsigned>{5});
    const auto recent = f.log.recent(10);
    ASSERT_EQ(recent.size(), 1u);
    EXPECT_EQ(recent[0].knob, "workers.count");
    EXPECT_EQ(recent[0].outcome, Outcome::applied);
}

TEST(Applier, DryRunRecordsWithoutActingAndForceActsAnyway) {
    Fixture f(/*dry_run=*/true);
    EXPECT_EQ(f.applier.apply(resize_to(2, 5)).outcome, Outcome::dry_run);
    EXPECT_TRUE(f.resized_to.empty());
    EXPECT_EQ(f.applier.apply(resize_to(2, 6), /*force=*/true).outcome, Outcome::applied);
    EXPECT_EQ(f.resized_to, std::vector<unsigned>{6});
}

TEST(Applier, UnchangedRepeatOfAnInactiveDecisionIsNotRecordedAgain) {
    Fixture f(/*dry_run=*/true);
    EXPECT_EQ(f.applier.apply(resize_to(2, 5)).outcome, Outcome::dry_run);
    const Decision again = f.applier.apply(resize_to(2, 5));
    EXPECT_EQ(again.outcome, Outcome::unchanged);
    EXPECT_EQ(again.id, 0u);
    EXPECT_EQ(f.log.recent(10).size(), 1u);
    // A different value is news again.
    EXPECT_EQ(f.applier.apply(resize_to(2, 7)).outcome, Outcome::dry_run);
    EXPECT_EQ(f.log.recent(10).size(), 2u);
}

TEST(Applier, ManualPinActsInDryRunAndOverridesTheController) {
    Fixture f(/*dry_run=*/true);
    const Decision pin = f.applier.pin_workers(resize_to(4, 3, policies::rule::manual), 3);
    EXPECT_EQ(pin.outcome, Outcome::applied);
    EXPECT_EQ(f.applier.manual_target(), 3u);
    const Decision controller = f.applier.apply(resize_to(3, 9));
    EXPECT_EQ(controller.outcome, Outcome::overridden);
    EXPECT_NE(controller.reason.find("pinned at 3 by a manual target"), std::string::npos)
        << controller.reason;
    // Overridden repeats are not recorded twice.
    EXPECT_EQ(f.applier.apply(resize_to(3, 9)).outcome, Outcome::unchanged);
    EXPECT_EQ(f.resized_to, std::vector<unsigned>{3});
}

TEST(Applier, ReleasingThePinHandsThePoolBack) {
    Fixture f;
    f.applier.pin_workers(resize_to(4, 3, policies::rule::manual), 3);
    const Decision released = f.applier.release_workers(make_decision(
        knob::workers_manual_target, {}, Count{3}, {}, {policies::rule::manual, "released"}));
    EXPECT_EQ(released.outcome, Outcome::applied);
    EXPECT_FALSE(f.applier.manual_target());
    EXPECT_EQ(f.applier.apply(resize_to(3, 8)).outcome, Outcome::applied);
    EXPECT_EQ(f.resized_to, (std::vector<unsigned>{3, 8}));
}

TEST(Applier, FailedActuatorRecordsTheErrorAsOutcomeFailed) {
    Fixture f;
    f.applier.set_actuator(knob::workers_threads,
                           [](const Decision&) { return Status{make_error("pool", "refused")}; });
    const Decision d = f.applier.apply(make_decision(knob::workers_threads, {}, Count{1}, Count{4},
                                                     {policies::rule::threads_wait_share, "test"}));
    EXPECT_EQ(d.outcome, Outcome::failed);
    EXPECT_EQ(d.error, "pool: refused");
    EXPECT_EQ(f.log.recent(1).at(0).outcome, Outcome::failed);
}

TEST(Applier, KnobWithoutAnActuatorFails) {
    Fixture f;
    const Decision d = f.applier.apply(make_decision(knob::db_pool_size, {}, Count{1}, Count{2},
                                                     {policies::rule::db_pool, "test"}));
    EXPECT_EQ(d.outcome, Outcome::failed);
    EXPECT_EQ(d.error, "db_pool.pool_size: no actuator for this knob");
}

TEST(Applier, FamilyKnobFindsItsActuatorBySubsystem) {
    Fixture f;
    std::vector<std::string> set;
    f.applier.set_actuator(knob::postgres_setting, [&](const Decision& d) {
        set.push_back(d.knob);
        return Status{};
    });
    const Decision d =
        f.applier.apply(make_decision(knob::postgres_setting, {}, Text{"128MB"}, Text{"256MB"},
                                      {policies::rule::pgtune_web, "test"}, "shared_buffers"));
    EXPECT_EQ(d.outcome, Outcome::applied);
    EXPECT_EQ(set, std::vector<std::string>{"shared_buffers"});
}

TEST(Applier, APinCannotBeOvertakenByAControllerResizeDecidedBeforeIt) {
    // The controller's resize is in its actuator (slow) when the admin pins the pool: the pin
    // must land after it, so the pool ends at the pinned size, not at the controller's.
    DecisionLog log{memory_only()};
    Applier applier(log, false);
    std::atomic<bool> in_actuator{false};
    std::vector<unsigned> resized_to;
    std::mutex resized_mutex;
    applier.set_actuator(knob::workers_count, [&](const Decision& d) {
        if (d.rule != policies::rule::manual) {
            in_actuator = true;
            std::this_thread::sleep_for(100ms);
        }
        std::lock_guard lock(resized_mutex);
        resized_to.push_back(*new_count(d));
        return Status{};
    });
    std::thread controller([&] { applier.apply(resize_to(2, 9)); });
    while (!in_actuator) std::this_thread::yield();
    applier.pin_workers(resize_to(9, 3, policies::rule::manual), 3);
    controller.join();
    ASSERT_EQ(resized_to.size(), 2u);
    EXPECT_EQ(resized_to.back(), 3u);
    // And after the pin, a controller decision is overridden.
    EXPECT_EQ(applier.apply(resize_to(3, 9)).outcome, Outcome::overridden);
}

TEST(KnobTable, EveryKnobIsUniqueAndMakeDecisionFillsItsSubsystem) {
    std::set<std::string_view> names;
    for (const Knob* k : knob::all) {
        EXPECT_TRUE(names.insert(k->name).second) << k->name;
        EXPECT_FALSE(k->affects.empty()) << k->name;
        EXPECT_EQ(knob::find(k->name, k->family ? k->subsystem : ""), k) << k->name;
    }
    const Decision d = resize_to(1, 2);
    EXPECT_EQ(d.subsystem, "workers");
    EXPECT_TRUE(moves(d, knob::workers_count));
    EXPECT_FALSE(moves(d, knob::workers_threads));
    EXPECT_TRUE(fits(knob::workers_count, d.new_value));
    EXPECT_FALSE(fits(knob::db_pool_recycle, d.new_value));
}

}  // namespace
}  // namespace tuner
