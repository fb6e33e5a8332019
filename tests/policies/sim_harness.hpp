// Runs a WorkerController against the simulator, one control cycle per simulated second, applies
// its plans as the daemon would, and records the pool, throughput, decisions and notes.
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "policies/worker_controller.hpp"
#include "simulator.hpp"

namespace tuner::sim {

struct CyclePoint {
    double t_s = 0;
    unsigned workers = 0;  // the pool's target after this cycle's plan
    unsigned threads = 1;
    std::uint64_t served_total = 0;
    double cpu_utilisation = 0;
    std::uint64_t working_set_bytes = 0;
    double queue_wait_p95_ms = 0;
    std::size_t queue_length = 0;
};

class ControlledRun {
public:
    ControlledRun(Simulator& sim, policies::WorkerController& controller)
        : sim_(sim), controller_(controller) {}

    void run(double seconds) {
        const auto cycles = static_cast<int>(std::lround(seconds));
        for (int i = 0; i < cycles; ++i) {
            sim_.advance(1.0);
            Snapshot snapshot = sim_.snapshot();
            const bool pinned = sim_.now_s() <= pinned_until_s_;
            if (pinned) snapshot.pool.manual_target = snapshot.pool.target;
            const Plan plan = controller_.decide(snapshot);
            for (const auto& d : plan.decisions) {
                // Every decision: one plan_id per plan, a real change, old = the pool's value.
                const auto old_value = std::get<Count>(d.old_value).value;
                const auto new_value = std::get<Count>(d.new_value).value;
                if (plan.plan_id == 0 || d.plan_id != plan.plan_id) ++inconsistent_;
                if (old_value == new_value) ++inconsistent_;
                if (pinned) {  // the daemon logs it as overridden and does not act
                    overridden_.push_back(d);
                    continue;
                }
                if (d.knob == "workers.count") {
                    if (old_value != snapshot.pool.target) ++inconsistent_;
                    sim_.set_target(static_cast<unsigned>(new_value));
                } else if (d.knob == "workers.threads") {
                    if (old_value != snapshot.pool.threads) ++inconsistent_;
                    sim_.set_threads(static_cast<unsigned>(new_value));
                }
                decisions_.push_back(d);
                decision_times_.push_back(sim_.now_s());
                if (verbose_) {
                    std::printf("t=%5.0f %s %lld→%lld [%s] %s\n", sim_.now_s(), d.knob.c_str(),
                                static_cast<long long>(old_value),
                                static_cast<long long>(new_value), d.rule.c_str(),
                                d.reason.c_str());
                }
            }
            for (const auto& n : plan.notes) {
                notes_.push_back(n);
                if (verbose_) std::printf("t=%5.0f note: %s\n", sim_.now_s(), n.c_str());
            }
            CyclePoint p;
            p.t_s = sim_.now_s();
            p.workers = sim_.target();
            p.threads = sim_.threads();
            p.served_total = sim_.served_total();
            p.cpu_utilisation = snapshot.cpu.utilisation.value_or(0);
            p.working_set_bytes = snapshot.memory.working_set_bytes;
            p.queue_wait_p95_ms = snapshot.window.queue_wait.p95_ms;
            p.queue_length = sim_.queue_length();
            points_.push_back(p);
        }
    }

    void set_verbose(bool verbose) { verbose_ = verbose; }
    // An administrator's manual target pins the pool until then: decisions are not applied.
    void pin_until(double t_s) { pinned_until_s_ = t_s; }
    [[nodiscard]] const std::vector<Decision>& overridden() const { return overridden_; }

    [[nodiscard]] const std::vector<Decision>& decisions() const { return decisions_; }
    // The simulated second each of decisions() was made at.
    [[nodiscard]] const std::vector<double>& decision_times() const { return decision_times_; }
    [[nodiscard]] double first_time_of(std::string_view rule) const {
        for (std::size_t i = 0; i < decisions_.size(); ++i) {
            if (decisions_[i].rule == rule) return decision_times_[i];
        }
        return -1;
    }
    [[nodiscard]] const std::vector<std::string>& notes() const { return notes_; }
    [[nodiscard]] const std::vector<CyclePoint>& points() const { return points_; }
    [[nodiscard]] int inconsistent_decisions() const { return inconsistent_; }

    [[nodiscard]] std::vector<Decision> with_rule(std::string_view rule) const {
        std::vector<Decision> out;
        for (const auto& d : decisions_) {
            if (d.rule == rule) out.push_back(d);
        }
        return out;
    }

    // The pool's size at simulated second t (after that second's plan).
    [[nodiscard]] unsigned workers_at(double t_s) const { return point_at(t_s).workers; }
    [[nodiscard]] unsigned threads_at(double t_s) const { return point_at(t_s).threads; }

    [[nodiscard]] unsigned max_workers_between(double from_s, double to_s) const {
        unsigned out = 0;
        for (const auto& p : points_) {
            if (p.t_s > from_s && p.t_s <= to_s) out = std::max(out, p.workers);
        }
        return out;
    }

    // Requests served per second between two simulated times.
    [[nodiscard]] double throughput(double from_s, double to_s) const {
        const auto a = point_at(from_s).served_total;
        const auto b = point_at(to_s).served_total;
        return static_cast<double>(b - a) / (to_s - from_s);
    }

    // The first simulated second from which the pool stays within [lo, hi] until `until_s`.
    [[nodiscard]] double settled_from(unsigned lo, unsigned hi, double until_s) const {
        double since = -1;
        for (const auto& p : points_) {
            if (p.t_s > until_s) break;
            if (p.workers >= lo && p.workers <= hi) {
                if (since < 0) since = p.t_s;
            } else {
                since = -1;
            }
        }
        return since;
    }

    // The most reversals of the pool size's direction (grow→shrink or shrink→grow) in any
    // window of `window_s` simulated seconds.
    [[nodiscard]] int max_direction_changes(double window_s) const {
        std::vector<double> reversals;
        int last_sign = 0;
        for (std::size_t i = 0; i < decisions_.size(); ++i) {
            const auto& d = decisions_[i];
            if (d.knob != "workers.count") continue;
            const auto delta =
                std::get<Count>(d.new_value).value - std::get<Count>(d.old_value).value;
            const int sign = delta > 0 ? 1 : -1;
            if (last_sign != 0 && sign != last_sign) reversals.push_back(decision_times_[i]);
            last_sign = sign;
        }
        int most = 0;
        for (std::size_t i = 0; i < reversals.size(); ++i) {
            int n = 0;
            for (std::size_t j = i; j < reversals.size() && reversals[j] - reversals[i] < window_s;
                 ++j)
                ++n;
            most = std::max(most, n);
        }
        return most;
    }

private:
    [[nodiscard]] const CyclePoint& point_at(double t_s) const {
        for (const auto& p : points_) {
            if (p.t_s >= t_s - 1e-9) return p;
        }
        return points_.back();
    }

    Simulator& sim_;
    policies::WorkerController& controller_;
    std::vector<Decision> decisions_;
    std::vector<double> decision_times_;
    std::vector<std::string> notes_;
    std::vector<CyclePoint> points_;
    std::vector<Decision> overridden_;
    int inconsistent_ = 0;
    double pinned_until_s_ = -1;
    bool verbose_ = std::getenv("TUNER_SIM_VERBOSE") != nullptr;  // print every decision
};

}  // namespace tuner::sim
