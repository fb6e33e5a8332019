// The (processes × threads) pair planner (see pair_planner.hpp).
#include "policies/pair_planner.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "policies/cpu_knee.hpp"
#include "policies/reason_text.hpp"
#include "policies/registry.hpp"

namespace tuner::policies {
namespace {

unsigned ceil_div(double value, unsigned by) {
    return static_cast<unsigned>(std::max(0.0, std::ceil(value / std::max(1u, by) - 1e-9)));
}

bool contended(const PairInputs& in) {
    return in.cpu_utilisation >= kCpuSaturated && in.service_ratio >= kContentionRatio;
}

std::optional<double> measured(const PairInputs& in, const PoolShape& shape) {
    return in.measured_rps ? in.measured_rps(shape) : std::nullopt;
}

std::string throughput_text(const PoolShape& a, double a_rps, const PoolShape& b, double b_rps) {
    return to_string(a) + " served " + text::rps(a_rps) + ", " + to_string(b) + " " +
           text::rps(b_rps);
}

std::optional<PairPlan> raise_threads(const PairInputs& in, std::string* kept) {
    const PoolShape& cur = in.current;
    if (cur.threads >= in.threads_max || in.wait_share < kThreadsWaitShare) return std::nullopt;
    if (contended(in)) return std::nullopt;  // more concurrency would only queue at the CPU
    const unsigned cap_now = in.process_cap(cur.threads);
    // Only when processes cannot carry the need: they are at their cap and it is not enough.
    if (cur.processes < cap_now || in.slots_needed <= static_cast<double>(cap_now * cur.threads)) {
        return std::nullopt;
    }
    const double wanted = std::min(in.slots_needed, in.slot_limit.value_or(in.slots_needed));
    if (wanted <= cur.slots()) return std::nullopt;

    // The fewest threads whose capped processes carry `wanted`; failing that, the most capacity.
    PoolShape best = cur;
    for (unsigned t = cur.threads + 1; t <= in.threads_max; ++t) {
        const unsigned processes = std::min(in.process_cap(t), std::max(1u, ceil_div(wanted, t)));
        const PoolShape shape{std::max(1u, processes), t};
        if (shape.slots() > best.slots()) best = shape;
        if (static_cast<double>(shape.slots()) >= wanted) break;
    }
    if (best.threads == cur.threads) return std::nullopt;
    // Back to a shape that was measured under this load and served no more: the need says grow,
    // the throughput says it does not help (after threads_cpu_contention took them back, say).
    const auto cur_rps = measured(in, cur);
    const auto best_rps = measured(in, best);
    if (cur_rps && best_rps && *best_rps < *cur_rps * (1 + kThreadsRaiseGain)) {
        if (kept) {
            *kept = fmt::format("threads kept at {}: {} (less than +{})", cur.threads,
                                throughput_text(best, *best_rps, cur, *cur_rps),
                                text::percent(kThreadsRaiseGain));
        }
        return std::nullopt;
    }

    PairPlan plan{best, rule::threads_wait_share, ""};
    plan.reason = in.process_cap_text + "; wait share " + text::percent(in.wait_share) + ", need " +
                  text::number(in.slots_needed) + " concurrent";
    if (in.slot_limit && *in.slot_limit < in.slots_needed) {
        plan.reason += " (growth limited to " + text::number(*in.slot_limit) + " this step)";
    }
    plan.reason +=
        fmt::format(" → threads {} → {}, {}", cur.threads, best.threads, to_string(best));
    return plan;
}

// Any thread count: the shape that carries `wanted` with the fewest processes, and at least the
// processes the CPU work asks for, within each thread count's process cap.
PoolShape fewest_processes(const PairInputs& in, double wanted) {
    const unsigned for_cpu = std::max(1u, in.processes_for_cpu);
    unsigned processes = std::max(for_cpu, ceil_div(wanted, in.threads_max));
    unsigned threads = std::clamp(ceil_div(wanted, processes), in.threads_min, in.threads_max);
    processes = std::max(processes, ceil_div(wanted, threads));
    const unsigned cap = std::max(1u, in.process_cap(threads));
    if (processes > cap) {
        processes = cap;
        threads = std::clamp(ceil_div(wanted, processes), in.threads_min, in.threads_max);
        processes = std::min(processes, std::max(1u, in.process_cap(threads)));
    }
    return {std::max(1u, processes), threads};
}

// Not capped: the current thread count would need far more processes than the shape with the
// fewest (36 × 1 where 4 × 9 carry the same), or fewer than the CPU work asks for (2 × 16 where
// the GIL wants 4 processes).
std::optional<PairPlan> reshape(const PairInputs& in, std::string* kept) {
    const PoolShape& cur = in.current;
    if (in.wait_share < kThreadsWaitShare || contended(in)) return std::nullopt;
    const double need = std::max(in.slots_needed, in.slots_present);
    const double wanted =
        std::max(std::min(need, in.slot_limit.value_or(need)), static_cast<double>(cur.slots()));
    const PoolShape best = fewest_processes(in, wanted);
    if (best.threads == cur.threads) return std::nullopt;
    const unsigned for_cpu = std::max(1u, in.processes_for_cpu);
    const unsigned at_current = std::max(for_cpu, ceil_div(wanted, cur.threads));
    const bool cannot_carry = at_current > in.process_cap(cur.threads);
    const bool too_many =
        static_cast<double>(at_current) >= kReshapeProcessRatio * best.processes + 1;
    const bool too_few = cur.processes < for_cpu && best.processes > cur.processes;
    if (!cannot_carry && !too_many && !too_few) return std::nullopt;
    // Needed now: the current threads cannot carry the load, a load step, or processes stuck at a
    // core each on their GIL. Else only an improvement: not right after the last change, and not
    // on a transient need.
    const bool needed = cannot_carry || in.urgent || (too_few && in.processes_saturated);
    if (!needed && (!in.optional_change_allowed || in.need_in_transition)) return std::nullopt;
    const auto cur_rps = measured(in, cur);
    const auto best_rps = measured(in, best);
    if (cur_rps && best_rps && *best_rps < *cur_rps * (1 + kThreadsKeepGain)) {
        if (kept) {
            *kept = fmt::format("shape kept at {}: {} (less than +{})", to_string(cur),
                                throughput_text(best, *best_rps, cur, *cur_rps),
                                text::percent(kThreadsKeepGain));
        }
        return std::nullopt;
    }
    PairPlan plan{best, rule::threads_wait_share, ""};
    plan.reason = fmt::format("wait share {}, need {} concurrent; ", text::percent(in.wait_share),
                              text::number(wanted));
    if (!in.processes_for_cpu_text.empty()) plan.reason += in.processes_for_cpu_text + "; ";
    if (cannot_carry) {
        plan.reason += fmt::format("{} threads would need {} processes, {} fit ({})", cur.threads,
                                   at_current, in.process_cap(cur.threads), in.process_cap_text);
    } else if (too_many) {
        plan.reason += fmt::format("{} threads would need {} processes", cur.threads, at_current);
    } else {
        plan.reason += fmt::format("{} processes are fewer than the CPU work needs", cur.processes);
    }
    plan.reason +=
        fmt::format(" → threads {} → {}, {}", cur.threads, best.threads, to_string(best));
    return plan;
}

std::optional<PairPlan> lower_threads(const PairInputs& in, std::string* kept) {
    const PoolShape& cur = in.current;
    if (cur.threads <= in.threads_min || !in.cpu_useful_concurrency) return std::nullopt;
    if (!contended(in) || !in.optional_change_allowed) return std::nullopt;
    const double useful = *in.cpu_useful_concurrency;
    // Latency grew, but does the concurrency pay? Judge the current shape by its own throughput
    // first. Serving at the CPU's capacity it wastes nothing: only a concurrency far beyond what
    // the CPU can use (kCapacitySlack) comes down, and to no less than that.
    std::optional<double> cur_rps;
    if (in.measured_rps) {
        cur_rps = measured(in, cur);
        if (!cur_rps) return std::nullopt;  // not measured yet: the next cycles will tell
    }
    const bool at_capacity =
        cur_rps && in.cpu_bound_rps && *cur_rps >= kCpuCapacityShare * *in.cpu_bound_rps;
    const double slack = at_capacity ? kCapacitySlack : kContentionSlack;
    if (static_cast<double>(cur.slots()) <= useful * slack) {
        if (at_capacity && kept) {
            *kept = fmt::format(
                "threads kept at {} despite contention: {} serves {}, ≥ {} of the {} the CPU can "
                "serve, and {} concurrent ≤ {}× the {} it can use; fewer threads would move the "
                "wait from the cores to the queue",
                cur.threads, to_string(cur), text::rps(*cur_rps), text::percent(kCpuCapacityShare),
                text::rps(*in.cpu_bound_rps), cur.slots(), text::number(kCapacitySlack, 0),
                text::number(useful));
        }
        return std::nullopt;
    }
    const unsigned threads = std::clamp(ceil_div(useful * (at_capacity ? slack : 1), cur.processes),
                                        in.threads_min, cur.threads);
    if (threads >= cur.threads) return std::nullopt;
    const PoolShape lower{cur.processes, threads};
    if (cur_rps) {
        const auto lower_rps = measured(in, lower);
        if (lower_rps && *cur_rps > *lower_rps * (1 + kThreadsKeepGain)) {
            if (kept) {
                *kept = fmt::format("threads kept at {} despite contention: {}", cur.threads,
                                    throughput_text(cur, *cur_rps, lower, *lower_rps));
            }
            return std::nullopt;
        }
    }

    PairPlan plan{lower, rule::threads_cpu_contention, ""};
    plan.reason = fmt::format("CPU {} of quota, service time {}× uncontended; ",
                              text::percent(in.cpu_utilisation), text::number(in.service_ratio, 1));
    if (cur_rps && in.cpu_bound_rps) {
        plan.reason += fmt::format("{} serves {} of the {} the CPU can serve; ", to_string(cur),
                                   text::rps(*cur_rps), text::rps(*in.cpu_bound_rps));
    }
    plan.reason += fmt::format("{} concurrent > {} the CPU can use → threads {} → {}", cur.slots(),
                               text::number(useful), cur.threads, threads);
    return plan;
}

}  // namespace

unsigned processes_for_cpu(double cores_wanted, bool multi_core_processes) {
    if (multi_core_processes || cores_wanted <= 0) return 1;
    return std::max(1u, static_cast<unsigned>(std::ceil(cores_wanted / kProcessCpuShare - 1e-9)));
}

std::optional<PairPlan> plan_pair(const PairInputs& in, std::string* kept) {
    if (in.threads_max <= in.threads_min || !in.process_cap) return std::nullopt;
    if (auto lower = lower_threads(in, kept)) return lower;
    if (auto raise = raise_threads(in, kept)) return raise;
    if (kept && !kept->empty()) return std::nullopt;
    return reshape(in, kept);
}

}  // namespace tuner::policies
