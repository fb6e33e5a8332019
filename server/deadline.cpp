// Coarse per-thread deadlines of the front (see deadline.hpp).
#include "server/deadline.hpp"

#include <boost/asio/error.hpp>

namespace tuner::server {

Watchdog::Watchdog(boost::asio::any_io_executor executor) : timer_(std::move(executor)) {}

void Watchdog::add(Deadline* d) {
    d->index_ = entries_.size();
    entries_.push_back(d);
}

void Watchdog::remove(Deadline* d) {
    if (d->index_ >= entries_.size() || entries_[d->index_] != d) return;
    Deadline* last = entries_.back();
    entries_[d->index_] = last;
    last->index_ = d->index_;
    entries_.pop_back();
}

void Watchdog::armed(Clock::time_point at) {
    // The timer moves only when this deadline comes a tick or more before the planned wake:
    // under load the wake is already near and nothing is rescheduled.
    if (wake_ == Clock::time_point::max() || at + kTick < wake_) schedule(at);
}

void Watchdog::schedule(Clock::time_point wake) {
    const auto earliest = Clock::now() + kTick;
    wake_ = std::max(wake, earliest);
    timer_.expires_at(wake_);
    std::weak_ptr<Watchdog> self = weak_from_this();
    timer_.async_wait([self](const boost::system::error_code& ec) {
        if (ec) return;
        if (auto watchdog = self.lock()) watchdog->tick();
    });
}

void Watchdog::tick() {
    wake_ = Clock::time_point::max();
    const auto now = Clock::now();
    std::vector<Deadline*> due;
    Clock::time_point next = Clock::time_point::max();
    for (Deadline* d : entries_) {
        if (d->at_ <= now) {
            due.push_back(d);
        } else {
            next = std::min(next, d->at_);
        }
    }
    // The actions only cancel sockets (their handlers run later), but mark first in case one
    // removes a deadline.
    for (Deadline* d : due) {
        d->at_ = Clock::time_point::max();
        d->expired_ = true;
    }
    for (Deadline* d : due) {
        if (d->on_expiry_) d->on_expiry_();
    }
    if (next != Clock::time_point::max()) schedule(next);
}

Deadline::Deadline(std::shared_ptr<Watchdog> watchdog, std::function<void()> on_expiry)
    : watchdog_(std::move(watchdog)), on_expiry_(std::move(on_expiry)) {}

Deadline::~Deadline() {
    if (watched_) watchdog_->remove(this);
}

void Deadline::arm(Duration timeout) {
    // Joins the watchdog here, on its thread: the constructor may run on another (the accept
    // loop), and the watchdog's entries belong to its thread alone.
    if (!watched_) {
        watchdog_->add(this);
        watched_ = true;
    }
    at_ = Clock::now() + timeout;
    expired_ = false;
    watchdog_->armed(at_);
}

void Deadline::settle(boost::system::error_code& ec) {
    disarm();
    // The deadline passed while the operation was pending: whatever error it ended with (the
    // cancellation, or what closing the stream gave) is the timeout.
    if (expired_ && ec) ec = boost::asio::error::timed_out;
}

}  // namespace tuner::server
