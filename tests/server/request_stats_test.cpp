// Sliding-window and cumulative request statistics, with injected times: rates over the time the
// window covers, percentiles, time-weighted levels, the minimum of ready workers, per-worker busy
// time, codes, Prometheus histograms, and buckets ageing out.
#include "server/request_stats.hpp"

#include <chrono>
#include <numeric>

#include <gtest/gtest.h>

namespace tuner::server {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::seconds;

// A fixed origin: every time below is an offset from it, so nothing depends on the real clock.
const Clock::time_point t0 = Clock::time_point{} + std::chrono::hours(1000);

Clock::time_point at(double s) {
    return t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

RequestRecord served(Clock::time_point arrived, microseconds wait, microseconds service,
                     int status = 200) {
    RequestRecord r;
    r.arrived = arrived;
    r.dispatched = arrived + wait;
    r.completed = r.dispatched + service;
    r.service_usec = static_cast<std::uint64_t>(service.count());
    r.reached_worker = true;
    r.status = status;
    return r;
}

double window_s(const WindowStats& w) {
    return std::chrono::duration<double>(w.window).count();
}

TEST(RequestStats, RatesAreCountsOverTheTimeTheWindowCovers) {
    RequestStats stats(seconds(10), t0);
    for (int i = 0; i < 60; ++i) {
        const auto arrived = at(0.5 + 0.1 * i);
        stats.note_arrival(arrived);
        if (i < 50) stats.record(served(arrived, microseconds(0), milliseconds(50)));
    }
    const auto w = stats.window(at(9.5));
    // Ten one-second buckets: the current, half-finished one and nine whole ones.
    EXPECT_NEAR(window_s(w), 9.5, 0.002);
    EXPECT_EQ(w.completed, 50u);
    EXPECT_NEAR(w.rate_rps, 50 / 9.5, 1e-9);
    EXPECT_NEAR(w.arrival_rps, 60 / 9.5, 1e-9);
    EXPECT_EQ(w.accepted_total, 60u);
}

TEST(RequestStats, PercentilesAreWithinTwoPercentOfTheTrueValues) {
    RequestStats stats(seconds(10), t0);
    // Request v waits v × 100 µs and is served in v ms: 1..1000 ms.
    for (int v = 1; v <= 1000; ++v) {
        stats.record(served(at(1.0), microseconds(100 * v), microseconds(1000 * v)));
    }
    const auto w = stats.window(at(5.0));
    auto expect_near_percent = [](double actual, double expected, const char* what) {
        EXPECT_NEAR(actual, expected, expected * 0.02) << what;
    };
    // Nearest rank: the 500th, 950th and 990th of 1000 values.
    expect_near_percent(w.service.p50_ms, 500, "service p50");
    expect_near_percent(w.service.p95_ms, 950, "service p95");
    expect_near_percent(w.service.p99_ms, 990, "service p99");
    EXPECT_DOUBLE_EQ(w.service.mean_ms, 500.5);  // the mean is exact: a sum, not buckets
    expect_near_percent(w.queue_wait.p50_ms, 50, "queue wait p50");
    expect_near_percent(w.queue_wait.p99_ms, 99, "queue wait p99");
    expect_near_percent(w.total.p50_ms, 550, "total p50");
    expect_near_percent(w.total.p95_ms, 1045, "total p95");
}

TEST(RequestStats, QueueLengthAndInFlightMeansAreTimeWeighted) {
    RequestStats stats(seconds(10), t0);
    stats.set_levels(0, 0, 1, at(0));
    stats.set_levels(4, 2, 1, at(2));  // 4 waiting, 2 in flight for 2 s
    stats.set_levels(0, 3, 1, at(4));  // then none waiting, 3 in flight for 4 s
    const auto w = stats.window(at(8));
    EXPECT_NEAR(window_s(w), 8.0, 0.002);
    EXPECT_NEAR(w.queue_length_mean, 4.0 * 2 / 8, 1e-9);
    EXPECT_NEAR(w.inflight_mean, (2.0 * 2 + 3.0 * 4) / 8, 1e-9);
    EXPECT_EQ(w.queue_length_max, 4);
    EXPECT_EQ(w.inflight_max, 3);
    EXPECT_EQ(w.queue_length_now, 0u);
}

TEST(RequestStats, AShortQueueSpikeSetsTheMaximumAndAgesOut) {
    RequestStats stats(seconds(10), t0);
    stats.set_levels(0, 1, 1, at(0.1));
    stats.set_levels(9, 1, 1, at(3.20));
    stats.set_levels(0, 1, 1, at(3.21));
    EXPECT_EQ(stats.window(at(12.5)).queue_length_max, 9);
    EXPECT_EQ(stats.window(at(13.5)).queue_length_max, 0);
}

TEST(RequestStats, NoWorkerIsReadyBeforeTheFirstOneJoins) {
    RequestStats stats(seconds(10), t0);
    stats.set_levels(0, 0, 2, at(0.2));
    EXPECT_EQ(stats.window(at(0.5)).min_ready, 0u);
}

TEST(RequestStats, MinReadySeesADipInsideTheWindowUntilItAgesOut) {
    RequestStats stats(seconds(10), t0);
    stats.set_levels(0, 0, 3, at(0.1));
    EXPECT_EQ(stats.window(at(11.5)).min_ready, 3u);
    // One worker replaced and another restarting for 100 ms: never visible at a cycle boundary.
    stats.set_levels(0, 0, 1, at(12.3));
    stats.set_levels(0, 0, 3, at(12.4));
    EXPECT_EQ(stats.window(at(15.0)).min_ready, 1u);
    EXPECT_EQ(stats.window(at(21.5)).min_ready, 1u);  // second 12 is still in the window
    EXPECT_EQ(stats.window(at(22.9)).min_ready, 3u);  // now it is not
}

TEST(RequestStats, AGapLongerThanTheWindowKeepsTheLevelsThatHeldThroughIt) {
    RequestStats stats(seconds(10), t0);
    stats.set_levels(5, 2, 2, at(1.0));
    stats.note_arrival(at(1.5));
    stats.record(served(at(1.5), microseconds(0), milliseconds(10)));
    const auto w = stats.window(at(30.5));
    EXPECT_NEAR(window_s(w), 9.5, 0.002);
    EXPECT_EQ(w.completed, 0u);
    EXPECT_EQ(w.rate_rps, 0);
    EXPECT_EQ(w.arrival_rps, 0);
    EXPECT_NEAR(w.queue_length_mean, 5, 1e-9);
    EXPECT_NEAR(w.inflight_mean, 2, 1e-9);
    EXPECT_EQ(w.queue_length_max, 5);
    EXPECT_EQ(w.min_ready, 2u);
    EXPECT_TRUE(w.codes.empty());
    EXPECT_EQ(w.accepted_total, 1u);
}

TEST(RequestStats, AnEventAfterAGapDoesNotStretchTheWindow) {
    RequestStats stats(seconds(10), t0);
    stats.set_levels(1, 1, 1, at(0.5));
    // A completion moves the ring on before anything integrates the levels over the gap.
    stats.record(served(at(25.1), microseconds(0), milliseconds(100)));
    const auto w = stats.window(at(25.5));
    EXPECT_NEAR(window_s(w), 9.5, 0.002);
    EXPECT_NEAR(w.rate_rps, 1 / 9.5, 1e-9);
    EXPECT_NEAR(w.queue_length_mean, 1, 1e-9);
}

TEST(RequestStats, OldBucketsAgeOutOfTheWindowButNotOfTheTotals) {
    RequestStats stats(seconds(10), t0);
    for (int i = 0; i < 10; ++i) {
        stats.note_arrival(at(1.5));
        stats.record(served(at(1.5), microseconds(0), milliseconds(20)));
    }
    auto w = stats.window(at(5.0));
    EXPECT_EQ(w.completed, 10u);
    EXPECT_EQ(w.codes[200], 10u);
    w = stats.window(at(11.0));  // the ring now holds seconds 2..11
    EXPECT_EQ(w.completed, 0u);
    EXPECT_TRUE(w.codes.empty());
    EXPECT_EQ(w.service.p50_ms, 0);
    EXPECT_EQ(stats.cumulative().codes.at(200), 10u);
    EXPECT_EQ(stats.cumulative().accepted, 10u);
}

TEST(RequestStats, CountsCodesQueueTimeoutsRejectionsAndUpstreamErrors) {
    RequestStats stats(seconds(10), t0);
    for (int i = 0; i < 3; ++i) stats.record(served(at(1), microseconds(0), milliseconds(5)));
    stats.record(served(at(1), microseconds(0), milliseconds(5), 502));
    stats.record(served(at(1), microseconds(0), milliseconds(5), 504));
    RequestRecord timed_out;  // waited in the queue and never reached a worker
    timed_out.arrived = at(1);
    timed_out.completed = at(1.5);
    timed_out.status = 503;
    timed_out.queue_timeout = true;
    stats.record(timed_out);
    RequestRecord queue_full;  // refused at once: a 503 too, but no queue timeout
    queue_full.arrived = queue_full.completed = at(1);
    queue_full.status = 503;
    stats.record(queue_full);
    RequestRecord gone = served(at(2), microseconds(0), milliseconds(5), 0);  // client left
    stats.record(gone);
    stats.note_rejected_queue_full(at(2));
    stats.note_rejected_queue_full(at(2));
    stats.note_retry();

    const auto w = stats.window(at(3));
    const std::map<int, std::uint64_t> codes = {{200, 3}, {502, 1}, {503, 2}, {504, 1}};
    EXPECT_EQ(w.codes, codes);
    EXPECT_EQ(w.completed, 8u);  // the one the client left counts as done, without a code
    EXPECT_EQ(w.timed_out_in_queue, 1u);
    EXPECT_EQ(w.upstream_errors, 2u);
    EXPECT_EQ(w.rejected_queue_full, 2u);
    const auto& c = stats.cumulative();
    EXPECT_EQ(c.codes, codes);
    EXPECT_EQ(c.timed_out_in_queue, 1u);
    EXPECT_EQ(c.rejected_queue_full, 2u);
    EXPECT_EQ(c.retries, 1u);
    // The timed-out request waited its whole time and has no service time.
    EXPECT_EQ(c.queue_wait.count, 8u);
    EXPECT_EQ(c.service.count, 6u);
}

TEST(RequestStats, BusyFractionAndServedArePerWorker) {
    RequestStats stats(seconds(10), t0);
    stats.worker_busy_changed(1, true, at(1));
    stats.worker_busy_changed(1, false, at(3));
    stats.worker_served(1, at(3));
    stats.worker_busy_changed(2, true, at(0));  // busy all along
    for (double s : {2.0, 4.0, 6.0}) stats.worker_served(2, at(s));
    stats.worker_busy_changed(3, false, at(0));  // known, never busy

    const auto w = stats.window(at(9.5));
    ASSERT_EQ(w.workers.size(), 3u);
    EXPECT_EQ(w.workers[0].id, 1u);
    EXPECT_NEAR(w.workers[0].busy_fraction, 2 / 9.5, 1e-9);
    EXPECT_EQ(w.workers[0].served, 1u);
    EXPECT_EQ(w.workers[1].id, 2u);
    EXPECT_NEAR(w.workers[1].busy_fraction, 1.0, 1e-9);
    EXPECT_EQ(w.workers[1].served, 3u);
    EXPECT_EQ(w.workers[2].busy_fraction, 0);
    EXPECT_EQ(w.workers[2].served, 0u);
}

TEST(RequestStats, BusyTimeBeforeTheWindowIsNotCounted) {
    RequestStats stats(seconds(10), t0);
    stats.worker_busy_changed(1, true, at(0.5));
    stats.worker_busy_changed(1, false, at(6.5));
    // The window at 14.5 s covers 5.0 .. 14.5: of the 6 busy seconds only 1.5 are in it.
    const auto w = stats.window(at(14.5));
    ASSERT_EQ(w.workers.size(), 1u);
    EXPECT_NEAR(w.workers[0].busy_fraction, 1.5 / 9.5, 1e-9);
}

TEST(RequestStats, ARemovedWorkerIsNoLongerReported) {
    RequestStats stats(seconds(10), t0);
    stats.worker_busy_changed(1, true, at(1));
    stats.worker_busy_changed(2, true, at(1));
    stats.worker_removed(1, at(2));
    stats.worker_removed(7, at(2));  // never known: harmless
    const auto w = stats.window(at(3));
    ASSERT_EQ(w.workers.size(), 1u);
    EXPECT_EQ(w.workers[0].id, 2u);
}

TEST(RequestStats, ChangingTheWindowStartsItAfresh) {
    RequestStats stats(seconds(10), t0);
    stats.record(served(at(1.5), microseconds(0), milliseconds(5)));
    stats.set_window(milliseconds(2500), at(2.0));  // rounds up to three one-second buckets
    stats.record(served(at(2.5), microseconds(0), milliseconds(5)));
    auto w = stats.window(at(4.5));
    EXPECT_NEAR(window_s(w), 2.5, 0.002);
    EXPECT_EQ(w.completed, 1u);
    w = stats.window(at(6.5));
    EXPECT_NEAR(window_s(w), 2.5, 0.002);  // seconds 4, 5 and half of 6
    EXPECT_EQ(w.completed, 0u);
}

TEST(CumulativeHistogram, BucketsAreUpperBoundsAndTheOverflowOnlyCounts) {
    CumulativeHistogram h;
    h.observe(0.001);    // on an edge: counted in that bucket (Prometheus "le")
    h.observe(0.00101);  // just above it: the next one
    h.observe(60);       // the last edge
    h.observe(75);       // above every edge: only in +Inf, which is the count
    EXPECT_EQ(h.buckets[0], 1u);
    EXPECT_EQ(h.buckets[1], 1u);
    EXPECT_EQ(h.buckets[kPrometheusBuckets.size() - 1], 1u);
    EXPECT_EQ(std::accumulate(h.buckets.begin(), h.buckets.end(), std::uint64_t{0}), 3u);
    EXPECT_EQ(h.count, 4u);
    EXPECT_NEAR(h.sum_s, 0.001 + 0.00101 + 60 + 75, 1e-12);
}

TEST(CumulativeHistogram, RequestsFeedTheTotalWaitAndServiceHistograms) {
    RequestStats stats(seconds(10), t0);
    stats.record(served(at(1), milliseconds(100), milliseconds(200)));
    const auto& c = stats.cumulative();
    auto bucket_of = [](double edge) {
        for (std::size_t i = 0; i < kPrometheusBuckets.size(); ++i)
            if (kPrometheusBuckets[i] == edge) return i;
        ADD_FAILURE() << "no edge " << edge;
        return std::size_t{0};
    };
    EXPECT_EQ(c.queue_wait.buckets[bucket_of(0.1)], 1u);
    EXPECT_EQ(c.service.buckets[bucket_of(0.25)], 1u);
    EXPECT_EQ(c.total.buckets[bucket_of(0.5)], 1u);
    EXPECT_NEAR(c.total.sum_s, 0.3, 1e-9);
}

}  // namespace
}  // namespace tuner::server
