// A deterministic queueing simulator of tunerd's front and worker pool for controller tests:
// processes × threads, per-request CPU (processor-shared over the quota's cores; optionally at
// most one core per process, like CPython's GIL) followed by a wait, memory per process and per
// thread against a limit that OOM-kills, open-loop Poisson arrivals or a closed loop of clients.
// It advances in 1 ms ticks and yields, whenever asked, a Snapshot as the daemon builds it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <tuple>
#include <vector>

#include "model/snapshot.hpp"

namespace tuner::sim {

struct AppModel {
    double cpu_ms = 5;                       // CPU time per request, burnt first
    double wait_ms = 50;                     // then waiting (I/O, a database)
    bool gil = false;                        // at most one core per process (CPython threads)
    std::uint64_t process_bytes = 20 * MiB;  // resident per process
    std::uint64_t thread_bytes = 1 * MiB;    // added per thread
    // Extra resident memory per process at simulated second t (a leak, a cache filling up).
    std::function<std::uint64_t(double t_s)> growth_bytes;
    double startup_s = 1.0;  // spawn to ready
    double jitter = 0.2;     // each request's CPU and wait vary uniformly by ± this fraction
};

struct MachineModel {
    double cores = 2;  // the CPU quota in cores
    std::uint64_t memory_limit_bytes = 8 * GiB;
    bool memory_limited = true;           // a cgroup limit (else host memory)
    std::uint64_t self_bytes = 20 * MiB;  // tunerd's own resident memory
    // Memory of something else in the same cgroup at simulated second t (a cron job, tmpfs).
    std::function<std::uint64_t(double t_s)> other_bytes;
};

struct LoadModel {
    std::function<double(double t_s)> rate_rps;  // open loop: Poisson arrivals at this rate
    unsigned clients = 0;                        // closed loop: clients with no think time
    double noise = 0;  // each second the open-loop rate is multiplied by 1 ± noise (uniform)

    static LoadModel open(std::function<double(double)> rate, double noise = 0) {
        LoadModel m;
        m.rate_rps = std::move(rate);
        m.noise = noise;
        return m;
    }
    static LoadModel constant(double rps, double noise = 0) {
        return open([rps](double) { return rps; }, noise);
    }
    static LoadModel closed(unsigned clients) {
        LoadModel m;
        m.clients = clients;
        return m;
    }
};

struct FrontModel {
    std::size_t max_queue = 1024;
    double queue_timeout_s = 10;
    double window_s = 10;
    bool instant_counters = true;  // window.accepted_total and queue_length_now reported
};

class Simulator {
public:
    Simulator(MachineModel machine, AppModel app, LoadModel load, std::uint64_t seed = 1,
              FrontModel front = {})
        : machine_(machine),
          app_(std::move(app)),
          load_(std::move(load)),
          front_(front),
          rng_(seed) {
        clients_idle_ = load_.clients;
    }

    void set_target(unsigned workers) { target_ = workers; }
    // A pool already running before the simulation starts: `workers` ready at time 0.
    void start_pool(unsigned workers, unsigned threads = 1) {
        target_ = workers;
        threads_ = std::max(1u, threads);
        for (unsigned i = 0; i < workers; ++i) {
            Worker w;
            w.id = next_id_++;
            w.threads = threads_;
            w.state = WorkerState::ready;
            workers_.push_back(std::move(w));
        }
    }
    void set_threads(unsigned threads) { threads_ = std::max(1u, threads); }
    // The app changes (a release, another request mix): requests from now on cost this CPU.
    void set_cpu_ms(double cpu_ms) { app_.cpu_ms = cpu_ms; }
    void set_load(LoadModel load) {
        load_ = std::move(load);
        clients_idle_ = load_.clients > clients_busy_ ? load_.clients - clients_busy_ : 0;
    }

    // Runs the simulation forward by whole milliseconds.
    void advance(double seconds) {
        const auto ticks = static_cast<std::int64_t>(std::llround(seconds * 1000));
        for (std::int64_t i = 0; i < ticks; ++i) tick();
    }

    [[nodiscard]] double now_s() const { return static_cast<double>(tick_) / 1000.0; }
    [[nodiscard]] unsigned target() const { return target_; }
    [[nodiscard]] unsigned threads() const { return threads_; }
    [[nodiscard]] std::uint64_t served_total() const { return served_total_; }
    [[nodiscard]] std::uint64_t failed_total() const { return failed_total_; }
    [[nodiscard]] std::uint64_t oom_kills() const { return oom_kills_; }
    [[nodiscard]] std::uint64_t peak_memory_bytes() const { return peak_memory_; }
    [[nodiscard]] std::size_t queue_length() const { return queue_.size(); }

    [[nodiscard]] Snapshot snapshot() const {
        Snapshot s;
        s.taken_at = Clock::time_point{} + std::chrono::hours(1) + std::chrono::milliseconds(tick_);
        s.taken_at_wall = WallClock::time_point{} + std::chrono::hours(24 * 365 * 56) +
                          std::chrono::milliseconds(tick_);
        s.cpu.effective_cores = std::max(1u, static_cast<unsigned>(std::ceil(machine_.cores)));
        s.cpu.quota_cores = machine_.cores;
        s.cpu.source = "quota";
        s.cpu.host_cores = 8;
        s.cpu.affinity_cores = 8;
        s.cpu.usage_usec = static_cast<std::uint64_t>(cpu_core_ms_total_ * 1000);
        s.cpu.utilisation = last_second_cpu_utilisation_;
        const std::uint64_t used = memory_in_use();
        s.memory.limited = machine_.memory_limited;
        s.memory.limit_bytes = machine_.memory_limit_bytes;
        s.memory.source =
            machine_.memory_limited ? "cgroup memory.max (simulated)" : "host MemTotal";
        s.memory.usage_bytes = used;
        s.memory.working_set_bytes = used;
        s.memory.oom_kills = oom_kills_;
        s.memory.host_total_bytes =
            machine_.memory_limited ? 16 * GiB : machine_.memory_limit_bytes;
        s.memory.host_available_bytes =
            s.memory.host_total_bytes > used ? s.memory.host_total_bytes - used : 0;
        s.pressure.source = "simulated";
        s.pressure.cpu = PressureResource{PressureLine{cpu_psi_avg10_}, std::nullopt};
        s.pressure.memory = PressureResource{PressureLine{memory_psi_avg10_}, std::nullopt};
        s.self.pid = 1;
        s.self.processes = 1;
        s.self.rss_bytes = machine_.self_bytes;

        s.pool.target = target_;
        s.pool.threads = threads_;
        for (const auto& w : workers_) {
            WorkerInfo info;
            info.id = w.id;
            info.pid = static_cast<pid_t>(1000 + w.id);
            info.state = w.state;
            info.threads = w.threads;
            info.inflight = static_cast<unsigned>(w.active.size());
            info.served = w.served;
            info.age_s = now_s() - w.spawned_s;
            info.rss_bytes = process_memory(w);
            s.pool.workers.push_back(info);
            if (w.state == WorkerState::ready) ++s.pool.ready;
            if (w.state == WorkerState::starting) ++s.pool.starting;
            if (w.state == WorkerState::draining) ++s.pool.draining;
            ProcessTreeSample tree;
            tree.pid = info.pid;
            tree.processes = 1;
            tree.rss_bytes = info.rss_bytes;
            tree.pss_bytes = info.rss_bytes;
            tree.cpu_seconds = w.cpu_s;
            s.worker_trees[w.id] = tree;
        }
        s.window = window_stats();
        if (front_.instant_counters) {
            s.window.accepted_total = accepted_total_;
            s.window.queue_length_now = queue_.size();
        }
        return s;
    }

private:
    struct Request {
        double arrival_s = 0;
        double dispatch_s = 0;
        double cpu_left_ms = 0;
        double wait_left_ms = 0;
        bool from_client = false;
    };
    struct Worker {
        unsigned id = 0;
        unsigned threads = 1;
        WorkerState state = WorkerState::starting;
        double spawned_s = 0;
        double ready_at_s = 0;
        bool replacing = false;  // draining to be replaced with the new thread count
        std::vector<Request> active;
        std::uint64_t served = 0;
        double cpu_s = 0;
    };
    struct Bucket {
        std::uint64_t arrivals = 0;
        std::uint64_t completed = 0;
        std::vector<double> queue_wait_ms, service_ms, total_ms;
        double inflight_integral = 0, queue_integral = 0, ms = 0;
        double inflight_max = 0, queue_max = 0;
        unsigned min_ready = std::numeric_limits<unsigned>::max();
        std::map<int, std::uint64_t> codes;
        std::uint64_t rejected_full = 0, timed_out = 0, upstream_errors = 0;
        std::map<unsigned, double> busy_ms;
        std::map<unsigned, std::uint64_t> served;
    };

    static constexpr double kTickMs = 1.0;

    [[nodiscard]] std::uint64_t process_memory(const Worker& w) const {
        std::uint64_t bytes = app_.process_bytes + w.threads * app_.thread_bytes;
        if (app_.growth_bytes) bytes += app_.growth_bytes(now_s());
        return bytes;
    }
    [[nodiscard]] std::uint64_t memory_in_use() const {
        std::uint64_t total = machine_.self_bytes;
        if (machine_.other_bytes) total += machine_.other_bytes(now_s());
        for (const auto& w : workers_) total += process_memory(w);
        return total;
    }

    double uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

    // Knuth's method: fine for the small means of one tick.
    unsigned poisson(double mean) {
        const double limit = std::exp(-mean);
        unsigned k = 0;
        double p = uniform();
        while (p > limit) {
            ++k;
            p *= uniform();
        }
        return k;
    }

    void arrive(bool from_client) {
        current_.arrivals++;
        ++accepted_total_;
        if (queue_.size() >= front_.max_queue) {
            respond(503, from_client);
            current_.rejected_full++;
            return;
        }
        Request r;
        r.arrival_s = now_s();
        // Real requests vary a little; identical ones would march through the pool in lockstep.
        r.cpu_left_ms = app_.cpu_ms * (1 + app_.jitter * (2 * uniform() - 1));
        r.wait_left_ms = app_.wait_ms * (1 + app_.jitter * (2 * uniform() - 1));
        r.from_client = from_client;
        queue_.push_back(r);
    }

    void respond(int code, bool from_client) {
        current_.completed++;
        current_.codes[code]++;
        if (code != 200) ++failed_total_;
        if (from_client) {
            --clients_busy_;
            ++clients_idle_;
        }
    }

    void generate_arrivals() {
        if (load_.clients > 0) {
            while (clients_idle_ > 0 && clients_busy_ < load_.clients) {
                --clients_idle_;
                ++clients_busy_;
                arrive(true);
            }
            return;
        }
        if (!load_.rate_rps) return;
        const auto second = tick_ / 1000;
        if (second != rate_second_) {
            rate_second_ = second;
            const double noise = load_.noise > 0 ? 1 + load_.noise * (2 * uniform() - 1) : 1;
            rate_now_ = std::max(0.0, load_.rate_rps(static_cast<double>(second)) * noise);
        }
        const unsigned n = poisson(rate_now_ * kTickMs / 1000.0);
        for (unsigned i = 0; i < n; ++i) arrive(false);
    }

    void supervise() {
        const double now = now_s();
        for (auto& w : workers_) {
            if (w.state == WorkerState::starting && now >= w.ready_at_s)
                w.state = WorkerState::ready;
        }
        std::erase_if(workers_, [](const Worker& w) {
            return w.state == WorkerState::draining && w.active.empty();
        });
        unsigned live = 0, replacing = 0;
        for (const auto& w : workers_) {
            if (w.state != WorkerState::draining) ++live;
            if (w.state == WorkerState::draining && w.replacing) ++replacing;
        }
        // A rolling thread change drains first, then starts the replacement (memory-safe).
        while (live + replacing < target_ && now >= next_spawn_s_) {
            Worker w;
            w.id = next_id_++;
            w.threads = threads_;
            w.spawned_s = now;
            w.ready_at_s = now + app_.startup_s;
            workers_.push_back(std::move(w));
            ++live;
        }
        while (live > target_) {
            // Stop the starting ones first, then the least busy, newest first.
            auto rank = [](const Worker& w) {
                return std::tuple(w.state == WorkerState::starting ? 0 : 1, w.active.size(),
                                  -static_cast<long>(w.id));
            };
            Worker* victim = nullptr;
            for (auto& w : workers_) {
                if (w.state == WorkerState::draining) continue;
                if (!victim || rank(w) < rank(*victim)) victim = &w;
            }
            victim->state = WorkerState::draining;
            --live;
        }
        const bool settled = std::none_of(workers_.begin(), workers_.end(), [](const Worker& w) {
            return w.state != WorkerState::ready;
        });
        if (settled && live == target_) {
            for (auto& w : workers_) {
                if (w.threads != threads_) {
                    w.state = WorkerState::draining;
                    w.replacing = true;
                    break;
                }
            }
        }
    }

    void oom_check() {
        const std::uint64_t used = memory_in_use();
        peak_memory_ = std::max(peak_memory_, used);
        if (used <= machine_.memory_limit_bytes || workers_.empty()) return;
        // The kernel's OOM killer picks the largest process (newest on a tie).
        auto victim = workers_.begin();
        for (auto it = workers_.begin(); it != workers_.end(); ++it) {
            if (process_memory(*it) >= process_memory(*victim)) victim = it;
        }
        for (const auto& r : victim->active) {
            current_.upstream_errors++;
            respond(502, r.from_client);
        }
        workers_.erase(victim);
        ++oom_kills_;
        // The supervisor restarts a crashed worker with exponential backoff.
        crash_backoff_s_ = now_s() - last_crash_s_ > 30 ? 1 : std::min(16.0, crash_backoff_s_ * 2);
        last_crash_s_ = now_s();
        next_spawn_s_ = now_s() + crash_backoff_s_;
    }

    void dispatch() {
        const double now = now_s();
        while (!queue_.empty() && now - queue_.front().arrival_s > front_.queue_timeout_s) {
            const bool from_client = queue_.front().from_client;
            queue_.pop_front();
            current_.timed_out++;
            respond(503, from_client);
        }
        while (!queue_.empty()) {
            Worker* best = nullptr;
            for (auto& w : workers_) {
                if (w.state != WorkerState::ready || w.active.size() >= w.threads) continue;
                if (!best || w.active.size() < best->active.size()) best = &w;
            }
            if (!best) break;
            Request r = queue_.front();
            queue_.pop_front();
            r.dispatch_s = now;
            current_.queue_wait_ms.push_back((now - r.arrival_s) * 1000);
            best->active.push_back(r);
        }
    }

    void progress() {
        // Processor sharing over the quota: every process demands one core per request in its CPU
        // phase (one core in all under a GIL); when demand exceeds the cores, all slow equally.
        double demand = 0;
        bool waiting_for_cpu = false;
        std::vector<unsigned> cpu_phase(workers_.size(), 0);
        for (std::size_t i = 0; i < workers_.size(); ++i) {
            for (const auto& r : workers_[i].active) {
                if (r.cpu_left_ms > 0) ++cpu_phase[i];
            }
            demand += app_.gil ? std::min(1u, cpu_phase[i]) : cpu_phase[i];
        }
        const double share = demand > machine_.cores ? machine_.cores / demand : 1.0;
        if (demand > machine_.cores) waiting_for_cpu = true;
        const double used_cores = std::min(demand, machine_.cores);
        cpu_core_ms_total_ += used_cores * kTickMs;
        second_cpu_core_ms_ += used_cores * kTickMs;
        second_cpu_stall_ms_ += waiting_for_cpu ? kTickMs : 0;
        second_memory_stall_ms_ +=
            memory_in_use() > 0.92 * static_cast<double>(machine_.memory_limit_bytes) ? kTickMs : 0;

        const double now = now_s();
        for (std::size_t i = 0; i < workers_.size(); ++i) {
            Worker& w = workers_[i];
            if (!w.active.empty()) current_.busy_ms[w.id] += kTickMs;
            const double per_request =
                share * (app_.gil && cpu_phase[i] > 0 ? 1.0 / cpu_phase[i] : 1.0) * kTickMs;
            w.cpu_s += per_request * cpu_phase[i] / 1000.0;
            for (std::size_t k = 0; k < w.active.size();) {
                Request& r = w.active[k];
                if (r.cpu_left_ms > 0) {
                    r.cpu_left_ms -= per_request;
                } else {
                    r.wait_left_ms -= kTickMs;
                }
                if (r.cpu_left_ms <= 1e-9 && r.wait_left_ms <= 1e-9) {
                    current_.service_ms.push_back((now + kTickMs / 1000 - r.dispatch_s) * 1000);
                    current_.total_ms.push_back((now + kTickMs / 1000 - r.arrival_s) * 1000);
                    current_.served[w.id]++;
                    ++w.served;
                    ++served_total_;
                    respond(200, r.from_client);
                    w.active[k] = w.active.back();
                    w.active.pop_back();
                } else {
                    ++k;
                }
            }
        }
    }

    void account() {
        double inflight = 0;
        unsigned ready = 0;
        for (const auto& w : workers_) {
            inflight += static_cast<double>(w.active.size());
            if (w.state == WorkerState::ready) ++ready;
        }
        const auto queued = static_cast<double>(queue_.size());
        current_.inflight_integral += inflight * kTickMs;
        current_.queue_integral += queued * kTickMs;
        current_.inflight_max = std::max(current_.inflight_max, inflight);
        current_.queue_max = std::max(current_.queue_max, queued);
        current_.min_ready = std::min(current_.min_ready, ready);
        current_.ms += kTickMs;
    }

    void end_second() {
        last_second_cpu_utilisation_ = second_cpu_core_ms_ / (machine_.cores * 1000.0);
        // PSI avg10 is an exponentially decaying average over 10 s (kernel psi.c).
        const double decay = 1 - std::exp(-1.0 / 10.0);
        cpu_psi_avg10_ += decay * (second_cpu_stall_ms_ / 10.0 - cpu_psi_avg10_);
        memory_psi_avg10_ += decay * (second_memory_stall_ms_ / 10.0 - memory_psi_avg10_);
        second_cpu_core_ms_ = second_cpu_stall_ms_ = second_memory_stall_ms_ = 0;
        buckets_.push_back(std::move(current_));
        current_ = Bucket{};
        while (buckets_.size() > static_cast<std::size_t>(front_.window_s)) buckets_.pop_front();
    }

    void tick() {
        generate_arrivals();
        supervise();
        oom_check();
        dispatch();
        progress();
        dispatch();  // slots freed this tick serve the queue at once
        account();
        ++tick_;
        if (tick_ % 1000 == 0) end_second();
    }

    static Percentiles percentiles(std::vector<double> v) {
        Percentiles p;
        if (v.empty()) return p;
        std::sort(v.begin(), v.end());
        auto rank = [&](double q) {
            const auto r = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size())));
            return v[std::clamp<std::size_t>(r, 1, v.size()) - 1];
        };
        p.p50_ms = rank(0.5);
        p.p95_ms = rank(0.95);
        p.p99_ms = rank(0.99);
        double sum = 0;
        for (double x : v) sum += x;
        p.mean_ms = sum / static_cast<double>(v.size());
        return p;
    }

    [[nodiscard]] WindowStats window_stats() const {
        WindowStats w;
        std::vector<double> waits, services, totals;
        double ms = 0, inflight = 0, queued = 0;
        w.min_ready = std::numeric_limits<unsigned>::max();
        std::map<unsigned, double> busy;
        std::map<unsigned, std::uint64_t> served;
        std::uint64_t arrivals = 0;
        for (const auto& b : buckets_) {
            w.completed += b.completed;
            arrivals += b.arrivals;
            waits.insert(waits.end(), b.queue_wait_ms.begin(), b.queue_wait_ms.end());
            services.insert(services.end(), b.service_ms.begin(), b.service_ms.end());
            totals.insert(totals.end(), b.total_ms.begin(), b.total_ms.end());
            ms += b.ms;
            inflight += b.inflight_integral;
            queued += b.queue_integral;
            w.inflight_max = std::max(w.inflight_max, b.inflight_max);
            w.queue_length_max = std::max(w.queue_length_max, b.queue_max);
            w.min_ready = std::min(w.min_ready, b.min_ready);
            for (const auto& [code, n] : b.codes) w.codes[code] += n;
            w.rejected_queue_full += b.rejected_full;
            w.timed_out_in_queue += b.timed_out;
            w.upstream_errors += b.upstream_errors;
            for (const auto& [id, v] : b.busy_ms) busy[id] += v;
            for (const auto& [id, n] : b.served) served[id] += n;
        }
        if (w.min_ready == std::numeric_limits<unsigned>::max()) w.min_ready = 0;
        w.window = Duration(static_cast<Duration::rep>(ms));
        if (ms > 0) {
            w.rate_rps = static_cast<double>(w.completed) * 1000.0 / ms;
            w.arrival_rps = static_cast<double>(arrivals) * 1000.0 / ms;
            w.inflight_mean = inflight / ms;
            w.queue_length_mean = queued / ms;
        }
        w.queue_wait = percentiles(std::move(waits));
        w.service = percentiles(std::move(services));
        w.total = percentiles(std::move(totals));
        for (const auto& [id, b] : busy) {
            w.workers.push_back({id, ms > 0 ? b / ms : 0, served.count(id) ? served.at(id) : 0});
        }
        return w;
    }

    MachineModel machine_;
    AppModel app_;
    LoadModel load_;
    FrontModel front_;
    std::mt19937_64 rng_;

    std::int64_t tick_ = 0;
    unsigned target_ = 0;
    unsigned threads_ = 1;
    unsigned next_id_ = 1;
    std::vector<Worker> workers_;
    std::deque<Request> queue_;
    unsigned clients_idle_ = 0;
    unsigned clients_busy_ = 0;
    std::int64_t rate_second_ = -1;
    double rate_now_ = 0;

    double next_spawn_s_ = 0;
    double crash_backoff_s_ = 1;
    double last_crash_s_ = -1e9;
    std::uint64_t oom_kills_ = 0;
    std::uint64_t peak_memory_ = 0;
    std::uint64_t served_total_ = 0;
    std::uint64_t accepted_total_ = 0;
    std::uint64_t failed_total_ = 0;

    double cpu_core_ms_total_ = 0;
    double second_cpu_core_ms_ = 0;
    double second_cpu_stall_ms_ = 0;
    double second_memory_stall_ms_ = 0;
    double last_second_cpu_utilisation_ = 0;
    double cpu_psi_avg10_ = 0;
    double memory_psi_avg10_ = 0;

    Bucket current_;
    std::deque<Bucket> buckets_;  // the last window_s complete seconds
};

}  // namespace tuner::sim
