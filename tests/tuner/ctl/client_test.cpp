// tunerctl's way to the daemon: admin URLs, the address from the config (wildcards, port 0 and
// listen.json), the token file, and the HTTP client against canned servers on 127.0.0.1:
// the request it sends, JSON and non-JSON answers, a refused connection and a silent server.
#include "tuner/ctl/client.hpp"

#include <filesystem>
#include <fstream>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/temp_dir.hpp"

namespace tuner::ctl {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using ::testing::HasSubstr;

using test::TempDir;

// Accepts one connection on 127.0.0.1, keeps the request's head and answers `response`.
class CannedServer {
public:
    explicit CannedServer(std::string response)
        : acceptor_(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
        thread_ = std::thread([this, response = std::move(response)] {
            boost::system::error_code ec;
            tcp::socket socket(ioc_);
            acceptor_.accept(socket, ec);
            if (ec) return;
            asio::streambuf buffer;
            asio::read_until(socket, buffer, "\r\n\r\n", ec);
            request_.assign(asio::buffers_begin(buffer.data()), asio::buffers_end(buffer.data()));
            asio::write(socket, asio::buffer(response), ec);
            socket.shutdown(tcp::socket::shutdown_both, ec);
        });
    }
    ~CannedServer() {
        boost::system::error_code ec;
        acceptor_.close(ec);
        if (thread_.joinable()) thread_.join();
    }
    [[nodiscard]] AdminEndpoint endpoint() const {
        return {"127.0.0.1", acceptor_.local_endpoint().port(), "", "test"};
    }
    // The request as the server saw it; valid after the client's call returned.
    [[nodiscard]] std::string request() {
        if (thread_.joinable()) thread_.join();
        return request_;
    }

private:
    asio::io_context ioc_;
    tcp::acceptor acceptor_;
    std::thread thread_;
    std::string request_;
};

std::string http_answer(int status, const std::string& body) {
    return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: application/json\r\n" +
           "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" +
           body;
}

// ---- addresses --------------------------------------------------------------------------------

TEST(CtlAdminUrl, AcceptsUrlAndBareHostPort) {
    for (const char* url : {"http://127.0.0.1:9464", "127.0.0.1:9464", "http://127.0.0.1:9464/"}) {
        auto e = parse_admin_url(url);
        ASSERT_TRUE(e.ok()) << url << ": " << e.error().to_string();
        EXPECT_EQ(e->host, "127.0.0.1");
        EXPECT_EQ(e->port, 9464);
        EXPECT_EQ(e->base_path, "");
        EXPECT_EQ(e->url(), "http://127.0.0.1:9464");
        EXPECT_EQ(e->origin, "--admin");
    }
}

TEST(CtlAdminUrl, KeepsIpv6BracketsAndAPathPrefix) {
    auto e = parse_admin_url("http://[::1]:9464/tunerd/");
    ASSERT_TRUE(e.ok()) << e.error().to_string();
    EXPECT_EQ(e->host, "::1");
    EXPECT_EQ(e->base_path, "/tunerd");
    EXPECT_EQ(e->url(), "http://[::1]:9464/tunerd");
}

TEST(CtlAdminUrl, RejectsHttpsPortZeroAndMalformedWithTheText) {
    EXPECT_THAT(parse_admin_url("https://127.0.0.1:9464").error().what, HasSubstr("plain HTTP"));
    EXPECT_THAT(parse_admin_url("http://127.0.0.1:0").error().what, HasSubstr("port 0"));
    for (const char* bad : {"http://127.0.0.1", "localhost", "http://:9464", "1.2.3.4:99999"}) {
        auto e = parse_admin_url(bad);
        ASSERT_FALSE(e.ok()) << bad;
        EXPECT_EQ(e.error().where, "--admin");
        EXPECT_THAT(e.error().what, HasSubstr(std::string("\"") + bad + "\""));
    }
}

TEST(CtlAdminUrl, TakesTheAdminSocketAsUnixPath) {
    const auto e = parse_admin_url("unix:/run/tunerd/admin.sock");
    ASSERT_TRUE(e.ok());
    EXPECT_EQ(e->unix_path, "/run/tunerd/admin.sock");
    EXPECT_EQ(e->url(), "unix:/run/tunerd/admin.sock");
    EXPECT_FALSE(parse_admin_url("unix:admin.sock").ok());
    EXPECT_FALSE(parse_admin_url("unix:").ok());
}

TEST(CtlAdminEndpoint, PrefersAnExistingAdminSocketAndFallsBackToListen) {
    Config c;
    c.admin.socket = "/nonexistent/admin.sock";
    auto e = admin_endpoint_from_config(c, "/nonexistent");
    ASSERT_TRUE(e.ok());
    EXPECT_TRUE(e->unix_path.empty()) << "a socket that is not there: admin.listen";
    EXPECT_EQ(e->port, 9464);
}

TEST(CtlAdminEndpoint, FromAdminListenWithTheConfigNamedAsOrigin) {
    Config config;
    config.source = "/etc/tunerd/tunerd.toml";
    auto e = admin_endpoint_from_config(config, "/nonexistent");
    ASSERT_TRUE(e.ok()) << e.error().to_string();
    EXPECT_EQ(e->url(), "http://127.0.0.1:9464");
    EXPECT_EQ(e->origin, "admin.listen in /etc/tunerd/tunerd.toml");
}

TEST(CtlAdminEndpoint, WildcardListenIsReachedOnLoopback) {
    Config config;
    config.admin.listen = "0.0.0.0:9000";
    EXPECT_EQ(admin_endpoint_from_config(config, "")->host, "127.0.0.1");
    config.admin.listen = "[::]:9000";
    EXPECT_EQ(admin_endpoint_from_config(config, "")->host, "::1");
}

TEST(CtlAdminEndpoint, PortZeroReadsTheBoundAddressFromListenJson) {
    TempDir dir;
    (void)dir.write("listen.json",
                    R"({"public": "127.0.0.1:40001", "admin": "127.0.0.1:40002", "pid": 1})");
    Config config;
    config.admin.listen = "127.0.0.1:0";
    auto e = admin_endpoint_from_config(config, dir.path());
    ASSERT_TRUE(e.ok()) << e.error().to_string();
    EXPECT_EQ(e->port, 40002);
    EXPECT_EQ(e->origin, dir.path() + "/listen.json");
}

TEST(CtlAdminEndpoint, PortZeroWithoutListenJsonSaysTheDaemonIsMissing) {
    TempDir dir;
    Config config;
    config.admin.listen = "127.0.0.1:0";
    auto e = admin_endpoint_from_config(config, dir.path());
    ASSERT_FALSE(e.ok());
    EXPECT_EQ(e.error().where, dir.path() + "/listen.json");
    EXPECT_THAT(e.error().what, HasSubstr("is tunerd running"));
}

TEST(CtlAdminEndpoint, MalformedListenJsonQuotesIt) {
    TempDir dir;
    (void)dir.write("listen.json", R"({"public": "127.0.0.1:1"})");
    Config config;
    config.admin.listen = "127.0.0.1:0";
    EXPECT_THAT(admin_endpoint_from_config(config, dir.path()).error().what,
                HasSubstr(R"(no "admin" address in {"public": "127.0.0.1:1"})"));
}

// ---- token ------------------------------------------------------------------------------------

TEST(CtlToken, NoTokenFileMeansNoToken) {
    auto token = read_admin_token(AdminConfig{});
    ASSERT_TRUE(token.ok());
    EXPECT_FALSE(token->has_value());
}

TEST(CtlToken, FirstLineWithoutTrailingBlanks) {
    TempDir dir;
    AdminConfig admin;
    admin.token_file = dir.write("token", "s3cret \r\nsecond line\n");
    auto token = read_admin_token(admin);
    ASSERT_TRUE(token.ok()) << token.error().to_string();
    EXPECT_EQ(token->value(), "s3cret");
}

TEST(CtlToken, MissingOrEmptyFileNamesTheKeyAndFile) {
    TempDir dir;
    AdminConfig admin;
    admin.token_file = dir.path() + "/absent";
    auto missing = read_admin_token(admin);
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.error().where, "admin.token_file");
    EXPECT_THAT(missing.error().what, HasSubstr(admin.token_file));
    admin.token_file = dir.write("empty", "\n");
    EXPECT_THAT(read_admin_token(admin).error().what, HasSubstr("holds no token"));
}

TEST(CtlUrlEncode, EscapesReservedCharactersOnly) {
    EXPECT_EQ(url_encode("2026-11-23T15:04:05+02:00"), "2026-11-23T15%3A04%3A05%2B02%3A00");
    EXPECT_EQ(url_encode("1795000000.5"), "1795000000.5");
    EXPECT_EQ(url_encode("a b&c=d~_"), "a%20b%26c%3Dd~_");
}

// ---- the client -------------------------------------------------------------------------------

TEST(CtlClient, SendsMethodTargetTokenAndBodyAndParsesJson) {
    CannedServer server(http_answer(200, R"({"target": 4, "pinned": true})"));
    AdminClient client(server.endpoint(), std::string("tok"), std::chrono::seconds(30));
    auto result = client.call("POST", "/workers/target", R"({"workers": 4})");
    ASSERT_TRUE(std::holds_alternative<AdminAnswer>(result));
    const auto& answer = std::get<AdminAnswer>(result);
    EXPECT_EQ(answer.status, 200);
    EXPECT_EQ(answer.body["target"], 4);
    const std::string request = server.request();
    EXPECT_THAT(request, HasSubstr("POST /workers/target HTTP/1.1\r\n"));
    EXPECT_THAT(request, HasSubstr("Authorization: Bearer tok\r\n"));
    EXPECT_THAT(request, HasSubstr("Content-Type: application/json\r\n"));
}

TEST(CtlClient, NoTokenNoAuthorizationHeaderAndPrefixPrepended) {
    CannedServer server(http_answer(503, R"({"status": "starting"})"));
    auto endpoint = server.endpoint();
    endpoint.base_path = "/tunerd";
    AdminClient client(endpoint, std::nullopt, std::chrono::seconds(30));
    auto result = client.call("GET", "/health");
    ASSERT_TRUE(std::holds_alternative<AdminAnswer>(result));
    EXPECT_EQ(std::get<AdminAnswer>(result).status, 503);
    const std::string request = server.request();
    EXPECT_THAT(request, HasSubstr("GET /tunerd/health HTTP/1.1\r\n"));
    EXPECT_THAT(request, ::testing::Not(HasSubstr("Authorization")));
}

TEST(CtlClient, NonJsonAnswerIsAFailureThatReachedTheDaemon) {
    CannedServer server(http_answer(200, "<html>proxy error</html>"));
    AdminClient client(server.endpoint(), std::nullopt, std::chrono::seconds(30));
    auto result = client.call("GET", "/health");
    ASSERT_TRUE(std::holds_alternative<AdminFailure>(result));
    const auto& failure = std::get<AdminFailure>(result);
    EXPECT_FALSE(failure.unreachable);
    EXPECT_THAT(failure.error.what, HasSubstr("not JSON: \"<html>proxy error</html>\""));
}

TEST(CtlClient, RefusedConnectionIsUnreachableAndNamesTheAddress) {
    std::uint16_t port = 0;
    {
        // A port that was just free and is closed again: nothing listens there.
        asio::io_context ioc;
        tcp::acceptor probe(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
        port = probe.local_endpoint().port();
    }
    AdminClient client({"127.0.0.1", port, "", "--admin"}, std::nullopt, std::chrono::seconds(5));
    auto result = client.call("GET", "/health");
    ASSERT_TRUE(std::holds_alternative<AdminFailure>(result));
    const auto& failure = std::get<AdminFailure>(result);
    EXPECT_TRUE(failure.unreachable);
    EXPECT_EQ(failure.error.where, "http://127.0.0.1:" + std::to_string(port) + " (--admin)");
    EXPECT_THAT(failure.error.what, HasSubstr("connect: Connection refused"));
}

TEST(CtlClient, SilentServerIsUnreachableAfterTheTimeout) {
    // The kernel completes the connection from the listen backlog; nobody ever answers.
    asio::io_context ioc;
    tcp::acceptor silent(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    AdminClient client({"127.0.0.1", silent.local_endpoint().port(), "", "test"}, std::nullopt,
                       std::chrono::milliseconds(200));
    auto result = client.call("GET", "/performance");
    ASSERT_TRUE(std::holds_alternative<AdminFailure>(result));
    EXPECT_TRUE(std::get<AdminFailure>(result).unreachable);
    EXPECT_THAT(std::get<AdminFailure>(result).error.what, HasSubstr("no answer within 200ms"));
}

}  // namespace
}  // namespace tuner::ctl
