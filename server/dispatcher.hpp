// The dispatcher decides which worker serves each request: the ready worker with the fewest
// requests in flight, never more than its threads at once; the rest wait in one bounded FIFO
// queue. It is the single lock of the front; request statistics are recorded under it.
// Independent of sockets, so the rules are unit-tested directly.
//
// Backlog (server.worker_backlog): while every worker is busy, a request that may be sent again
// (GET, HEAD, OPTIONS without a body: it survives the worker's death, exchange.hpp retries it)
// may be given to a worker beyond its threads, up to `backlog` more. It waits in the worker's
// own listen backlog or connection queue, so the worker takes it the moment it finishes one,
// with no round trip through tunerd in between (nginx leaves every waiting connection there).
// Its statistics stay those of a queued request: it holds an AheadTicket, and the request that
// frees a thread of that worker next "starts" it; queue wait runs until then, service after.
// Guards: only a worker that answered within the last kBacklogFreshness takes one (a worker
// stuck on a slow request would hold it for request_timeout, where tunerd's queue gives it to
// the next free worker or a 503 after queue_timeout); and parked plus in-flight connections never
// outnumber its threads: none may be parked when one goes ahead, and a connection that would
// break that is closed, not parked (a thread-per-connection server would otherwise keep a thread
// reading an idle keep-alive connection and never accept the one in its backlog).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "model/snapshot.hpp"
#include "server/request_stats.hpp"

namespace tuner::server {

// Where a worker listens.
struct UpstreamAddress {
    std::string unix_path;                  // set for Unix sockets (the default transport)
    std::optional<std::uint16_t> tcp_port;  // set for {port} commands, on 127.0.0.1
    [[nodiscard]] std::string to_string() const {
        return tcp_port ? "127.0.0.1:" + std::to_string(*tcp_port) : "unix:" + unix_path;
    }
};

// An upstream connection parked while idle; the front defines it.
class IdleConnection {
public:
    virtual ~IdleConnection() = default;
};

// A request given to a worker beyond its threads, until a thread of that worker frees up. Shared
// by the request and, while linked, its backend's list (a request whose frame is destroyed while
// linked, at shutdown, leaves nothing dangling); written under the dispatcher's lock, `started`
// read by the request once the response came.
struct AheadTicket {
    bool linked = false;                 // waiting in its backend's `ahead` list
    std::atomic<Clock::rep> started{0};  // when a thread freed up for it; 0: not ahead,
                                         // or never promoted
    void reset() { started.store(0, std::memory_order_relaxed); }
    [[nodiscard]] std::optional<Clock::time_point> started_at() const {
        const Clock::rep t = started.load(std::memory_order_acquire);
        if (t == 0) return std::nullopt;
        return Clock::time_point(Clock::duration(t));
    }
};

// One worker as the dispatcher sees it. Fields below "guarded" change only under the
// dispatcher's lock.
inline constexpr Duration kBacklogFreshness = std::chrono::milliseconds(50);

struct Backend {
    unsigned id = 0;
    unsigned capacity = 1;  // the worker's threads
    UpstreamAddress address;
    // guarded by Dispatcher::mutex_
    unsigned inflight = 0;  // running and ahead
    bool accepting = false;
    std::deque<std::shared_ptr<AheadTicket>> ahead;  // given beyond its threads, oldest first
    std::uint64_t served = 0;                        // requests completed since it started
    Clock::time_point last_served{};                 // when it last answered
    std::uint64_t recycle_after = 0;  // 0 = never; else served count that triggers recycling
    bool recycle_requested = false;
    std::vector<std::unique_ptr<IdleConnection>> idle;  // ≤ capacity − inflight
};

using BackendPtr = std::shared_ptr<Backend>;

struct Waiter {
    std::uint64_t id = 0;
    unsigned avoid = 0;                  // a worker this request just failed on (a retry), 0 = none
    std::shared_ptr<AheadTicket> ahead;  // set: may wait in a worker's backlog (see the top)
    // Called under the dispatcher's lock with the granted backend: must only post.
    std::function<void(BackendPtr)> grant;
};

enum class AcquireStatus { granted, queued, queue_full };

class Dispatcher {
public:
    struct Callbacks {
        std::function<void(unsigned id)> drained;  // a non-accepting backend reached 0 in flight
        std::function<void(unsigned id)> recycle_due;  // served reached recycle_after
    };

    explicit Dispatcher(std::size_t max_queue, Duration window = std::chrono::seconds(10));

    void set_callbacks(Callbacks callbacks);
    void set_max_queue(std::size_t max_queue);
    // Requests a busy worker may be given beyond its threads (server.worker_backlog; 0 = off).
    void set_backlog(unsigned backlog);
    [[nodiscard]] unsigned backlog() const { return backlog_.load(std::memory_order_relaxed); }

    // Workers: a ready worker joins dispatch (and takes waiters at once); a draining worker
    // stops receiving new requests; a removed one is forgotten (its idle connections dropped).
    void add(BackendPtr backend);
    // Returns true when it has nothing in flight (already drained).
    bool stop_accepting(unsigned id);
    void remove(unsigned id);

    // A request wants a worker: granted now (out set), queued (w.grant called later), or
    // refused because the queue is full.
    AcquireStatus acquire(Waiter w, BackendPtr& out, Clock::time_point now = Clock::now());
    // The fast path of acquire: a slot now (FIFO kept: none while a plain request waits), or
    // null without queueing anything; then acquire() with a waiter. `ahead`: as Waiter::ahead.
    BackendPtr try_acquire(unsigned avoid, Clock::time_point now = Clock::now(),
                           const std::shared_ptr<AheadTicket>& ahead = nullptr);
    // A queued request gave up (timeout, client gone); false if it was granted meanwhile.
    bool cancel(std::uint64_t waiter_id, Clock::time_point now = Clock::now());
    // A request is done with its backend; its connection, if reusable, is parked first.
    // `served`: the worker answered (counts toward its served total and recycling).
    // `ahead`: the ticket the request acquired with (unlinked here if it never started).
    void release(const BackendPtr& backend, std::unique_ptr<IdleConnection> reusable, bool served,
                 Clock::time_point now = Clock::now(),
                 const std::shared_ptr<AheadTicket>& ahead = nullptr);
    // Take a parked connection of this backend (the caller holds a slot on it).
    std::unique_ptr<IdleConnection> take_idle(const BackendPtr& backend);
    // Drop a parked connection the peer closed while idle.
    void drop_idle(const BackendPtr& backend, const IdleConnection* connection);

    void record(const RequestRecord& record);
    void note_arrival(Clock::time_point now = Clock::now());
    void note_rejected(Clock::time_point now = Clock::now());
    void note_retry();

    [[nodiscard]] WindowStats window(Clock::time_point now = Clock::now());
    [[nodiscard]] CumulativeStats cumulative() const;
    void set_window(Duration window);

    // Requests given beyond a worker's threads count as queued, not in flight.
    struct Counts {
        std::size_t queued = 0;
        unsigned inflight = 0;
        unsigned ready = 0;
    };
    [[nodiscard]] Counts counts() const;
    // Per backend: id -> (inflight, served).
    [[nodiscard]] std::map<unsigned, std::pair<unsigned, std::uint64_t>> backend_load() const;
    // Requests this backend completed (0 when it is not in the set).
    [[nodiscard]] std::uint64_t served_by(unsigned id) const;

private:
    // `now` set: a worker beyond its threads must have answered within kBacklogFreshness.
    BackendPtr pick_within_locked(unsigned avoid, unsigned beyond,
                                  std::optional<Clock::time_point> now) const;
    BackendPtr pick_locked(unsigned avoid, const std::shared_ptr<AheadTicket>& ahead,
                           Clock::time_point now) const;
    BackendPtr grant_now_locked(unsigned avoid, const std::shared_ptr<AheadTicket>& ahead,
                                Clock::time_point now);
    void grant_waiters_locked(Clock::time_point now);
    void take_slot_locked(const BackendPtr& b, const std::shared_ptr<AheadTicket>& ahead,
                          Clock::time_point now);
    void levels_changed_locked(Clock::time_point now);

    mutable std::mutex mutex_;
    std::size_t max_queue_;
    std::map<unsigned, BackendPtr> backends_;
    std::deque<Waiter> queue_;
    unsigned inflight_ = 0;  // running and ahead
    unsigned ahead_ = 0;     // of those, ahead
    std::atomic<unsigned> backlog_{0};
    RequestStats stats_;
    Callbacks callbacks_;
};

}  // namespace tuner::server
