// Opening a TCP listener (see listener.hpp).
#include "server/listener.hpp"

#include <sstream>

namespace tuner::server {

namespace asio = boost::asio;

Result<asio::ip::tcp::endpoint> open_listener(asio::ip::tcp::acceptor& acceptor,
                                              const asio::ip::tcp::endpoint& endpoint) {
    boost::system::error_code ec;
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
        std::ostringstream where;
        where << endpoint;
        return Error{ec.message(), where.str()};
    }
    return acceptor.local_endpoint();
}

Result<asio::ip::tcp::endpoint> adopt_listener(asio::ip::tcp::acceptor& acceptor,
                                               const asio::ip::tcp::endpoint& bound, int fd) {
    boost::system::error_code ec;
    acceptor.assign(bound.protocol(), fd, ec);
    if (ec) {
        std::ostringstream where;
        where << bound << " (descriptor " << fd << ")";
        return Error{ec.message(), where.str()};
    }
    return bound;
}

}  // namespace tuner::server
