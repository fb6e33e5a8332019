// Opening a TCP listener for the public front and the admin API alike: SO_REUSEADDR (a restart
// need not wait for TIME_WAIT), bind, listen with the system's backlog. Port 0 picks a free port;
// the answer is the address really bound. Or adopting one that systemd passed.
#pragma once

#include <boost/asio/ip/tcp.hpp>

#include "model/result.hpp"

namespace tuner::server {

// An error names the address ("127.0.0.1:8080") and says why ("Address already in use").
Result<boost::asio::ip::tcp::endpoint> open_listener(
    boost::asio::ip::tcp::acceptor& acceptor, const boost::asio::ip::tcp::endpoint& endpoint);

// Takes over a listening TCP socket opened by someone else (systemd's socket activation: the
// caller checked that `fd` is one): the acceptor owns `fd` from here on, and closing it leaves
// the socket itself listening as long as the passer holds its copy. The answer is its address.
Result<boost::asio::ip::tcp::endpoint> adopt_listener(boost::asio::ip::tcp::acceptor& acceptor,
                                                      const boost::asio::ip::tcp::endpoint& bound,
                                                      int fd);

}  // namespace tuner::server
