// The pool's reconcile rules (see reconcile.hpp).
#include "server/reconcile.hpp"

#include <algorithm>
#include <limits>

namespace tuner::server {

const char* to_string(Lifecycle phase) {
    switch (phase) {
        case Lifecycle::starting:
            return "starting";
        case Lifecycle::ready:
            return "ready";
        case Lifecycle::recycle_due:
            return "recycle_due";
        case Lifecycle::retiring:
            return "retiring";
        case Lifecycle::draining:
            return "draining";
        case Lifecycle::stopping:
            return "stopping";
        case Lifecycle::start_failed:
            return "start_failed";
        case Lifecycle::exited:
            return "exited";
    }
    return "?";
}

WorkerState public_state(Lifecycle phase) {
    switch (phase) {
        case Lifecycle::starting:
            return WorkerState::starting;
        case Lifecycle::ready:
        case Lifecycle::recycle_due:
        case Lifecycle::retiring:
            return WorkerState::ready;
        case Lifecycle::draining:
            return WorkerState::draining;
        case Lifecycle::stopping:
        case Lifecycle::start_failed:
        case Lifecycle::exited:
            return WorkerState::stopping;
    }
    return WorkerState::stopping;
}

bool counts_towards_target(Lifecycle phase) {
    return phase == Lifecycle::starting || phase == Lifecycle::ready ||
           phase == Lifecycle::recycle_due;
}

bool holds_memory(Lifecycle phase) {
    return phase != Lifecycle::exited;
}

bool takes_requests(Lifecycle phase) {
    return phase == Lifecycle::ready || phase == Lifecycle::recycle_due ||
           phase == Lifecycle::retiring;
}

bool exit_expected(Lifecycle phase) {
    return phase == Lifecycle::draining || phase == Lifecycle::stopping;
}

namespace {

using Worker = ReconcileInput::Worker;

// Scale-down order: starting workers first (youngest first), then idle ready ones, then the
// youngest busy ones (the oldest have warm caches and long requests in flight).
std::vector<const Worker*> scale_down_order(const ReconcileInput& in) {
    std::vector<const Worker*> candidates;
    for (const auto& w : in.workers) {
        if (counts_towards_target(w.phase)) candidates.push_back(&w);
    }
    std::sort(candidates.begin(), candidates.end(), [](const Worker* a, const Worker* b) {
        const bool a_starting = a->phase == Lifecycle::starting;
        const bool b_starting = b->phase == Lifecycle::starting;
        if (a_starting != b_starting) return a_starting;
        const bool a_idle = a->inflight == 0, b_idle = b->inflight == 0;
        if (a_idle != b_idle) return a_idle;
        return a->spawned_at > b->spawned_at;
    });
    return candidates;
}

std::string threads_reason(const Worker& w, unsigned threads) {
    return "threads " + std::to_string(w.threads) + " → " + std::to_string(threads);
}

// Workers at another thread count than the pool's: replaced at once, as many as memory has room
// for beyond what is spawned anyway, each replacement first. True when it planned any.
// Processes memory has room for beyond the live ones and those this plan spawns already.
unsigned room_for_more(const ReconcileInput& in, const ReconcilePlan& plan) {
    if (!in.max_processes) return std::numeric_limits<unsigned>::max();
    unsigned live = plan.spawn;
    for (const auto& w : in.workers) live += holds_memory(w.phase) ? 1 : 0;
    return *in.max_processes > live ? *in.max_processes - live : 0;
}

bool plan_parallel_thread_change(const ReconcileInput& in, ReconcilePlan& plan) {
    if (!plan.drain.empty() || !plan.kill.empty()) return false;
    unsigned spare = room_for_more(in, plan);
    for (const auto& w : in.workers) {
        if (spare == 0) break;
        const bool in_service = w.phase == Lifecycle::ready || w.phase == Lifecycle::recycle_due;
        if (!in_service || w.threads == in.threads) continue;
        plan.replace.push_back({w.id, true, threads_reason(w, in.threads)});
        plan.spawn += 1;
        spare -= 1;
    }
    return !plan.replace.empty();
}

// The next worker to replace when memory has no room for more at once: one marked for
// recycling, else one with the wrong thread count, else one of an older generation during a
// rolling restart. Nothing while a replacement is under way.
void plan_replacement(const ReconcileInput& in, unsigned counted, ReconcilePlan& plan) {
    const bool replacing = std::any_of(in.workers.begin(), in.workers.end(), [](const Worker& w) {
        return w.phase == Lifecycle::starting || w.phase == Lifecycle::retiring;
    });
    if (replacing || counted != in.target || !plan.drain.empty() || !plan.kill.empty()) return;
    const Worker* chosen = nullptr;
    std::string reason;
    for (const auto& w : in.workers) {  // in id order: the oldest first
        if (w.phase == Lifecycle::recycle_due) {
            chosen = &w;
        } else if (w.phase == Lifecycle::ready && w.threads != in.threads) {
            chosen = &w;
            reason = threads_reason(w, in.threads);
        }
        if (chosen) break;
    }
    if (!chosen && in.restart_generation) {
        for (const auto& w : in.workers) {
            if (w.phase == Lifecycle::ready && w.generation < *in.restart_generation) {
                chosen = &w;
                reason = "restart: generation " + std::to_string(w.generation) + " → " +
                         std::to_string(*in.restart_generation);
                break;
            }
        }
    }
    if (!chosen) return;
    const bool at_ceiling = room_for_more(in, plan) == 0;
    ReconcilePlan::Replace replace{chosen->id, !at_ceiling, std::move(reason)};
    if (replace.replacement_first) {
        plan.spawn += 1;
    } else {
        plan.drain.push_back(chosen->id);
    }
    plan.replace.push_back(std::move(replace));
}

}  // namespace

Duration crash_backoff(unsigned failures) {
    const unsigned doublings = std::min(failures > 0 ? failures - 1 : 0u, 5u);
    return std::min<Duration>(std::chrono::seconds(30), std::chrono::seconds(1LL << doublings));
}

CrashVerdict judge_crash(SlotHistory& slot, bool served, Clock::time_point now) {
    ++slot.restarts;
    slot.deaths.push_back(now);
    while (!slot.deaths.empty() && now - slot.deaths.front() > kRapidDeathWindow) {
        slot.deaths.pop_front();
    }
    if (!served) {
        ++slot.failed_starts;
        return {
            crash_backoff(slot.failed_starts),
            "died before serving a request (" + std::to_string(slot.failed_starts) + " in a row)"};
    }
    slot.failed_starts = 0;
    if (slot.deaths.size() >= kRapidDeaths) {
        const auto n = static_cast<unsigned>(slot.deaths.size());
        return {crash_backoff(n - kRapidDeaths + 1),
                std::to_string(n) + " deaths of this slot within " +
                    std::to_string(kRapidDeathWindow.count()) + "s"};
    }
    return {Duration{0}, "it was ready and served: replaced at once"};
}

ReconcilePlan plan_reconcile(const ReconcileInput& in) {
    ReconcilePlan plan;
    unsigned counted = 0, starting = 0;
    for (const auto& w : in.workers) {
        counted += counts_towards_target(w.phase) ? 1 : 0;
        starting += w.phase == Lifecycle::starting ? 1 : 0;
    }

    if (counted < in.target) {
        // Slots in backoff hold their capacity back; every other missing worker starts now.
        unsigned held = 0;
        std::optional<Clock::time_point> earliest;
        for (const auto& not_before : in.vacant_slots) {
            if (not_before <= in.now) continue;
            ++held;
            if (!earliest || not_before < *earliest) earliest = not_before;
        }
        const unsigned missing = in.target - counted;
        // A worker on its way out still holds its memory: the new one waits for it to go.
        const unsigned room = room_for_more(in, plan);  // nothing spawned yet
        plan.spawn = std::min(missing > held ? missing - held : 0, room);
        if (earliest) {
            plan.retry_after = std::chrono::duration_cast<Duration>(*earliest - in.now) +
                               std::chrono::milliseconds(1);
        }
    } else if (counted > in.target) {
        const auto order = scale_down_order(in);
        for (unsigned i = 0; i < counted - in.target && i < order.size(); ++i) {
            (order[i]->phase == Lifecycle::starting ? plan.kill : plan.drain)
                .push_back(order[i]->id);
        }
    }

    // Replacements are ready: the workers they replace may go now.
    if (starting == 0 && counted >= in.target) {
        for (const auto& w : in.workers) {
            if (w.phase == Lifecycle::retiring) plan.drain.push_back(w.id);
        }
    }

    if (!plan_parallel_thread_change(in, plan)) plan_replacement(in, counted, plan);
    return plan;
}

}  // namespace tuner::server
