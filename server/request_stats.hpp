// What the front measures per request, kept two ways: a ring of one-second buckets for the
// sliding-window statistics the controller reads (rates, percentiles, mean and max queue length
// and in-flight, codes, minimum ready workers), and cumulative counters and fixed-bucket
// histograms for Prometheus. Not thread-safe by itself: the Dispatcher calls it under the lock
// it already holds for dispatching, so recording adds no lock to the hot path.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <vector>

#include "model/snapshot.hpp"
#include "server/latency_histogram.hpp"

namespace tuner::server {

// One finished request as the front saw it.
struct RequestRecord {
    Clock::time_point arrived{};     // request header read
    Clock::time_point dispatched{};  // a worker slot was granted (== arrived when no wait)
    Clock::time_point completed{};   // response fully sent (or failed)
    std::uint64_t service_usec = 0;  // upstream: first byte sent .. last byte received
    bool reached_worker = false;     // false: rejected or timed out in the queue
    bool queue_timeout = false;      // waited queue_timeout for a worker in vain (503)
    int status = 0;                  // sent to the client; 0 when the client went away
    // Answered by the front alone, never meant for a worker (429 of the rate limit): counted by
    // status only, outside the latencies and arrivals the controller sizes the pool from.
    bool front_only = false;
};

// Whole microseconds from a to b, 0 when b is not after a.
std::uint64_t usec_between(Clock::time_point a, Clock::time_point b);

// Fixed buckets for Prometheus histograms (seconds), as in the client libraries' defaults
// extended to 60 s because request_timeout defaults to 60 s.
inline constexpr std::array<double, 14> kPrometheusBuckets = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60};

struct CumulativeHistogram {
    std::array<std::uint64_t, kPrometheusBuckets.size()> buckets{};  // non-cumulative counts
    std::uint64_t count = 0;
    double sum_s = 0;
    void observe(double seconds);
};

// Counters since start, for /metrics.
struct CumulativeStats {
    std::uint64_t accepted = 0;
    std::uint64_t rejected_queue_full = 0;
    std::uint64_t timed_out_in_queue = 0;
    std::uint64_t retries = 0;
    std::map<int, std::uint64_t> codes;
    CumulativeHistogram total;
    CumulativeHistogram queue_wait;
    CumulativeHistogram service;
};

class RequestStats {
public:
    explicit RequestStats(Duration window = std::chrono::seconds(10),
                          Clock::time_point now = Clock::now());

    void set_window(Duration window, Clock::time_point now);

    // Level changes: queue length, requests at workers, ready workers. Called on every change
    // so the means are time-weighted and the minimum/maximum are exact.
    void set_levels(std::size_t queue_length, std::size_t inflight, unsigned ready,
                    Clock::time_point now);
    void note_arrival(Clock::time_point now);
    void note_rejected_queue_full(Clock::time_point now);
    void note_retry() { ++cumulative_.retries; }
    void record(const RequestRecord& r);

    // Per-worker accounting: busy time (≥ 1 request in flight) and served counts.
    void worker_busy_changed(unsigned worker_id, bool busy, Clock::time_point now);
    void worker_served(unsigned worker_id, Clock::time_point now);
    void worker_removed(unsigned worker_id, Clock::time_point now);

    [[nodiscard]] WindowStats window(Clock::time_point now);
    [[nodiscard]] const CumulativeStats& cumulative() const { return cumulative_; }

private:
    struct WorkerBucket {
        double busy_s = 0;
        std::uint64_t served = 0;
    };
    struct Bucket {
        std::int64_t second = -1;  // which second since start this bucket holds
        std::uint64_t arrivals = 0, completed = 0, rejected = 0, queue_timeouts = 0,
                      upstream_errors = 0;
        LatencyHistogram queue_wait, service, total;
        std::map<int, std::uint64_t> codes;
        double queue_integral = 0, inflight_integral = 0;  // level × seconds
        double covered_s = 0;                              // seconds of level integration
        std::size_t queue_max = 0, inflight_max = 0;
        unsigned ready_min = 0;
        std::map<unsigned, WorkerBucket> workers;
    };
    struct WorkerState {
        bool busy = false;
        Clock::time_point busy_since{};
    };

    [[nodiscard]] std::int64_t second_of(Clock::time_point t) const;  // since origin_, floored
    Bucket& bucket_at(Clock::time_point t);                           // rolls the ring forward to t
    // Rolls the ring forward to `to`, then calls add(bucket, seconds) for each part of
    // [from, to) that falls in a second the ring still holds; older parts are history.
    template <typename AddSpan>
    void spread(Clock::time_point from, Clock::time_point to, AddSpan&& add);
    void integrate_levels(Clock::time_point now);
    void close_busy_time(unsigned id, WorkerState& w, Clock::time_point now);

    Clock::time_point origin_;
    std::vector<Bucket> ring_;
    std::int64_t current_second_ = 0;
    // Current levels and when they last changed.
    std::size_t queue_length_ = 0, inflight_ = 0;
    unsigned ready_ = 0;
    Clock::time_point levels_since_;
    std::map<unsigned, WorkerState> workers_;
    CumulativeStats cumulative_;
};

}  // namespace tuner::server
