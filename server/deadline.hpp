// Timeouts of the front without a timer per operation. Every I/O thread has one Watchdog; a
// connection owns a Deadline per direction and arms it before each read or write (two stores,
// no system call). The watchdog wakes at the earliest armed deadline (never more often than
// every kTick) and calls the expired deadlines' actions, which cancel their sockets: the
// pending operation ends with operation_aborted and Deadline::settle turns that into timed_out.
//
// Asio's per-operation timers (beast::tcp_stream's expires_after) cost a timerfd_settime each
// time the earliest deadline moves, one or more per request; a timeout may fire up to kTick
// late here, which no timeout of the front needs to be exact about.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>

#include "model/snapshot.hpp"

namespace tuner::server {

class Deadline;

// One per I/O thread: every Deadline it watches is armed, and dies, on that thread (a Deadline
// may be made on another: it joins its watchdog at its first arm). Held by shared_ptr: the
// connections' Deadlines keep it alive (a coroutine frame may outlive the Front).
class Watchdog : public std::enable_shared_from_this<Watchdog> {
public:
    static constexpr auto kTick = std::chrono::milliseconds(100);

    explicit Watchdog(boost::asio::any_io_executor executor);
    Watchdog(const Watchdog&) = delete;
    Watchdog& operator=(const Watchdog&) = delete;

    [[nodiscard]] std::size_t watched() const { return entries_.size(); }

private:
    friend class Deadline;
    void add(Deadline* d);
    void remove(Deadline* d);
    void armed(Clock::time_point at);
    void schedule(Clock::time_point wake);
    void tick();

    boost::asio::steady_timer timer_;
    std::vector<Deadline*> entries_;
    Clock::time_point wake_ = Clock::time_point::max();  // when the timer fires; max = idle
};

class Deadline {
public:
    // on_expiry runs on the watchdog's thread when an armed deadline passes: cancel the I/O.
    // Making one touches no state of the watchdog, so any thread may (the accept loop makes
    // each session's Deadlines for the I/O thread that will run it).
    Deadline(std::shared_ptr<Watchdog> watchdog, std::function<void()> on_expiry);
    ~Deadline();
    Deadline(const Deadline&) = delete;
    Deadline& operator=(const Deadline&) = delete;

    // The next operation must end within `timeout` from now.
    void arm(Duration timeout);
    void disarm() { at_ = Clock::time_point::max(); }
    // The deadline passed (and on_expiry ran) since the last arm.
    [[nodiscard]] bool expired() const { return expired_; }
    // After the operation: disarms, and turns the error the expiry caused (the cancellation)
    // into asio::error::timed_out. An operation that succeeded is left alone.
    void settle(boost::system::error_code& ec);

private:
    friend class Watchdog;
    std::shared_ptr<Watchdog> watchdog_;
    std::function<void()> on_expiry_;
    Clock::time_point at_ = Clock::time_point::max();
    bool expired_ = false;
    bool watched_ = false;   // in the watchdog's entries (from the first arm on)
    std::size_t index_ = 0;  // in the watchdog's entries
};

}  // namespace tuner::server
