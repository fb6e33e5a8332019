// Least-in-flight dispatch with a bounded FIFO queue (see dispatcher.hpp).
#include "server/dispatcher.hpp"

#include <algorithm>

namespace tuner::server {

Dispatcher::Dispatcher(std::size_t max_queue, Duration window)
    : max_queue_(max_queue), stats_(window) {}

void Dispatcher::set_callbacks(Callbacks callbacks) {
    std::lock_guard lock(mutex_);
    callbacks_ = std::move(callbacks);
}

void Dispatcher::set_max_queue(std::size_t max_queue) {
    std::lock_guard lock(mutex_);
    max_queue_ = max_queue;
}

void Dispatcher::set_backlog(unsigned backlog) {
    backlog_.store(backlog, std::memory_order_relaxed);
}

void Dispatcher::set_window(Duration window) {
    std::lock_guard lock(mutex_);
    stats_.set_window(window, Clock::now());
}

void Dispatcher::levels_changed_locked(Clock::time_point now) {
    unsigned ready = 0;
    for (const auto& [id, b] : backends_) ready += b->accepting ? 1 : 0;
    stats_.set_levels(queue_.size() + ahead_, inflight_ - ahead_, ready, now);
}

void Dispatcher::add(BackendPtr backend) {
    std::lock_guard lock(mutex_);
    const auto now = Clock::now();
    backend->accepting = true;
    stats_.worker_busy_changed(backend->id, backend->inflight > 0, now);
    backends_[backend->id] = std::move(backend);
    levels_changed_locked(now);
    grant_waiters_locked(now);
}

bool Dispatcher::stop_accepting(unsigned id) {
    std::lock_guard lock(mutex_);
    auto it = backends_.find(id);
    if (it == backends_.end()) return true;
    it->second->accepting = false;
    // A retry waiting for another worker may now find the one it avoided is the only one left.
    grant_waiters_locked(Clock::now());
    return it->second->inflight == 0;
}

void Dispatcher::remove(unsigned id) {
    std::vector<std::unique_ptr<IdleConnection>> dropped;  // closed outside the lock
    {
        std::lock_guard lock(mutex_);
        auto it = backends_.find(id);
        if (it == backends_.end()) return;
        const auto now = Clock::now();
        it->second->accepting = false;
        dropped = std::move(it->second->idle);
        stats_.worker_removed(id, now);
        backends_.erase(it);
        grant_waiters_locked(now);  // as in stop_accepting: a waiting retry may fall back
    }
}

BackendPtr Dispatcher::pick_locked(unsigned avoid, const std::shared_ptr<AheadTicket>& ahead,
                                   Clock::time_point now) const {
    if (BackendPtr b = pick_within_locked(avoid, 0u, std::nullopt)) return b;
    // Every worker busy: one that may wait goes into a worker's backlog.
    if (const unsigned backlog = backlog_.load(std::memory_order_relaxed); ahead && backlog > 0)
        return pick_within_locked(avoid, backlog, now);
    return nullptr;
}

BackendPtr Dispatcher::pick_within_locked(unsigned avoid, unsigned beyond,
                                          std::optional<Clock::time_point> now) const {
    BackendPtr best;
    BackendPtr avoided;
    for (const auto& [id, b] : backends_) {
        if (!b->accepting || b->inflight >= b->capacity + beyond) continue;
        // Beyond its threads only while it turns requests over (see kBacklogFreshness), and
        // never while a connection to it is parked: a thread-per-connection worker may be
        // reading that one and would not accept the new one.
        if (now && b->inflight >= b->capacity &&
            (*now - b->last_served > kBacklogFreshness || !b->idle.empty()))
            continue;
        if (id == avoid) {
            avoided = b;
            continue;
        }
        // Fewest in flight; among equals the one with the most free room (more threads).
        if (!best || b->inflight < best->inflight ||
            (b->inflight == best->inflight && b->capacity > best->capacity)) {
            best = b;
        }
    }
    if (best) return best;
    // A retry goes to another worker when there is one; if the failed worker is the only one
    // accepting, it is still better than failing the request.
    if (avoided) {
        for (const auto& [id, b] : backends_) {
            if (id != avoid && b->accepting) return nullptr;  // others exist, just busy: wait
        }
    }
    return avoided;
}

void Dispatcher::take_slot_locked(const BackendPtr& b, const std::shared_ptr<AheadTicket>& ahead,
                                  Clock::time_point now) {
    if (ahead) ahead->reset();
    if (b->inflight >= b->capacity && ahead) {
        ahead->linked = true;
        b->ahead.push_back(ahead);
        ++ahead_;
    }
    if (b->inflight++ == 0) stats_.worker_busy_changed(b->id, true, now);
    ++inflight_;
}

BackendPtr Dispatcher::grant_now_locked(unsigned avoid, const std::shared_ptr<AheadTicket>& ahead,
                                        Clock::time_point now) {
    // FIFO: nobody overtakes a queued request, except a retry (it already waited its turn).
    // Retries queue at the front and the others at the back, so a plain request is waiting
    // exactly when the back is one; retries waiting for another worker hold no one back.
    const bool plain_request_waiting = !queue_.empty() && queue_.back().avoid == 0;
    if (plain_request_waiting && avoid == 0) return nullptr;
    BackendPtr b = pick_locked(avoid, ahead, now);
    if (b) {
        take_slot_locked(b, ahead, now);
        levels_changed_locked(now);
    }
    return b;
}

BackendPtr Dispatcher::try_acquire(unsigned avoid, Clock::time_point now,
                                   const std::shared_ptr<AheadTicket>& ahead) {
    std::lock_guard lock(mutex_);
    return grant_now_locked(avoid, ahead, now);
}

AcquireStatus Dispatcher::acquire(Waiter w, BackendPtr& out, Clock::time_point now) {
    std::lock_guard lock(mutex_);
    if (BackendPtr b = grant_now_locked(w.avoid, w.ahead, now)) {
        out = std::move(b);
        return AcquireStatus::granted;
    }
    if (queue_.size() >= max_queue_ && w.avoid == 0) return AcquireStatus::queue_full;
    if (w.avoid != 0) {
        queue_.push_front(std::move(w));
    } else {
        queue_.push_back(std::move(w));
    }
    levels_changed_locked(now);
    return AcquireStatus::queued;
}

bool Dispatcher::cancel(std::uint64_t waiter_id, Clock::time_point now) {
    std::lock_guard lock(mutex_);
    auto it = std::find_if(queue_.begin(), queue_.end(),
                           [&](const Waiter& w) { return w.id == waiter_id; });
    if (it == queue_.end()) return false;
    queue_.erase(it);
    levels_changed_locked(now);
    return true;
}

void Dispatcher::grant_waiters_locked(Clock::time_point now) {
    for (auto it = queue_.begin(); it != queue_.end();) {
        BackendPtr b = pick_locked(it->avoid, it->ahead, now);
        if (!b) {
            if (it->avoid == 0) break;  // no room anywhere: the rest wait too
            ++it;                       // a retry waits for another worker; others may go
            continue;
        }
        take_slot_locked(b, it->ahead, now);
        Waiter w = std::move(*it);
        it = queue_.erase(it);
        w.grant(std::move(b));
    }
    levels_changed_locked(now);
}

void Dispatcher::release(const BackendPtr& backend, std::unique_ptr<IdleConnection> reusable,
                         bool served, Clock::time_point now,
                         const std::shared_ptr<AheadTicket>& ahead) {
    std::vector<std::unique_ptr<IdleConnection>> dropped;  // destroyed (closed) outside the lock
    {
        std::lock_guard lock(mutex_);
        if (backend->inflight > 0) {
            if (--backend->inflight == 0) stats_.worker_busy_changed(backend->id, false, now);
            --inflight_;
            if (ahead && ahead->linked) {
                // It ends without having started (the client left, the worker failed): it
                // frees no thread.
                auto& list = backend->ahead;
                list.erase(std::remove(list.begin(), list.end(), ahead), list.end());
                ahead->linked = false;
                --ahead_;
            } else if (!backend->ahead.empty()) {
                // A thread of this worker is free: the oldest request in its backlog starts.
                std::shared_ptr<AheadTicket> next = std::move(backend->ahead.front());
                backend->ahead.pop_front();
                next->linked = false;
                next->started.store(now.time_since_epoch().count(), std::memory_order_release);
                --ahead_;
            }
            // Parked and in-flight connections never outnumber the worker's threads: a
            // thread-per-connection server keeps a thread reading each parked keep-alive
            // connection, and one more in flight would wait in its backlog for good. Without a
            // backlog this always holds; with one, the connection that would break it is closed
            // (its thread then accepts the one waiting). An ahead request the worker took early
            // (an event loop, or a thread freed before tunerd saw the answer) is covered too.
            if (reusable && backend->idle.size() + backend->inflight >= backend->capacity)
                dropped.push_back(std::move(reusable));
        }
        if (served) {
            ++backend->served;
            backend->last_served = now;
            stats_.worker_served(backend->id, now);
        }
        if (reusable) {
            if (backend->accepting && backends_.count(backend->id)) {
                backend->idle.push_back(std::move(reusable));
            } else {
                dropped.push_back(std::move(reusable));
            }
        }
        if (backend->accepting) {
            if (backend->recycle_after != 0 && backend->served >= backend->recycle_after &&
                !backend->recycle_requested) {
                backend->recycle_requested = true;
                if (callbacks_.recycle_due) callbacks_.recycle_due(backend->id);
            }
            grant_waiters_locked(now);
        } else {
            levels_changed_locked(now);
            if (backend->inflight == 0) {
                // Idle connections of a draining worker serve no one: close them now.
                for (auto& c : backend->idle) dropped.push_back(std::move(c));
                backend->idle.clear();
                if (callbacks_.drained) callbacks_.drained(backend->id);
            }
        }
    }
}

std::unique_ptr<IdleConnection> Dispatcher::take_idle(const BackendPtr& backend) {
    std::lock_guard lock(mutex_);
    if (backend->idle.empty()) return nullptr;
    auto c = std::move(backend->idle.back());
    backend->idle.pop_back();
    return c;
}

void Dispatcher::drop_idle(const BackendPtr& backend, const IdleConnection* connection) {
    std::unique_ptr<IdleConnection> dropped;
    std::lock_guard lock(mutex_);
    auto& idle = backend->idle;
    auto it = std::find_if(idle.begin(), idle.end(),
                           [&](const auto& c) { return c.get() == connection; });
    if (it == idle.end()) return;
    dropped = std::move(*it);
    idle.erase(it);
}

void Dispatcher::record(const RequestRecord& record) {
    std::lock_guard lock(mutex_);
    stats_.record(record);
}

void Dispatcher::note_arrival(Clock::time_point now) {
    std::lock_guard lock(mutex_);
    stats_.note_arrival(now);
}

void Dispatcher::note_rejected(Clock::time_point now) {
    std::lock_guard lock(mutex_);
    stats_.note_rejected_queue_full(now);
}

void Dispatcher::note_retry() {
    std::lock_guard lock(mutex_);
    stats_.note_retry();
}

WindowStats Dispatcher::window(Clock::time_point now) {
    std::lock_guard lock(mutex_);
    return stats_.window(now);
}

CumulativeStats Dispatcher::cumulative() const {
    std::lock_guard lock(mutex_);
    return stats_.cumulative();
}

Dispatcher::Counts Dispatcher::counts() const {
    std::lock_guard lock(mutex_);
    Counts c;
    c.queued = queue_.size() + ahead_;
    c.inflight = inflight_ - ahead_;
    for (const auto& [id, b] : backends_) c.ready += b->accepting ? 1 : 0;
    return c;
}

std::uint64_t Dispatcher::served_by(unsigned id) const {
    std::lock_guard lock(mutex_);
    const auto it = backends_.find(id);
    return it == backends_.end() ? 0 : it->second->served;
}

std::map<unsigned, std::pair<unsigned, std::uint64_t>> Dispatcher::backend_load() const {
    std::lock_guard lock(mutex_);
    std::map<unsigned, std::pair<unsigned, std::uint64_t>> out;
    for (const auto& [id, b] : backends_) out[id] = {b->inflight, b->served};
    return out;
}

}  // namespace tuner::server
