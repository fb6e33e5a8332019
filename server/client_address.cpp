// Who the client is (see client_address.hpp).
#include "server/client_address.hpp"

#include <algorithm>
#include <charconv>
#include <iterator>

#include <boost/beast/core/string.hpp>

#include "server/http_util.hpp"

namespace tuner::server {

namespace ip = boost::asio::ip;

namespace {

std::optional<ip::address> parse_address(std::string_view text) {
    boost::system::error_code ec;
    const auto address = ip::make_address(std::string(trim_ows(text)), ec);
    if (ec) return std::nullopt;
    return normalized(address);
}

// The headers that say who the client is or how it connected, as a proxy sets them.
constexpr std::string_view kForwardingHeaders[] = {
    "Forwarded",          "X-Forwarded-For",    "X-Forwarded-Proto", "X-Forwarded-Host",
    "X-Forwarded-Port",   "X-Forwarded-Prefix", "X-Forwarded-Ssl",   "X-Real-IP",
    "X-Forwarded-Scheme", "X-Url-Scheme",       "Front-End-Https",   "X-Client-IP",
};

}  // namespace

ip::address normalized(const ip::address& address) {
    if (address.is_v6() && address.to_v6().is_v4_mapped())
        return ip::make_address_v4(ip::v4_mapped, address.to_v6());
    return address;
}

bool Network::contains(const ip::address& raw) const {
    const ip::address address = normalized(raw);
    if (address.is_v4() != base.is_v4()) return false;
    if (address.is_v4()) {
        const std::uint32_t mask = prefix == 0 ? 0 : ~std::uint32_t{0} << (32 - prefix);
        return (address.to_v4().to_uint() & mask) == (base.to_v4().to_uint() & mask);
    }
    const auto a = address.to_v6().to_bytes();
    const auto b = base.to_v6().to_bytes();
    unsigned bits = prefix;
    for (std::size_t i = 0; i < a.size() && bits > 0; ++i) {
        const unsigned n = bits >= 8 ? 8 : bits;
        const auto mask = static_cast<unsigned char>(0xFF << (8 - n));
        if ((a[i] & mask) != (b[i] & mask)) return false;
        bits -= n;
    }
    return true;
}

Result<Network> parse_network(std::string_view text) {
    const auto slash = text.find('/');
    const auto address = parse_address(text.substr(0, slash));
    if (!address) {
        return Error{"not an IP address or network: \"" + std::string(text) +
                     "\" (e.g. \"10.0.0.0/8\", \"127.0.0.1\", \"fd00::/8\")"};
    }
    const unsigned bits = address->is_v4() ? 32 : 128;
    Network network{*address, bits};
    if (slash != std::string_view::npos) {
        const auto digits = text.substr(slash + 1);
        unsigned prefix = 0;
        const auto [end, ec] =
            std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
        if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size() ||
            prefix > bits) {
            return Error{"bad prefix length in \"" + std::string(text) + "\" (0 to " +
                         std::to_string(bits) + ")"};
        }
        network.prefix = prefix;
    }
    return network;
}

NetworkSet::NetworkSet(const std::vector<std::string>& entries) {
    for (const auto& entry : entries) {
        if (auto network = parse_network(entry)) networks_.push_back(*network);
    }
}

bool NetworkSet::contains(const ip::address& address) const {
    for (const auto& network : networks_) {
        if (network.contains(address)) return true;
    }
    return false;
}

ip::address client_address(const NetworkSet& proxies, const ip::address& peer,
                           std::string_view forwarded_for) {
    ip::address client = normalized(peer);
    if (!proxies.contains(client)) return client;
    // Right to left: each hop added the address it saw.
    while (!forwarded_for.empty()) {
        const auto comma = forwarded_for.rfind(',');
        const auto entry =
            comma == std::string_view::npos ? forwarded_for : forwarded_for.substr(comma + 1);
        forwarded_for =
            comma == std::string_view::npos ? std::string_view{} : forwarded_for.substr(0, comma);
        const auto hop = parse_address(entry);
        if (!hop) break;
        client = *hop;
        if (!proxies.contains(client)) break;
    }
    return client;
}

std::string forwarded_for(const boost::beast::http::fields& fields) {
    std::string joined;
    const auto range = fields.equal_range("X-Forwarded-For");
    for (auto it = range.first; it != range.second; ++it) {
        const auto value = trim_ows(std::string_view(it->value().data(), it->value().size()));
        if (value.empty()) continue;
        if (!joined.empty()) joined += ", ";
        joined += value;
    }
    return joined;
}

void set_forwarding_headers(boost::beast::http::fields& fields, std::string_view peer,
                            bool peer_trusted) {
    if (!peer_trusted) {
        // One pass over the fields, not a tree search per name: this runs on every request.
        for (auto it = fields.begin(); it != fields.end();) {
            const std::string_view name(it->name_string().data(), it->name_string().size());
            const bool forwarding =
                std::any_of(std::begin(kForwardingHeaders), std::end(kForwardingHeaders),
                            [&](std::string_view h) { return boost::beast::iequals(h, name); });
            if (forwarding) {
                it = fields.erase(it);
            } else {
                ++it;
            }
        }
        fields.insert("X-Forwarded-For", peer);
        fields.insert("X-Forwarded-Proto", "http");
        return;
    }
    std::string joined = forwarded_for(fields);
    if (!joined.empty()) joined += ", ";
    joined += peer;
    fields.set("X-Forwarded-For", joined);
    if (fields["X-Forwarded-Proto"].empty()) fields.set("X-Forwarded-Proto", "http");
}

}  // namespace tuner::server
