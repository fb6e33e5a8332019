// Who the client is, and which forwarding headers the worker may believe (server.trusted_proxies).
//
// A connection from a trusted proxy (nginx, a TLS terminator, a load balancer) carries the
// client's address in X-Forwarded-For: the client is the rightmost address there that is not a
// trusted proxy itself (nginx's real_ip_recursive). From anyone else the forwarding headers are
// lies until proven otherwise: X-Forwarded-*, X-Real-IP and Forwarded are removed and the worker
// gets X-Forwarded-For with the peer's address and X-Forwarded-Proto "http" (this listener).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/ip/address.hpp>
#include <boost/beast/http/fields.hpp>

#include "model/result.hpp"

namespace tuner::server {

// An address or a CIDR network: "10.0.0.0/8", "::1", "fd00::/8".
struct Network {
    boost::asio::ip::address base;
    unsigned prefix = 0;
    [[nodiscard]] bool contains(const boost::asio::ip::address& address) const;
};

// "address" or "address/prefix"; the error says what is wrong with `text`.
Result<Network> parse_network(std::string_view text);

// Addresses and networks (server.trusted_proxies, rate_limit.allow).
class NetworkSet {
public:
    NetworkSet() = default;
    // Entries that do not parse are left out (the config loader refused them already).
    explicit NetworkSet(const std::vector<std::string>& entries);
    [[nodiscard]] bool empty() const { return networks_.empty(); }
    [[nodiscard]] bool contains(const boost::asio::ip::address& address) const;

private:
    std::vector<Network> networks_;
};

// An address as text, IPv4-mapped IPv6 ("::ffff:1.2.3.4") as plain IPv4.
boost::asio::ip::address normalized(const boost::asio::ip::address& address);

// The client behind `peer`: `peer` itself unless it is a trusted proxy, then the rightmost
// address of X-Forwarded-For that is not (an entry that does not parse ends the walk at the
// last good one, as nginx does).
boost::asio::ip::address client_address(const NetworkSet& proxies,
                                        const boost::asio::ip::address& peer,
                                        std::string_view forwarded_for);

// Every X-Forwarded-For line of `fields`, joined in order with ", ".
std::string forwarded_for(const boost::beast::http::fields& fields);

// Sets the forwarding headers the worker gets for a request that came from `peer` (text, as the
// session knows it): kept and extended from a trusted proxy, replaced from anyone else.
void set_forwarding_headers(boost::beast::http::fields& fields, std::string_view peer,
                            bool peer_trusted);

}  // namespace tuner::server
