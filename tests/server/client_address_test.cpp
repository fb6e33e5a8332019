// Who the client is: trusted proxies as addresses and CIDR networks (IPv4, IPv6, IPv4-mapped),
// the client behind a chain of proxies (nginx's real_ip_recursive), and the forwarding headers a
// worker gets from a trusted proxy and from anyone else.
#include "server/client_address.hpp"

#include <gtest/gtest.h>

namespace tuner::server {
namespace {

namespace ip = boost::asio::ip;
namespace http = boost::beast::http;

ip::address addr(const char* text) {
    return ip::make_address(text);
}

TEST(Network, ParsesAddressesAndNetworks) {
    auto n = parse_network("10.0.0.0/8");
    ASSERT_TRUE(n.ok());
    EXPECT_EQ(n->prefix, 8u);
    EXPECT_TRUE(n->contains(addr("10.200.1.2")));
    EXPECT_FALSE(n->contains(addr("11.0.0.1")));
    auto one = parse_network("127.0.0.1");
    ASSERT_TRUE(one.ok());
    EXPECT_EQ(one->prefix, 32u);
    EXPECT_TRUE(one->contains(addr("127.0.0.1")));
    EXPECT_FALSE(one->contains(addr("127.0.0.2")));
    auto v6 = parse_network("fd00::/8");
    ASSERT_TRUE(v6.ok());
    EXPECT_TRUE(v6->contains(addr("fd12:3456::1")));
    EXPECT_FALSE(v6->contains(addr("fe80::1")));
    EXPECT_FALSE(v6->contains(addr("10.0.0.1")));
    auto all = parse_network("0.0.0.0/0");
    ASSERT_TRUE(all.ok());
    EXPECT_TRUE(all->contains(addr("203.0.113.9")));
}

TEST(Network, AnIpv4MappedPeerMatchesItsIpv4Network) {
    auto n = parse_network("192.0.2.0/24");
    ASSERT_TRUE(n.ok());
    EXPECT_TRUE(n->contains(addr("::ffff:192.0.2.10")));
    EXPECT_EQ(normalized(addr("::ffff:192.0.2.10")).to_string(), "192.0.2.10");
}

TEST(Network, RefusesWhatIsNotAnAddressOrPrefix) {
    for (const char* bad : {"", "localhost", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/8x", "::1/129",
                            "1.2.3.4/-1", "10.0.0.0/ 8"}) {
        EXPECT_FALSE(parse_network(bad).ok()) << bad;
    }
    EXPECT_NE(parse_network("localhost").error().what.find("not an IP address"), std::string::npos);
}

TEST(ClientAddress, AnUntrustedPeerIsTheClientWhateverItForwards) {
    const NetworkSet proxies({"127.0.0.1"});
    EXPECT_EQ(client_address(proxies, addr("198.51.100.4"), "1.2.3.4").to_string(), "198.51.100.4");
}

TEST(ClientAddress, BehindNetworkSetTheRightmostUntrustedHopIsTheClient) {
    const NetworkSet proxies({"127.0.0.1", "10.0.0.0/8"});
    EXPECT_EQ(client_address(proxies, addr("127.0.0.1"), "").to_string(), "127.0.0.1");
    EXPECT_EQ(client_address(proxies, addr("127.0.0.1"), "203.0.113.7").to_string(), "203.0.113.7");
    // The client may prepend anything: only what the trusted hops added counts.
    EXPECT_EQ(
        client_address(proxies, addr("127.0.0.1"), "6.6.6.6, 203.0.113.7, 10.1.2.3").to_string(),
        "203.0.113.7");
    // All hops trusted: the leftmost is as far as anyone can tell.
    EXPECT_EQ(client_address(proxies, addr("127.0.0.1"), "10.0.0.9, 10.1.2.3").to_string(),
              "10.0.0.9");
    // A hop that is not an address ends the walk at the last good one.
    EXPECT_EQ(
        client_address(proxies, addr("127.0.0.1"), "203.0.113.7, garbage, 10.1.2.3").to_string(),
        "10.1.2.3");
}

TEST(ForwardingHeaders, FromAnUntrustedPeerAreReplaced) {
    http::fields f;
    f.set("X-Forwarded-For", "1.2.3.4");
    f.insert("X-Forwarded-For", "5.6.7.8");
    f.set("X-Forwarded-Proto", "https");
    f.set("X-Forwarded-Host", "evil.example");
    f.set("X-Real-IP", "9.9.9.9");
    f.set("Forwarded", "for=1.1.1.1");
    set_forwarding_headers(f, "198.51.100.4", false);
    EXPECT_EQ(f.count("X-Forwarded-For"), 1u);
    EXPECT_EQ(f["X-Forwarded-For"], "198.51.100.4");
    EXPECT_EQ(f["X-Forwarded-Proto"], "http");
    EXPECT_EQ(f.count("X-Forwarded-Host"), 0u);
    EXPECT_EQ(f.count("X-Real-IP"), 0u);
    EXPECT_EQ(f.count("Forwarded"), 0u);
}

TEST(ForwardingHeaders, FromATrustedProxyAreExtended) {
    http::fields f;
    f.set("X-Forwarded-For", "203.0.113.7");
    f.insert("X-Forwarded-For", "10.1.2.3");
    f.set("X-Forwarded-Proto", "https");  // set by the TLS terminator in front of tunerd
    set_forwarding_headers(f, "127.0.0.1", true);
    EXPECT_EQ(f.count("X-Forwarded-For"), 1u);
    EXPECT_EQ(f["X-Forwarded-For"], "203.0.113.7, 10.1.2.3, 127.0.0.1");
    EXPECT_EQ(f["X-Forwarded-Proto"], "https");
    http::fields bare;
    set_forwarding_headers(bare, "127.0.0.1", true);
    EXPECT_EQ(bare["X-Forwarded-For"], "127.0.0.1");
    EXPECT_EQ(bare["X-Forwarded-Proto"], "http");
}

}  // namespace
}  // namespace tuner::server
