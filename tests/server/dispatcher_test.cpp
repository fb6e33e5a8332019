// The dispatcher's rules: least-in-flight choice within each worker's threads, one bounded FIFO
// queue, retries that avoid the worker they failed on, draining, recycling and parked connections.
#include "server/dispatcher.hpp"

#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace tuner::server {
namespace {

BackendPtr make_backend(unsigned id, unsigned capacity) {
    auto b = std::make_shared<Backend>();
    b->id = id;
    b->capacity = capacity;
    b->address.unix_path = "/run/tunerd/worker-" + std::to_string(id) + ".sock";
    return b;
}

// Records which waiter was granted which backend, in order. Grants arrive under the
// dispatcher's lock, so the log only appends.
struct GrantLog {
    std::vector<std::pair<std::uint64_t, unsigned>> grants;  // waiter id -> backend id
    std::vector<BackendPtr> backends;

    Waiter waiter(std::uint64_t id, unsigned avoid = 0) {
        Waiter w;
        w.id = id;
        w.avoid = avoid;
        w.grant = [this, id](BackendPtr b) {
            grants.emplace_back(id, b->id);
            backends.push_back(std::move(b));
        };
        return w;
    }
};

// Counts how many parked connections were closed (destroyed).
struct FakeConnection final : IdleConnection {
    explicit FakeConnection(int& closed) : closed_(closed) {}
    ~FakeConnection() override { ++closed_; }
    int& closed_;
};

// Acquires and expects an immediate grant; returns the backend's id.
unsigned acquire_now(Dispatcher& d, GrantLog& log, std::uint64_t id, BackendPtr& out,
                     unsigned avoid = 0) {
    EXPECT_EQ(d.acquire(log.waiter(id, avoid), out), AcquireStatus::granted) << "waiter " << id;
    return out ? out->id : 0;
}

TEST(Dispatcher, GrantsTheBackendWithTheFewestRequestsInFlight) {
    Dispatcher d(16);
    GrantLog log;
    auto one = make_backend(1, 4);
    auto two = make_backend(2, 4);
    d.add(one);
    d.add(two);
    BackendPtr a, b, c, e;
    EXPECT_EQ(acquire_now(d, log, 1, a), 1u);
    EXPECT_EQ(acquire_now(d, log, 2, b), 2u);  // 1 has one in flight, 2 none
    EXPECT_EQ(acquire_now(d, log, 3, c), 1u);  // a tie goes to the first
    d.release(b, nullptr, true);               // 2 is back to none
    EXPECT_EQ(acquire_now(d, log, 4, e), 2u);
}

TEST(Dispatcher, AmongEqualLoadsPrefersTheBackendWithMoreThreads) {
    Dispatcher d(16);
    GrantLog log;
    d.add(make_backend(1, 1));
    d.add(make_backend(2, 4));
    BackendPtr a;
    EXPECT_EQ(acquire_now(d, log, 1, a), 2u);
}

TEST(Dispatcher, NeverGrantsMoreThanABackendsThreads) {
    Dispatcher d(16);
    GrantLog log;
    d.add(make_backend(1, 2));
    BackendPtr a, b, c;
    acquire_now(d, log, 1, a);
    acquire_now(d, log, 2, b);
    EXPECT_EQ(d.acquire(log.waiter(3), c), AcquireStatus::queued);
    EXPECT_EQ(c, nullptr);
    EXPECT_TRUE(log.grants.empty());
    EXPECT_EQ(d.backend_load().at(1).first, 2u);
}

TEST(Dispatcher, GrantsQueuedRequestsInArrivalOrder) {
    Dispatcher d(16);
    GrantLog log;
    auto only = make_backend(1, 1);
    d.add(only);
    BackendPtr first;
    acquire_now(d, log, 1, first);
    for (std::uint64_t id = 2; id <= 4; ++id) {
        BackendPtr none;
        EXPECT_EQ(d.acquire(log.waiter(id), none), AcquireStatus::queued);
    }
    d.release(first, nullptr, true);
    ASSERT_EQ(log.grants.size(), 1u);
    d.release(log.backends.back(), nullptr, true);
    d.release(log.backends.back(), nullptr, true);
    const std::vector<std::pair<std::uint64_t, unsigned>> expected = {{2, 1}, {3, 1}, {4, 1}};
    EXPECT_EQ(log.grants, expected);
}

TEST(Dispatcher, ANewRequestDoesNotOvertakeQueuedOnes) {
    Dispatcher d(16);
    GrantLog log;
    auto only = make_backend(1, 1);
    d.add(only);
    BackendPtr first, queued, late;
    acquire_now(d, log, 1, first);
    EXPECT_EQ(d.acquire(log.waiter(2), queued), AcquireStatus::queued);
    d.release(first, nullptr, true);  // the slot goes to waiter 2 ...
    EXPECT_EQ(d.acquire(log.waiter(3), late), AcquireStatus::queued);  // ... not to newcomer 3
    ASSERT_EQ(log.grants.size(), 1u);
    EXPECT_EQ(log.grants[0].first, 2u);
}

TEST(Dispatcher, RefusesWhenTheQueueHoldsMaxQueueRequests) {
    Dispatcher d(2);
    GrantLog log;
    d.add(make_backend(1, 1));
    BackendPtr out;
    acquire_now(d, log, 1, out);
    BackendPtr none;
    EXPECT_EQ(d.acquire(log.waiter(2), none), AcquireStatus::queued);
    EXPECT_EQ(d.acquire(log.waiter(3), none), AcquireStatus::queued);
    EXPECT_EQ(d.acquire(log.waiter(4), none), AcquireStatus::queue_full);
    EXPECT_EQ(d.counts().queued, 2u);

    EXPECT_TRUE(d.cancel(2));
    EXPECT_TRUE(d.cancel(3));
    d.set_max_queue(0);  // no waiting at all: a busy pool refuses at once
    EXPECT_EQ(d.acquire(log.waiter(5), none), AcquireStatus::queue_full);
}

TEST(Dispatcher, CancelRemovesAQueuedRequest) {
    Dispatcher d(16);
    GrantLog log;
    d.add(make_backend(1, 1));
    BackendPtr first, none;
    acquire_now(d, log, 1, first);
    EXPECT_EQ(d.acquire(log.waiter(2), none), AcquireStatus::queued);
    EXPECT_EQ(d.acquire(log.waiter(3), none), AcquireStatus::queued);
    EXPECT_TRUE(d.cancel(2));
    EXPECT_EQ(d.counts().queued, 1u);
    d.release(first, nullptr, true);
    ASSERT_EQ(log.grants.size(), 1u);
    EXPECT_EQ(log.grants[0].first, 3u);  // the cancelled one is never granted
}

TEST(Dispatcher, CancelOfARequestGrantedMeanwhileReportsTheGrant) {
    Dispatcher d(16);
    GrantLog log;
    d.add(make_backend(1, 1));
    BackendPtr first, none;
    acquire_now(d, log, 1, first);
    EXPECT_EQ(d.acquire(log.waiter(2), none), AcquireStatus::queued);
    d.release(first, nullptr, true);
    ASSERT_EQ(log.grants.size(), 1u);
    // Its queue timeout fired just as the slot was granted: the caller must use the grant.
    EXPECT_FALSE(d.cancel(2));
    EXPECT_FALSE(d.cancel(99));  // never queued
    EXPECT_EQ(d.counts().inflight, 1u);
}

TEST(Dispatcher, ARetryGoesToAnotherBackend) {
    Dispatcher d(16);
    GrantLog log;
    d.add(make_backend(1, 2));
    d.add(make_backend(2, 2));
    BackendPtr a, b;
    acquire_now(d, log, 1, a);
    acquire_now(d, log, 2, b);
    d.add(make_backend(3, 2));
    BackendPtr retry;
    // 3 has the fewest in flight, but it is the one the request just failed on.
    EXPECT_EQ(acquire_now(d, log, 3, retry, 3), 1u);
}

// Two single-threaded workers, both busy: `on_one` on worker 1 and `on_two` on worker 2.
class TwoBusyWorkers : public ::testing::Test {
protected:
    void SetUp() override {
        d.add(make_backend(1, 1));
        d.add(make_backend(2, 1));
        acquire_now(d, log, 1, on_one);
        acquire_now(d, log, 2, on_two);
    }
    AcquireStatus acquire(std::uint64_t id, unsigned avoid = 0) {
        BackendPtr none;
        return d.acquire(log.waiter(id, avoid), none);
    }

    Dispatcher d{16};
    GrantLog log;
    BackendPtr on_one, on_two;
};

TEST_F(TwoBusyWorkers, ARetryJumpsTheQueue) {
    EXPECT_EQ(acquire(3), AcquireStatus::queued);
    EXPECT_EQ(acquire(4), AcquireStatus::queued);
    EXPECT_EQ(acquire(5, 1), AcquireStatus::queued);  // failed on 1
    d.release(on_two, nullptr, true);
    ASSERT_EQ(log.grants.size(), 1u);
    EXPECT_EQ(log.grants[0], std::make_pair(std::uint64_t{5}, 2u));
}

TEST_F(TwoBusyWorkers, ARetryIsQueuedEvenWhenTheQueueIsFull) {
    d.set_max_queue(1);
    EXPECT_EQ(acquire(3), AcquireStatus::queued);
    EXPECT_EQ(acquire(4), AcquireStatus::queue_full);
    // It already waited its turn once; refusing it now would fail a request a worker lost.
    EXPECT_EQ(acquire(5, 1), AcquireStatus::queued);
    EXPECT_EQ(d.counts().queued, 2u);
}

TEST_F(TwoBusyWorkers, AQueuedRetryLeavesTheAvoidedBackendToOthers) {
    EXPECT_EQ(acquire(3), AcquireStatus::queued);
    EXPECT_EQ(acquire(4, 1), AcquireStatus::queued);  // failed on 1
    d.release(on_one, nullptr, true);
    // The retry at the head waits for 2; the plain request behind it takes 1.
    ASSERT_EQ(log.grants.size(), 1u);
    EXPECT_EQ(log.grants[0], std::make_pair(std::uint64_t{3}, 1u));
    d.release(on_two, nullptr, true);
    ASSERT_EQ(log.grants.size(), 2u);
    EXPECT_EQ(log.grants[1], std::make_pair(std::uint64_t{4}, 2u));
}

TEST(Dispatcher, ANewRequestIsNotHeldBackByARetryWaitingForAnotherBackend) {
    Dispatcher d(16);
    GrantLog log;
    for (unsigned id : {1u, 2u, 3u}) d.add(make_backend(id, 1));
    BackendPtr on_two, on_three, none;
    EXPECT_EQ(acquire_now(d, log, 1, on_two, 1), 2u);
    EXPECT_EQ(acquire_now(d, log, 2, on_three, 1), 3u);
    // A retry that failed on 1 waits for 2 or 3, which are busy; 1 itself is free.
    EXPECT_EQ(d.acquire(log.waiter(3, 1), none), AcquireStatus::queued);
    BackendPtr fresh;
    EXPECT_EQ(acquire_now(d, log, 4, fresh), 1u);
    EXPECT_EQ(d.counts().queued, 1u);
}

TEST(Dispatcher, ARetryFallsBackToTheAvoidedBackendWhenItIsTheOnlyOneAccepting) {
    Dispatcher d(16);
    GrantLog log;
    d.add(make_backend(1, 2));
    BackendPtr retry;
    EXPECT_EQ(acquire_now(d, log, 1, retry, 1), 1u);
}

TEST(Dispatcher, ARetryWaitsForABusyOtherBackendRatherThanReturningToTheFailedOne) {
    Dispatcher d(16);
    GrantLog log;
    d.add(make_backend(1, 2));
    d.add(make_backend(2, 1));
    BackendPtr on_two, none;
    acquire_now(d, log, 1, on_two, 1);
    ASSERT_EQ(on_two->id, 2u);
    EXPECT_EQ(d.acquire(log.waiter(2, 1), none), AcquireStatus::queued);
}

TEST(Dispatcher, AWaitingRetryTakesTheAvoidedBackendOnceTheOtherStopsAccepting) {
    for (const bool removed : {false, true}) {
        Dispatcher d(16);
        GrantLog log;
        d.add(make_backend(1, 1));
        d.add(make_backend(2, 1));
        BackendPtr on_two, none;
        acquire_now(d, log, 1, on_two, 1);
        EXPECT_EQ(d.acquire(log.waiter(2, 1), none), AcquireStatus::queued);
        // 2 is drained (or gone): 1 is the only worker left, and it has room.
        if (removed) {
            d.remove(2);
        } else {
            EXPECT_FALSE(d.stop_accepting(2));
        }
        ASSERT_EQ(log.grants.size(), 1u) << (removed ? "remove" : "stop_accepting");
        EXPECT_EQ(log.grants[0], std::make_pair(std::uint64_t{2}, 1u));
    }
}

TEST(Dispatcher, AddingABackendGrantsQueuedRequests) {
    Dispatcher d(16);
    GrantLog log;
    BackendPtr none;
    EXPECT_EQ(d.acquire(log.waiter(1), none), AcquireStatus::queued);  // no worker ready yet
    EXPECT_EQ(d.acquire(log.waiter(2), none), AcquireStatus::queued);
    EXPECT_EQ(d.acquire(log.waiter(3), none), AcquireStatus::queued);
    d.add(make_backend(1, 2));
    const std::vector<std::pair<std::uint64_t, unsigned>> expected = {{1, 1}, {2, 1}};
    EXPECT_EQ(log.grants, expected);
    EXPECT_EQ(d.counts().queued, 1u);
}

TEST(Dispatcher, StopAcceptingStopsGrantsAndReportsWhetherDrained) {
    Dispatcher d(16);
    GrantLog log;
    auto one = make_backend(1, 2);
    d.add(one);
    d.add(make_backend(2, 2));
    BackendPtr a;
    ASSERT_EQ(acquire_now(d, log, 1, a), 1u);
    EXPECT_FALSE(d.stop_accepting(1));  // one request still in flight
    EXPECT_TRUE(d.stop_accepting(2));   // idle: drained already
    EXPECT_TRUE(d.stop_accepting(42));  // unknown: nothing to wait for
    EXPECT_EQ(d.counts().ready, 0u);
    BackendPtr none;
    EXPECT_EQ(d.acquire(log.waiter(2), none), AcquireStatus::queued);
    d.release(a, nullptr, true);
    EXPECT_TRUE(log.grants.empty());  // a draining worker takes no one from the queue
}

TEST(Dispatcher, ReportsDrainedWhenTheLastRequestOfADrainingBackendEnds) {
    Dispatcher d(16);
    GrantLog log;
    std::vector<unsigned> drained;
    d.set_callbacks({[&](unsigned id) { drained.push_back(id); }, nullptr});
    d.add(make_backend(1, 2));
    BackendPtr a, b;
    acquire_now(d, log, 1, a);
    acquire_now(d, log, 2, b);
    d.release(a, nullptr, true);  // accepting: no drain
    EXPECT_TRUE(drained.empty());
    BackendPtr c;
    acquire_now(d, log, 3, c);
    EXPECT_FALSE(d.stop_accepting(1));
    d.release(b, nullptr, true);
    EXPECT_TRUE(drained.empty());  // c still in flight
    d.release(c, nullptr, false);
    EXPECT_EQ(drained, std::vector<unsigned>{1});
}

TEST(Dispatcher, RequestsRecyclingOnceWhenServedReachesTheLimit) {
    Dispatcher d(16);
    GrantLog log;
    std::vector<unsigned> due;
    d.set_callbacks({nullptr, [&](unsigned id) { due.push_back(id); }});
    auto one = make_backend(1, 1);
    one->recycle_after = 3;
    d.add(one);
    auto serve = [&](bool served) {
        BackendPtr b;
        acquire_now(d, log, 1, b);
        d.release(b, nullptr, served);
    };
    serve(true);
    serve(false);  // no answer from the worker: does not count
    serve(true);
    EXPECT_TRUE(due.empty());
    serve(true);  // the third served
    EXPECT_EQ(due, std::vector<unsigned>{1});
    serve(true);
    serve(true);
    EXPECT_EQ(due, std::vector<unsigned>{1});
    EXPECT_EQ(d.backend_load().at(1).second, 5u);
}

TEST(Dispatcher, NeverRequestsRecyclingWhenTheLimitIsZero) {
    Dispatcher d(16);
    GrantLog log;
    int due = 0;
    d.set_callbacks({nullptr, [&](unsigned) { ++due; }});
    d.add(make_backend(1, 1));
    for (int i = 0; i < 5; ++i) {
        BackendPtr b;
        acquire_now(d, log, 1, b);
        d.release(b, nullptr, true);
    }
    EXPECT_EQ(due, 0);
}

// One worker with two threads, both busy: requests `a` and `b` in flight.
class ParkedConnections : public ::testing::Test {
protected:
    void SetUp() override {
        d.add(make_backend(1, 2));
        acquire_now(d, log, 1, a);
        acquire_now(d, log, 2, b);
    }
    // Releases `request` with a reusable connection; returns it for comparison.
    const IdleConnection* release_reusable(const BackendPtr& request) {
        auto conn = std::make_unique<FakeConnection>(closed);
        const IdleConnection* raw = conn.get();
        d.release(request, std::move(conn), true);
        return raw;
    }

    Dispatcher d{16};
    GrantLog log;
    int closed = 0;
    BackendPtr a, b;
};

TEST_F(ParkedConnections, AReusableConnectionIsParkedAndHandedBack) {
    const IdleConnection* parked = release_reusable(a);
    BackendPtr again;
    acquire_now(d, log, 3, again);
    auto taken = d.take_idle(again);
    EXPECT_EQ(taken.get(), parked);
    EXPECT_EQ(d.take_idle(again), nullptr);
    EXPECT_EQ(closed, 0);
}

TEST_F(ParkedConnections, AConnectionReleasedToABackendThatStoppedAcceptingIsClosed) {
    d.stop_accepting(1);
    release_reusable(a);
    EXPECT_EQ(closed, 1);
    EXPECT_EQ(d.take_idle(a), nullptr);
}

TEST_F(ParkedConnections, ParkedConnectionsCloseWhenADrainingBackendEmpties) {
    release_reusable(a);
    d.stop_accepting(1);
    EXPECT_EQ(closed, 0);
    d.release(b, nullptr, true);
    EXPECT_EQ(closed, 1);
    EXPECT_EQ(d.take_idle(b), nullptr);
}

TEST_F(ParkedConnections, DropIdleClosesTheConnectionThePeerClosed) {
    const IdleConnection* gone = release_reusable(a);
    const IdleConnection* kept = release_reusable(b);
    d.drop_idle(b, gone);
    EXPECT_EQ(closed, 1);
    d.drop_idle(b, gone);  // already dropped: nothing happens
    EXPECT_EQ(closed, 1);
    auto taken = d.take_idle(b);
    EXPECT_EQ(taken.get(), kept);
    EXPECT_EQ(d.take_idle(b), nullptr);
}

TEST_F(ParkedConnections, RemoveClosesThemAndForgetsTheBackend) {
    release_reusable(a);
    release_reusable(b);
    d.remove(1);
    EXPECT_EQ(closed, 2);
    EXPECT_TRUE(d.backend_load().empty());
    EXPECT_EQ(d.counts().ready, 0u);
    d.remove(1);  // twice is harmless
}

TEST(Dispatcher, CountsQueuedInFlightAndReadyAndReportsEachBackendsLoad) {
    Dispatcher d(16);
    GrantLog log;
    d.add(make_backend(1, 1));
    d.add(make_backend(2, 2));
    d.add(make_backend(3, 1));
    d.stop_accepting(3);
    BackendPtr a, b, c, none;
    acquire_now(d, log, 1, a);
    acquire_now(d, log, 2, b);
    acquire_now(d, log, 3, c);
    d.release(c, nullptr, true);
    acquire_now(d, log, 4, c);
    EXPECT_EQ(d.acquire(log.waiter(5), none), AcquireStatus::queued);
    const auto counts = d.counts();
    EXPECT_EQ(counts.queued, 1u);
    EXPECT_EQ(counts.inflight, 3u);
    EXPECT_EQ(counts.ready, 2u);
    const std::map<unsigned, std::pair<unsigned, std::uint64_t>> expected = {
        {1, {1, 0}}, {2, {2, 1}}, {3, {0, 0}}};
    EXPECT_EQ(d.backend_load(), expected);
}

TEST(Dispatcher, FeedsItsWindowWithLevelsBusyTimeAndCounters) {
    Dispatcher d(16, std::chrono::seconds(60));
    GrantLog log;
    // The window starts when the dispatcher is made and add() stamps the real time; the
    // injected times start 5 s later, so they come after it even on a slow machine.
    const auto base = Clock::now() + std::chrono::seconds(5);
    const auto at = [&](int s) { return base + std::chrono::seconds(s); };
    d.add(make_backend(1, 1));
    BackendPtr first, none;
    ASSERT_EQ(d.acquire(log.waiter(1), first, at(1)), AcquireStatus::granted);
    d.note_arrival(at(1));
    ASSERT_EQ(d.acquire(log.waiter(2), none, at(2)), AcquireStatus::queued);
    d.note_arrival(at(2));
    d.note_rejected(at(2));
    d.release(first, nullptr, true, at(3));  // waiter 2 takes the slot
    ASSERT_EQ(log.backends.size(), 1u);
    d.release(log.backends[0], nullptr, true, at(5));
    d.note_retry();

    const auto w = d.window(at(8));
    const double covered = std::chrono::duration<double>(w.window).count();
    ASSERT_GT(covered, 12.9);
    EXPECT_NEAR(w.queue_length_mean * covered, 1.0, 0.01);  // one waiting from 2 s to 3 s
    EXPECT_NEAR(w.inflight_mean * covered, 4.0, 0.01);      // one in flight from 1 s to 5 s
    EXPECT_EQ(w.queue_length_max, 1);
    EXPECT_EQ(w.rejected_queue_full, 1u);
    EXPECT_EQ(w.accepted_total, 2u);
    ASSERT_EQ(w.workers.size(), 1u);
    EXPECT_NEAR(w.workers[0].busy_fraction * covered, 4.0, 0.01);
    EXPECT_EQ(w.workers[0].served, 2u);
    EXPECT_EQ(w.min_ready, 0u);  // before add() no worker was ready
    EXPECT_EQ(d.cumulative().retries, 1u);
    EXPECT_EQ(d.cumulative().rejected_queue_full, 1u);
}

// ---- backlog (server.worker_backlog) -------------------------------------------------------

// The worker answers one request now: it counts as turning requests over (kBacklogFreshness).
void serve_one(Dispatcher& d, Clock::time_point now = Clock::now()) {
    auto b = d.try_acquire(0, now);
    ASSERT_TRUE(b);
    d.release(b, nullptr, true, now);
}

// A waiter that may wait ahead in a busy worker's backlog.
Waiter ahead_waiter(GrantLog& log, std::uint64_t id, std::shared_ptr<AheadTicket> ticket) {
    Waiter w = log.waiter(id);
    w.ahead = std::move(ticket);
    return w;
}

TEST(DispatcherBacklog, OffByDefaultARequestThatMayWaitAheadStillQueues) {
    Dispatcher d(16);
    auto one = make_backend(1, 1);
    d.add(one);
    serve_one(d);
    auto running = d.try_acquire(0);
    ASSERT_TRUE(running);
    auto ticket = std::make_shared<AheadTicket>();
    EXPECT_FALSE(d.try_acquire(0, Clock::now(), ticket));
    EXPECT_EQ(one->inflight, 1u);
    EXPECT_FALSE(ticket->linked);
}

TEST(DispatcherBacklog, ABusyWorkerTakesOneMoreThatWaitsAheadAndCountsAsQueued) {
    Dispatcher d(16);
    d.set_backlog(1);
    auto one = make_backend(1, 2);
    d.add(one);
    serve_one(d);
    // Free threads first: a request that may wait ahead takes a thread, not the backlog.
    auto t1 = std::make_shared<AheadTicket>();
    auto t2 = std::make_shared<AheadTicket>();
    auto t3 = std::make_shared<AheadTicket>();
    ASSERT_TRUE(d.try_acquire(0, Clock::now(), t1));
    ASSERT_TRUE(d.try_acquire(0, Clock::now(), t2));
    EXPECT_FALSE(t1->linked);
    EXPECT_FALSE(t2->linked);
    // Both threads busy: the third goes ahead, and no further one.
    ASSERT_TRUE(d.try_acquire(0, Clock::now(), t3));
    EXPECT_TRUE(t3->linked);
    EXPECT_EQ(one->inflight, 3u);
    EXPECT_FALSE(d.try_acquire(0, Clock::now(), std::make_shared<AheadTicket>()));
    // A request that may not wait ahead (a POST) does not get the backlog either.
    EXPECT_FALSE(d.try_acquire(0));
    // The one ahead counts as queued, not in flight, for the statistics the controller reads.
    EXPECT_EQ(d.counts().inflight, 2u);
    EXPECT_EQ(d.counts().queued, 1u);
}

TEST(DispatcherBacklog, TheAheadRequestStartsWhenAThreadOfItsWorkerFrees) {
    Dispatcher d(16);
    d.set_backlog(1);
    auto one = make_backend(1, 1);
    d.add(one);
    const auto t0 = Clock::now();
    serve_one(d, t0);
    auto running_ticket = std::make_shared<AheadTicket>();
    auto running = d.try_acquire(0, t0, running_ticket);
    auto ahead = std::make_shared<AheadTicket>();
    ASSERT_TRUE(d.try_acquire(0, t0, ahead));
    EXPECT_FALSE(ahead->started_at().has_value());
    const auto freed = t0 + std::chrono::milliseconds(7);
    d.release(running, nullptr, true, freed, running_ticket);
    ASSERT_TRUE(ahead->started_at().has_value());
    EXPECT_EQ(*ahead->started_at(), freed);
    EXPECT_FALSE(ahead->linked);
    EXPECT_FALSE(running_ticket->started_at().has_value()) << "it ran at once: never ahead";
    EXPECT_EQ(d.counts().inflight, 1u);
    EXPECT_EQ(d.counts().queued, 0u);
    d.release(running, nullptr, true, freed, ahead);
    EXPECT_EQ(one->inflight, 0u);
    EXPECT_EQ(d.counts().inflight, 0u);
}

TEST(DispatcherBacklog, AnAheadRequestThatEndsUnstartedFreesNoThreadAndPromotesNoOne) {
    Dispatcher d(16);
    d.set_backlog(2);
    auto one = make_backend(1, 1);
    d.add(one);
    serve_one(d);
    auto running = d.try_acquire(0);
    auto first = std::make_shared<AheadTicket>();
    auto second = std::make_shared<AheadTicket>();
    ASSERT_TRUE(d.try_acquire(0, Clock::now(), first));
    ASSERT_TRUE(d.try_acquire(0, Clock::now(), second));
    // The first ahead one's client leaves: the running request still holds the thread.
    d.release(one, nullptr, false, Clock::now(), first);
    EXPECT_FALSE(first->linked);
    EXPECT_FALSE(second->started_at().has_value());
    EXPECT_EQ(d.counts().queued, 1u);
    // The running one ends: the second starts.
    d.release(running, nullptr, true);
    EXPECT_TRUE(second->started_at().has_value());
    EXPECT_EQ(d.counts().queued, 0u);
}

TEST(DispatcherBacklog, QueuedWaitersKeepTheirOrderAndAPostAtTheHeadHoldsTheBacklog) {
    Dispatcher d(16);
    d.set_backlog(1);
    GrantLog log;
    auto one = make_backend(1, 1);
    d.add(one);
    serve_one(d);
    auto running = d.try_acquire(0);
    // No backlog room is taken while a plain waiter is ahead of it in tunerd's queue (FIFO).
    BackendPtr out;
    EXPECT_EQ(d.acquire(log.waiter(1), out), AcquireStatus::queued);  // a POST
    auto ticket = std::make_shared<AheadTicket>();
    EXPECT_EQ(d.acquire(ahead_waiter(log, 2, ticket), out), AcquireStatus::queued);
    EXPECT_TRUE(log.grants.empty());
    // The running one ends: the POST takes the thread; the GET then goes ahead behind it.
    d.release(running, nullptr, true);
    ASSERT_EQ(log.grants.size(), 2u);
    EXPECT_EQ(log.grants[0].first, 1u);
    EXPECT_EQ(log.grants[1].first, 2u);
    EXPECT_TRUE(ticket->linked);
}

TEST(DispatcherBacklog, ADrainingWorkerTakesNoneAndDrainsOnlyOnceItsBacklogIsServed) {
    Dispatcher d(16);
    d.set_backlog(1);
    std::vector<unsigned> drained;
    d.set_callbacks({.drained = [&](unsigned id) { drained.push_back(id); }});
    auto one = make_backend(1, 1);
    d.add(one);
    serve_one(d);
    auto running = d.try_acquire(0);
    auto ahead = std::make_shared<AheadTicket>();
    ASSERT_TRUE(d.try_acquire(0, Clock::now(), ahead));
    EXPECT_FALSE(d.stop_accepting(1));
    EXPECT_FALSE(d.try_acquire(0, Clock::now(), std::make_shared<AheadTicket>()));
    d.release(running, nullptr, true);
    EXPECT_TRUE(drained.empty());
    EXPECT_TRUE(ahead->started_at().has_value());
    d.release(running, nullptr, true, Clock::now(), ahead);
    EXPECT_EQ(drained, std::vector<unsigned>{1});
}

TEST(DispatcherBacklog, ARemovedWorkersTicketsAreReleasedWithoutHarm) {
    Dispatcher d(16);
    d.set_backlog(1);
    auto one = make_backend(1, 1);
    d.add(one);
    serve_one(d);
    auto running = d.try_acquire(0);
    auto ahead = std::make_shared<AheadTicket>();
    ASSERT_TRUE(d.try_acquire(0, Clock::now(), ahead));
    d.remove(1);  // the worker died with both
    d.release(running, nullptr, false);
    d.release(running, nullptr, false, Clock::now(), ahead);
    EXPECT_EQ(d.counts().inflight, 0u);
    EXPECT_EQ(d.counts().queued, 0u);
    EXPECT_EQ(one->inflight, 0u);
}

TEST(DispatcherBacklog, AWorkerThatHasNotAnsweredLatelyTakesNoneBeyondItsThreads) {
    Dispatcher d(16);
    d.set_backlog(1);
    auto one = make_backend(1, 1);
    d.add(one);
    const auto t0 = Clock::now();
    // Never answered yet: nothing goes ahead.
    auto running = d.try_acquire(0, t0);
    ASSERT_TRUE(running);
    EXPECT_FALSE(d.try_acquire(0, t0, std::make_shared<AheadTicket>()));
    d.release(running, nullptr, true, t0);
    // Answered at t0: within kBacklogFreshness one goes ahead, after it (stuck on a slow
    // request, say) none does: tunerd's queue gives it to the next free worker instead.
    running = d.try_acquire(0, t0);
    EXPECT_TRUE(d.try_acquire(0, t0 + kBacklogFreshness / 2, std::make_shared<AheadTicket>()));
    auto two = make_backend(2, 1);
    d.add(two);
    d.release(d.try_acquire(0, t0), nullptr, true, t0);  // worker 2 answers at t0 too
    auto busy_two = d.try_acquire(0, t0);
    ASSERT_TRUE(busy_two);
    EXPECT_FALSE(d.try_acquire(0, t0 + 2 * kBacklogFreshness, std::make_shared<AheadTicket>()));
}

TEST(DispatcherBacklog, TheConnectionOfTheRequestThatStartsOneIsClosedNotParked) {
    Dispatcher d(16);
    d.set_backlog(1);
    auto one = make_backend(1, 1);
    d.add(one);
    serve_one(d);
    int closed = 0;
    auto running = d.try_acquire(0);
    auto ahead = std::make_shared<AheadTicket>();
    ASSERT_TRUE(d.try_acquire(0, Clock::now(), ahead));
    d.release(running, std::make_unique<FakeConnection>(closed), true);
    EXPECT_EQ(closed, 1) << "a thread-per-connection worker would keep reading it";
    EXPECT_TRUE(one->idle.empty());
    // With nobody ahead, a reusable connection is parked as before.
    d.release(running, std::make_unique<FakeConnection>(closed), true, Clock::now(), ahead);
    EXPECT_EQ(closed, 1);
    EXPECT_EQ(one->idle.size(), 1u);
}

TEST(DispatcherBacklog, NoneGoesAheadWhileAConnectionIsParkedAndNoneIsParkedWhileOneWaits) {
    Dispatcher d(16);
    d.set_backlog(2);
    auto one = make_backend(1, 2);
    d.add(one);
    serve_one(d);
    int closed = 0;
    // A connection parked: a thread of a thread-per-connection worker may be reading it.
    one->idle.push_back(std::make_unique<FakeConnection>(closed));
    auto a = d.try_acquire(0);
    auto b = d.try_acquire(0);
    ASSERT_TRUE(a && b);
    EXPECT_FALSE(d.try_acquire(0, Clock::now(), std::make_shared<AheadTicket>()));
    // Once it was taken, one may go ahead.
    auto taken = d.take_idle(one);
    ASSERT_TRUE(taken);
    auto first = std::make_shared<AheadTicket>();
    auto second = std::make_shared<AheadTicket>();
    ASSERT_TRUE(d.try_acquire(0, Clock::now(), first));
    ASSERT_TRUE(d.try_acquire(0, Clock::now(), second));
    // The first ahead one got its answer before its start was seen (an event-loop worker took
    // it early): its reusable connection is closed while the second still waits.
    d.release(one, std::make_unique<FakeConnection>(closed), true, Clock::now(), first);
    EXPECT_EQ(closed, 1);
    EXPECT_TRUE(one->idle.empty());
}

}  // namespace
}  // namespace tuner::server
