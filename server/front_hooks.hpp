// What the front tells the pool about workers it saw fail (see Front, exchange.hpp).
#pragma once

#include <functional>
#include <string>

namespace tuner::server {

struct FrontHooks {
    // A worker refused a connection or dropped one mid-request: the pool checks on it. Called
    // before the request's slot is released and before a retry, so it must act at once (a dead
    // worker leaves dispatch before anything else is sent its way), not post.
    std::function<void(unsigned worker_id, const std::string& error)> upstream_failed;
    // A worker held a request for twice request_timeout without answering: replace it.
    std::function<void(unsigned worker_id, const std::string& why)> worker_stuck;
};

}  // namespace tuner::server
