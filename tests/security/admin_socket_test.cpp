// admin.socket: a second admin listener on a Unix socket, mode 0600, for tunerctl on the same
// host. Over the real binary: the socket answers without the bearer token the TCP listener asks
// for, its file is the owner's alone, tunerctl finds it through the config, and it is removed at
// exit.
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <fstream>

#include <gtest/gtest.h>

#include "tests/integration/tuner_test_support.hpp"
#include "tests/support/tunerd_process.hpp"

namespace tuner::test {
namespace {

using namespace std::chrono_literals;

// One request over the Unix socket at `path`: the raw answer ("" when none came).
std::string unix_exchange(const std::string& path, const std::string& request) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    std::string answer;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(request.size())) {
        timeval tv{10, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        char buf[4096];
        for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) answer.append(buf, n);
    }
    ::close(fd);
    return answer;
}

TEST(AdminSocket, AnswersWithoutATokenIsTheOwnersAloneAndIsGoneAtExit) {
    TempDir dir;
    const std::string token_file = dir.path() + "/admin.token";
    std::ofstream(token_file) << "s3cret\n";
    const std::string socket = dir.path() + "/admin.sock";
    TunerdOptions options{.config =
                              "[workers]\nmode = \"fixed\"\ncount = 1\n[admin]\ntoken_file = \"" +
                              token_file + "\"\nsocket = \"" + socket + "\"\n"};
    options.admin_token = "s3cret";
    TunerdProcess tunerd(options);
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();

    struct stat st {};
    ASSERT_EQ(::stat(socket.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0600u) << "only tunerd's user (and root) may open it";

    // Over TCP the token is asked for; over the socket it is not.
    const auto tcp = http_get(tunerd.admin_address(), "/performance", 10s);
    ASSERT_TRUE(tcp.ok());
    EXPECT_EQ(tcp->status, 401);
    const auto answer = unix_exchange(
        socket, "GET /performance HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(answer.substr(0, 12), "HTTP/1.1 200") << answer.substr(0, 300);
    // State changes work too (JSON, as tunerctl sends).
    const std::string body = "{\"workers\":1}";
    const auto pin =
        unix_exchange(socket,
                      "POST /workers/target HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
                      "application/json\r\nContent-Length: " +
                          std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
    EXPECT_EQ(pin.substr(0, 12), "HTTP/1.1 200") << pin.substr(0, 300);

    // tunerctl finds the socket through the config and needs no token there: with the token
    // file gone, only the socket can answer it.
    ASSERT_EQ(std::remove(token_file.c_str()), 0);
    const auto status = run_command({TUNERCTL_BINARY, "status", "--config", tunerd.config_path()});
    EXPECT_EQ(status.exit_status, 0) << status.output;
    const auto explicit_url =
        run_command({TUNERCTL_BINARY, "workers", "--admin", "unix:" + socket, "--json"});
    EXPECT_EQ(explicit_url.exit_status, 0) << explicit_url.output;

    tunerd.signal(SIGTERM);
    ASSERT_TRUE(tunerd.wait_exit(60s).has_value());
    EXPECT_NE(::access(socket.c_str(), F_OK), 0) << "the socket file is removed at exit";
}

TEST(AdminSocket, AFileThatIsNotASocketInTheWayStopsTheStartWithAClearError) {
    TempDir dir;
    const std::string path = dir.path() + "/admin.sock";
    std::ofstream(path) << "not a socket\n";
    TunerdProcess tunerd({.config = "[admin]\nsocket = \"" + path + "\"\n", .wait_ready = false});
    (void)tunerd.start();
    const auto exit = tunerd.wait_exit(30s);
    ASSERT_TRUE(exit.has_value()) << tunerd.log();
    EXPECT_EQ(*exit, 71);
    EXPECT_NE(tunerd.log().find("a file that is not a socket is in the way"), std::string::npos)
        << tunerd.log();
    std::ifstream in(path);
    std::string kept;
    std::getline(in, kept);
    EXPECT_EQ(kept, "not a socket") << "the file is left alone";
}

}  // namespace
}  // namespace tuner::test
