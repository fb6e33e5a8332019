// Sliding-window and cumulative request statistics (see request_stats.hpp).
#include "server/request_stats.hpp"

#include <algorithm>

namespace tuner::server {

namespace {

constexpr auto kBucketWidth = std::chrono::seconds(1);

double seconds_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
}

Percentiles percentiles_of(const LatencyHistogram& h) {
    Percentiles p;
    p.p50_ms = h.percentile_usec(0.50) / 1000.0;
    p.p95_ms = h.percentile_usec(0.95) / 1000.0;
    p.p99_ms = h.percentile_usec(0.99) / 1000.0;
    p.mean_ms = h.mean_usec() / 1000.0;
    return p;
}

}  // namespace

std::uint64_t usec_between(Clock::time_point a, Clock::time_point b) {
    if (b <= a) return 0;
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(b - a).count());
}

void CumulativeHistogram::observe(double seconds) {
    const auto it = std::lower_bound(kPrometheusBuckets.begin(), kPrometheusBuckets.end(), seconds);
    if (it != kPrometheusBuckets.end())
        ++buckets[static_cast<std::size_t>(it - kPrometheusBuckets.begin())];
    ++count;
    sum_s += seconds;
}

RequestStats::RequestStats(Duration window, Clock::time_point now)
    : origin_(now), levels_since_(now) {
    set_window(window, now);
}

void RequestStats::set_window(Duration window, Clock::time_point now) {
    const auto seconds = std::max<std::int64_t>(
        2, std::chrono::duration_cast<std::chrono::seconds>(window + kBucketWidth - Duration{1})
               .count());
    integrate_levels(now);
    ring_.assign(static_cast<std::size_t>(seconds), Bucket{});
    current_second_ = second_of(now);
    Bucket& b = ring_[static_cast<std::size_t>(current_second_) % ring_.size()];
    b.second = current_second_;
    b.ready_min = ready_;
    b.queue_max = queue_length_;
    b.inflight_max = inflight_;
}

std::int64_t RequestStats::second_of(Clock::time_point t) const {
    return std::chrono::floor<std::chrono::seconds>(t - origin_).count();
}

RequestStats::Bucket& RequestStats::bucket_at(Clock::time_point t) {
    const auto second = second_of(t);
    if (second > current_second_) {
        const auto n = static_cast<std::int64_t>(ring_.size());
        for (std::int64_t s = std::max(current_second_ + 1, second - n + 1); s <= second; ++s) {
            Bucket& fresh = ring_[static_cast<std::size_t>(s % n)];
            fresh = Bucket{};
            fresh.second = s;
            fresh.ready_min = ready_;
            fresh.queue_max = queue_length_;
            fresh.inflight_max = inflight_;
        }
        current_second_ = second;
    }
    // An event stamped slightly in the past (taken before the lock) lands in the current bucket
    // unless its own bucket is still in the ring.
    if (second >= 0 && second < current_second_) {
        Bucket& older =
            ring_[static_cast<std::size_t>(second % static_cast<std::int64_t>(ring_.size()))];
        if (older.second == second) return older;
    }
    return ring_[static_cast<std::size_t>(current_second_ %
                                          static_cast<std::int64_t>(ring_.size()))];
}

template <typename AddSpan>
void RequestStats::spread(Clock::time_point from, Clock::time_point to, AddSpan&& add) {
    if (ring_.empty() || to <= from) return;
    bucket_at(to);
    // A span that began before the ring's oldest second (a gap, a long busy period) only
    // counts from there: spreading it further would land in slots now holding newer seconds.
    const auto n = static_cast<std::int64_t>(ring_.size());
    const Clock::time_point oldest =
        origin_ + kBucketWidth * std::max<std::int64_t>(0, current_second_ - n + 1);
    from = std::max(from, oldest);
    while (from < to) {
        const std::int64_t second = second_of(from);
        const Clock::time_point bucket_end = origin_ + kBucketWidth * (second + 1);
        const Clock::time_point until = std::min(to, bucket_end);
        Bucket& b = ring_[static_cast<std::size_t>(second % n)];
        if (b.second == second) add(b, seconds_between(from, until));  // else before set_window
        from = until;
    }
}

void RequestStats::integrate_levels(Clock::time_point now) {
    if (ring_.empty() || now <= levels_since_) return;
    const auto queue = static_cast<double>(queue_length_);
    const auto inflight = static_cast<double>(inflight_);
    spread(levels_since_, now, [&](Bucket& b, double seconds) {
        b.queue_integral += queue * seconds;
        b.inflight_integral += inflight * seconds;
        b.covered_s += seconds;
    });
    levels_since_ = now;
}

void RequestStats::set_levels(std::size_t queue_length, std::size_t inflight, unsigned ready,
                              Clock::time_point now) {
    integrate_levels(now);
    queue_length_ = queue_length;
    inflight_ = inflight;
    ready_ = ready;
    Bucket& b = bucket_at(now);
    b.queue_max = std::max(b.queue_max, queue_length);
    b.inflight_max = std::max(b.inflight_max, inflight);
    b.ready_min = std::min(b.ready_min, ready);
}

void RequestStats::note_arrival(Clock::time_point now) {
    ++bucket_at(now).arrivals;
    ++cumulative_.accepted;
}

void RequestStats::note_rejected_queue_full(Clock::time_point now) {
    ++bucket_at(now).rejected;
    ++cumulative_.rejected_queue_full;
}

void RequestStats::record(const RequestRecord& r) {
    Bucket& b = bucket_at(r.completed);
    if (r.front_only) {
        if (r.status != 0) {
            ++b.codes[r.status];
            ++cumulative_.codes[r.status];
        }
        return;
    }
    const std::uint64_t wait =
        usec_between(r.arrived, r.reached_worker ? r.dispatched : r.completed);
    const std::uint64_t total = usec_between(r.arrived, r.completed);
    ++b.completed;
    b.queue_wait.add(wait);
    b.total.add(total);
    if (r.reached_worker) b.service.add(r.service_usec);
    if (r.status != 0) ++b.codes[r.status];
    if (r.queue_timeout) ++b.queue_timeouts;
    if (r.status == 502 || r.status == 504) ++b.upstream_errors;

    if (r.status != 0) ++cumulative_.codes[r.status];
    if (r.queue_timeout) ++cumulative_.timed_out_in_queue;
    cumulative_.total.observe(static_cast<double>(total) / 1e6);
    cumulative_.queue_wait.observe(static_cast<double>(wait) / 1e6);
    if (r.reached_worker) cumulative_.service.observe(static_cast<double>(r.service_usec) / 1e6);
}

void RequestStats::close_busy_time(unsigned id, WorkerState& w, Clock::time_point now) {
    if (!w.busy || now <= w.busy_since) return;
    // Spread over the seconds it spans, so busy time that ages out of the window leaves it.
    spread(w.busy_since, now, [&](Bucket& b, double seconds) { b.workers[id].busy_s += seconds; });
    w.busy_since = now;
}

void RequestStats::worker_busy_changed(unsigned worker_id, bool busy, Clock::time_point now) {
    WorkerState& w = workers_[worker_id];
    if (w.busy == busy) return;
    if (w.busy) close_busy_time(worker_id, w, now);
    w.busy = busy;
    w.busy_since = now;
}

void RequestStats::worker_served(unsigned worker_id, Clock::time_point now) {
    ++bucket_at(now).workers[worker_id].served;
}

void RequestStats::worker_removed(unsigned worker_id, Clock::time_point now) {
    auto it = workers_.find(worker_id);
    if (it == workers_.end()) return;
    close_busy_time(worker_id, it->second, now);
    workers_.erase(it);
}

WindowStats RequestStats::window(Clock::time_point now) {
    integrate_levels(now);
    for (auto& [id, w] : workers_) close_busy_time(id, w, now);

    WindowStats out;
    LatencyHistogram queue_wait, service, total;
    double covered = 0, queue_integral = 0, inflight_integral = 0;
    std::uint64_t arrivals = 0;
    unsigned ready_min = ready_;
    std::map<unsigned, WorkerBucket> workers;
    const auto oldest = current_second_ - static_cast<std::int64_t>(ring_.size()) + 1;
    for (const Bucket& b : ring_) {
        if (b.second < oldest || b.second < 0) continue;
        covered += b.covered_s;
        out.completed += b.completed;
        arrivals += b.arrivals;
        out.rejected_queue_full += b.rejected;
        out.timed_out_in_queue += b.queue_timeouts;
        out.upstream_errors += b.upstream_errors;
        queue_wait.merge(b.queue_wait);
        service.merge(b.service);
        total.merge(b.total);
        for (const auto& [code, n] : b.codes) out.codes[code] += n;
        queue_integral += b.queue_integral;
        inflight_integral += b.inflight_integral;
        out.queue_length_max = std::max(out.queue_length_max, static_cast<double>(b.queue_max));
        out.inflight_max = std::max(out.inflight_max, static_cast<double>(b.inflight_max));
        ready_min = std::min(ready_min, b.ready_min);
        for (const auto& [id, wb] : b.workers) {
            workers[id].busy_s += wb.busy_s;
            workers[id].served += wb.served;
        }
    }
    out.window = std::chrono::duration_cast<Duration>(std::chrono::duration<double>(covered));
    if (covered > 0) {
        out.rate_rps = static_cast<double>(out.completed) / covered;
        out.arrival_rps = static_cast<double>(arrivals) / covered;
        out.queue_length_mean = queue_integral / covered;
        out.inflight_mean = inflight_integral / covered;
    }
    out.queue_wait = percentiles_of(queue_wait);
    out.service = percentiles_of(service);
    out.total = percentiles_of(total);
    out.min_ready = ready_min;
    out.accepted_total = cumulative_.accepted;
    out.queue_length_now = queue_length_;
    for (const auto& [id, state] : workers_) {  // only workers that still exist
        const WorkerBucket wb = workers.count(id) ? workers[id] : WorkerBucket{};
        WorkerWindowStats w;
        w.id = id;
        w.served = wb.served;
        w.busy_fraction = covered > 0 ? std::min(1.0, wb.busy_s / covered) : 0;
        out.workers.push_back(w);
    }
    return out;
}

}  // namespace tuner::server
