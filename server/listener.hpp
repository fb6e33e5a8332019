// Opening a TCP listener for the public front and the admin API alike: SO_REUSEADDR (a restart
// need not wait for TIME_WAIT), bind, listen with the system's backlog. Port 0 picks a free port;
// the answer is the address really bound.
#pragma once

#include <boost/asio/ip/tcp.hpp>

#include "model/result.hpp"

namespace tuner::server {

// An error names the address ("127.0.0.1:8080") and says why ("Address already in use").
Result<boost::asio::ip::tcp::endpoint> open_listener(
    boost::asio::ip::tcp::acceptor& acceptor, const boost::asio::ip::tcp::endpoint& endpoint);

}  // namespace tuner::server
