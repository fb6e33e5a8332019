// The worker controller: each control cycle turns a Snapshot into a Plan for the pool's two knobs,
// workers.count and workers.threads (DESIGN "Policies" 1–3). Explicit state,
// no I/O and no clock of its own: time is snapshot.taken_at, so tests drive a simulated clock.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "model/config.hpp"
#include "model/decision.hpp"
#include "model/snapshot.hpp"
#include "policies/capacity_saturation.hpp"
#include "policies/cpu_knee.hpp"
#include "policies/littles_law.hpp"
#include "policies/process_memory.hpp"
#include "policies/scale_down.hpp"
#include "policies/worker_signals.hpp"

namespace tuner::policies {

class WorkerController {
public:
    explicit WorkerController(const Config& config);

    // SIGHUP: new bounds, mode and timers; learned state (memory per thread count, throughput
    // per shape, the knee) is kept. A pool outside new bounds is clamped on the next cycle.
    void reconfigure(const Config& config);

    // The database connection budget's cap on processes (from the DB pool policy); unset = none.
    // Like the memory ceiling it caps processes, and lets threads carry what processes cannot.
    void set_max_processes_by_db(std::optional<unsigned> max_processes);

    // One control cycle. Decisions only for knobs whose value changes (old = the pool's current
    // target and threads from snapshot.pool), sharing one plan_id; plan.notes says what the
    // controller saw but did not act on (a cap that holds growth, a knee released).
    Plan decide(const Snapshot& snapshot);

    // The seed formula's inputs at the per-process memory the controller enforces (its estimate
    // at the pool's thread count, measurements held at their highest): seed_formula() of them
    // is the memory ceiling /performance, /metrics and the database policy report.
    [[nodiscard]] SeedInputs ceiling_inputs(const Snapshot& snapshot) const;

    // The most worker processes of `threads` threads memory holds at once: the memory ceiling,
    // and no more than fit under the limit minus the headroom beside what else the cgroup holds
    // now (its unreclaimable memory less the workers' trees, by PSS where measured, else RSS);
    // unset when no memory limit applies.
    [[nodiscard]] std::optional<unsigned> max_processes(const Snapshot& snapshot,
                                                        unsigned threads) const;

    // What the controller believes now: targets, need, memory ceiling per thread count, memory
    // per thread count, throughput per shape and the knee, cooldown timers. For /performance.
    [[nodiscard]] nlohmann::json explain() const;

    // The last cycle's capacity saturation: the mode's unclamped wish (the need, 2 × cores + 1,
    // workers.count) over min(memory ceiling, database cap, workers.max) at the pool's threads.
    [[nodiscard]] const CapacitySaturation& saturation() const { return saturation_; }

private:
    struct Proposal {
        unsigned workers = 0;
        unsigned threads = 1;
        std::string rule;
        std::string reason;
        nlohmann::json inputs = nlohmann::json::object();  // rule-specific numbers
    };
    struct Cycle;  // what one decide() computed, shared by the rules (defined in the .cpp)

    std::optional<Proposal> decide_fixed(const Cycle& c);
    std::optional<Proposal> decide_formula(const Cycle& c);
    std::optional<Proposal> decide_adaptive(const Cycle& c);
    std::optional<Proposal> seed(const Cycle& c);
    std::optional<Proposal> memory_rules(const Cycle& c);
    std::optional<Proposal> bounds_rule(const Cycle& c);
    std::optional<Proposal> knee_rule(const Cycle& c);
    std::optional<Proposal> threads_rule(const Cycle& c);
    std::optional<Proposal> growth_rule(const Cycle& c);
    std::optional<Proposal> scale_down_rule(const Cycle& c);

    [[nodiscard]] unsigned process_cap(const Snapshot& snapshot, unsigned threads) const;
    [[nodiscard]] SeedResult ceiling(const Snapshot& snapshot, unsigned threads) const;
    [[nodiscard]] std::optional<double> growth_slot_limit(const Cycle& c) const;
    [[nodiscard]] std::optional<unsigned> memory_fit(const Cycle& c, unsigned threads) const;
    [[nodiscard]] std::optional<std::string> settling_hold(const Cycle& c) const;
    [[nodiscard]] std::optional<std::string> growth_hold(const Cycle& c) const;
    // Why `processes` may not run now for lack of memory evidence, if so: nothing measured yet,
    // or the count at which memory pressure came, with processes as large as then.
    [[nodiscard]] std::optional<std::string> memory_hold(const Cycle& c, unsigned processes) const;
    // When threads cannot change and requests mostly wait: a note for the growth reason that
    // workers.threads_max would carry `target` processes' load with fewer; else "".
    [[nodiscard]] std::string threads_hint(const Cycle& c, unsigned target) const;
    [[nodiscard]] unsigned threads_min() const;
    [[nodiscard]] unsigned threads_max() const;
    Plan make_plan(const Cycle& c, const std::optional<Proposal>& proposal);

    Config config_;
    std::optional<unsigned> max_processes_by_db_;
    SignalTracker signals_;
    ProcessMemoryModel memory_;
    KneeDetector knee_;
    ScaleDownGovernor scale_down_;

    bool seeded_ = false;
    std::uint64_t plans_ = 0;
    std::optional<unsigned> seen_target_;  // the pool's target at the previous cycle
    std::optional<unsigned> seen_threads_;
    std::optional<Clock::time_point> resized_at_;
    std::optional<Clock::time_point> threads_changed_at_;
    std::optional<Clock::time_point> queue_since_;    // since when a queue matters (any state)
    std::optional<Clock::time_point> traffic_since_;  // since when requests arrive (after idle)
    // The processes the CPU work asked for, held at its highest for a while: the window's demand
    // lags and wobbles, and each change of it would roll every process over.
    unsigned cpu_processes_ = 1;
    Clock::time_point cpu_processes_at_{};
    // The last memory pressure: how many processes of what size ran when it came. Growing back to
    // that many waits for evidence (smaller processes, a higher limit), not for a fixed time.
    struct PressureMark {
        unsigned processes = 0;
        std::uint64_t per_process_bytes = 0;
        std::uint64_t line_bytes = 0;
        Clock::time_point at{};
    };
    std::optional<PressureMark> pressure_mark_;
    std::optional<Clock::time_point> formula_higher_since_;
    // The last growth was bought to serve a backlog: once the backlog is gone the capacity is
    // returned after the cooldown, without waiting for the utilisation to leave the dead band.
    bool backlog_growth_ = false;
    std::string last_note_;  // the kinds of note said last cycle, "key;key;"

    // For explain(): the last cycle's picture.
    Snapshot last_snapshot_;
    WorkerSignals last_signals_;
    WorkerNeed last_need_;
    std::optional<Proposal> last_proposal_;
    CapacitySaturation saturation_;
};

}  // namespace tuner::policies
