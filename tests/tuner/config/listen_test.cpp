// Listen addresses (parse_listen, is_loopback_listen) and where tunerd looks for its config and
// keeps its state (default_config_path, resolve_state_dir).
#include <map>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tuner/config/load.hpp"

namespace tuner::config {
namespace {

using ::testing::HasSubstr;
using Listen = std::pair<std::string, std::uint16_t>;

TEST(ParseListen, IPv4AddressAndPort) {
    EXPECT_EQ(parse_listen("127.0.0.1:8080").value(), (Listen{"127.0.0.1", 8080}));
    EXPECT_EQ(parse_listen("0.0.0.0:80").value(), (Listen{"0.0.0.0", 80}));
}

TEST(ParseListen, IPv6InBracketsComesBackWithoutThem) {
    EXPECT_EQ(parse_listen("[::1]:0").value(), (Listen{"::1", 0}));
    EXPECT_EQ(parse_listen("[::]:8080").value(), (Listen{"::", 8080}));
    EXPECT_EQ(parse_listen("[2001:db8::7]:65535").value(), (Listen{"2001:db8::7", 65535}));
}

TEST(ParseListen, HostNameAndPortZero) {
    EXPECT_EQ(parse_listen("localhost:8080").value(), (Listen{"localhost", 8080}));
    EXPECT_EQ(parse_listen("app-1.internal:0").value(), (Listen{"app-1.internal", 0}));
}

TEST(ParseListen, MissingPortIsNamed) {
    for (const char* text : {"127.0.0.1", "localhost", "[::1]", "127.0.0.1:"}) {
        const auto parsed = parse_listen(text);
        ASSERT_FALSE(parsed.ok()) << text;
        EXPECT_THAT(parsed.error().what, HasSubstr("missing port")) << text;
        EXPECT_THAT(parsed.error().what, HasSubstr(std::string("\"") + text + "\"")) << text;
    }
}

TEST(ParseListen, BadPortIsNamed) {
    for (const char* text :
         {"127.0.0.1:65536", "127.0.0.1:http", "127.0.0.1:-1", "[::1]:80x", "127.0.0.1: 80"}) {
        const auto parsed = parse_listen(text);
        ASSERT_FALSE(parsed.ok()) << text;
        EXPECT_THAT(parsed.error().what, HasSubstr("bad port")) << text;
    }
}

TEST(ParseListen, RejectsMalformedHosts) {
    EXPECT_THAT(parse_listen("::1:8080").error().what, HasSubstr("needs brackets"));
    EXPECT_THAT(parse_listen("300.1.1.1:80").error().what, HasSubstr("not an IPv4 address"));
    EXPECT_THAT(parse_listen("[zz]:80").error().what, HasSubstr("not an IPv6 address"));
    EXPECT_THAT(parse_listen("[::1:80").error().what, HasSubstr("missing \"]\""));
    EXPECT_THAT(parse_listen("[::1]8080").error().what, HasSubstr("expected \":\""));
    EXPECT_THAT(parse_listen(":80").error().what, HasSubstr("missing host"));
    EXPECT_THAT(parse_listen("my_host:80").error().what, HasSubstr("host name"));
    EXPECT_THAT(parse_listen("").error().what, HasSubstr("empty listen address"));
}

TEST(IsLoopbackListen, AcceptsOnlyThisMachinesAddresses) {
    for (const char* local : {"127.0.0.1:9464", "127.1.2.3:0", "[::1]:9464", "localhost:1",
                              "LocalHost:1", "[::ffff:127.0.0.1]:80"}) {
        EXPECT_TRUE(is_loopback_listen(local)) << local;
    }
    for (const char* remote : {"0.0.0.0:9464", "10.0.0.1:80", "[::]:80", "example.com:80",
                               "128.0.0.1:80", "[::ffff:10.0.0.1]:80", "not an address"}) {
        EXPECT_FALSE(is_loopback_listen(remote)) << remote;
    }
}

// ---- paths ----------------------------------------------------------------------------------

// A fake environment for resolve_state_dir.
std::function<const char*(const char*)> environment(std::map<std::string, std::string> vars) {
    return [vars = std::move(vars)](const char* name) -> const char* {
        const auto it = vars.find(name);
        return it == vars.end() ? nullptr : it->second.c_str();
    };
}

TEST(DefaultConfigPath, IsUnderEtc) {
    EXPECT_EQ(default_config_path(), "/etc/tunerd/tunerd.toml");
}

TEST(ResolveStateDir, ConfiguredDirectoryWins) {
    StateConfig state;
    state.dir = "/srv/tunerd-state";
    EXPECT_EQ(resolve_state_dir(state, environment({{"STATE_DIRECTORY", "/var/lib/x"}}), true),
              "/srv/tunerd-state");
}

TEST(ResolveStateDir, SystemdStateDirectoryComesNext) {
    EXPECT_EQ(
        resolve_state_dir({}, environment({{"STATE_DIRECTORY", "/var/lib/tunerd-svc"}}), false),
        "/var/lib/tunerd-svc");
}

TEST(ResolveStateDir, TakesTheFirstOfSeveralSystemdDirectories) {
    EXPECT_EQ(
        resolve_state_dir({}, environment({{"STATE_DIRECTORY", "/var/lib/a:/var/lib/b"}}), false),
        "/var/lib/a");
}

TEST(ResolveStateDir, EmptyStateDirectoryIsIgnored) {
    EXPECT_EQ(resolve_state_dir({}, environment({{"STATE_DIRECTORY", ""}}), true),
              "/var/lib/tunerd");
}

TEST(ResolveStateDir, RootUsesVarLib) {
    EXPECT_EQ(resolve_state_dir({}, environment({{"HOME", "/root"}}), true), "/var/lib/tunerd");
}

TEST(ResolveStateDir, UserUsesXdgStateUnderHome) {
    EXPECT_EQ(resolve_state_dir({}, environment({{"HOME", "/home/ada"}}), false),
              "/home/ada/.local/state/tunerd");
}

TEST(ResolveStateDir, UserWithoutHomeStillGetsAnAbsolutePath) {
    const auto dir = resolve_state_dir({}, environment({}), false);
    ASSERT_FALSE(dir.empty());
    EXPECT_EQ(dir.front(), '/');
}

}  // namespace
}  // namespace tuner::config
