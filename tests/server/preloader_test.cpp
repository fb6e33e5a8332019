// The preloader's C++ side (server/preloader.hpp): the control protocol, finding the script, and
// the real exchange with python/tunerd_preload.py (a worker forked, a refusal, a timeout).
#include "server/preloader.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace tuner::server {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

TEST(PreloadProtocol, SpawnRequestIsJsonThePreloaderReads) {
    const auto text = encode_spawn_request("/run/tunerd/w3.sock", 8, {{"TUNER_WORKER_ID", "3"}});
    const auto j = nlohmann::json::parse(text);
    EXPECT_EQ(j["op"], "spawn");
    EXPECT_EQ(j["socket"], "/run/tunerd/w3.sock");
    EXPECT_EQ(j["threads"], 8);
    EXPECT_EQ(j["env"]["TUNER_WORKER_ID"], "3");
    // Bytes that are no UTF-8 cannot make the encoder throw on the I/O thread.
    EXPECT_NO_THROW(encode_spawn_request("/x", 1, {{"A", std::string("\xff\xfe")}}));
}

TEST(PreloadProtocol, Hello) {
    auto ready = parse_preloader_hello(R"({"ready": true, "pid": 1234, "import_ms": 80})");
    ASSERT_TRUE(ready.ok());
    EXPECT_TRUE(ready->ready);
    EXPECT_EQ(ready->pid, 1234);
    auto failed = parse_preloader_hello(R"({"ready": false, "error": "cannot import app:app"})");
    ASSERT_TRUE(failed.ok());
    EXPECT_FALSE(failed->ready);
    EXPECT_EQ(failed->error, "cannot import app:app");
    for (const char* bad : {"", "ready", "[]", R"({"ready": "yes"})", R"({"ready": true})",
                            R"({"ready": true, "pid": -4})", R"({"ready": true, "pid": 1e99})"}) {
        EXPECT_FALSE(parse_preloader_hello(bad).ok()) << bad;
    }
}

TEST(PreloadProtocol, SpawnReply) {
    auto pid = parse_spawn_reply(R"({"ok": true, "pid": 4321})");
    ASSERT_TRUE(pid.ok());
    EXPECT_EQ(*pid, 4321);
    auto refused = parse_spawn_reply(R"({"ok": false, "error": "fork: out of memory"})");
    ASSERT_FALSE(refused.ok());
    EXPECT_THAT(refused.error().what, HasSubstr("refused to fork a worker: fork: out of memory"));
    EXPECT_FALSE(parse_spawn_reply(R"({"ok": true})").ok());
    EXPECT_FALSE(parse_spawn_reply("{").ok());
}

TEST(PreloadScript, BesideTheBinaryThenInShare) {
    const fs::path root = fs::temp_directory_path() / ("preload-find-" + std::to_string(getpid()));
    fs::create_directories(root / "bin");
    fs::create_directories(root / "share" / "tunerd");
    const std::string exe = (root / "bin" / "tunerd").string();
    EXPECT_FALSE(find_preloader_script(exe));
    std::ofstream(root / "share" / "tunerd" / kPreloaderScript) << "#\n";
    EXPECT_EQ(find_preloader_script(exe), (root / "share" / "tunerd" / kPreloaderScript).string());
    std::ofstream(root / "bin" / kPreloaderScript) << "#\n";
    EXPECT_EQ(find_preloader_script(exe), (root / "bin" / kPreloaderScript).string());
    fs::remove_all(root);
}

TEST(PreloadScript, Argv) {
    PoolConfig workers;
    workers.preload = "app:app";
    EXPECT_EQ(
        preloader_argv(workers, "/usr/share/tunerd/tunerd_preload.py"),
        (std::vector<std::string>{"/usr/bin/python3", "-B", "/usr/share/tunerd/tunerd_preload.py",
                                  "--app", "app:app", "--server", "gunicorn"}));
}

// Waits for one control message (the hello) for at most 20 s.
std::string receive_within(int fd) {
    struct pollfd p {
        fd, POLLIN, 0
    };
    if (::poll(&p, 1, 20000) != 1) return "";
    auto message = receive_control_message(fd);
    return message && *message ? **message : "";
}

std::string read_all_nonblocking(int fd) {
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) out.append(buf, n);
    return out;
}

TEST(PreloadExchange, ForksAWorkerRefusesNonsenseAndTimesOut) {
    if (::access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "no /usr/bin/python3";
    const fs::path dir = fs::temp_directory_path() / ("preload-app-" + std::to_string(getpid()));
    fs::create_directories(dir);
    std::ofstream(dir / "tinyapp.py") << "def app(environ, start_response):\n"
                                         "    start_response('200 OK', [])\n"
                                         "    return [b'ok']\n";
    PoolConfig workers;
    workers.preload = "tinyapp:app";
    SpawnSpec spec;
    spec.argv =
        preloader_argv(workers, std::string(TUNER_SOURCE_DIR) + "/python/" + kPreloaderScript);
    spec.dir = dir.string();
    auto started = start_preloader(spec);
    ASSERT_TRUE(started.ok()) << started.error().to_string();
    const int control = started->control_fd;
    auto hello = parse_preloader_hello(receive_within(control));
    ASSERT_TRUE(hello.ok()) << read_all_nonblocking(started->process.stderr_fd);
    ASSERT_TRUE(hello->ready);
    EXPECT_EQ(hello->pid, started->process.pid);

    auto refused = spawn_from_preloader(control, R"({"op": "spawn", "socket": "relative"})",
                                        std::chrono::seconds(5));
    ASSERT_FALSE(refused.ok());
    EXPECT_THAT(refused.error().what, HasSubstr("refused"));

    const std::string socket_path = (dir / "w1.sock").string();
    auto worker = spawn_from_preloader(control, encode_spawn_request(socket_path, 2, {}),
                                       std::chrono::seconds(5));
    ASSERT_TRUE(worker.ok()) << worker.error().to_string();
    EXPECT_GT(worker->pid, 0);
    EXPECT_NE(worker->pid, started->process.pid);
    // Ours (the test is a child subreaper now, as tunerd is), and in a group of its own.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    std::string worker_log;
    while (std::chrono::steady_clock::now() < deadline &&
           worker_log.find("Listening at") == std::string::npos) {
        worker_log += read_all_nonblocking(worker->stderr_fd);
        ::usleep(20000);
    }
    EXPECT_THAT(worker_log, HasSubstr("Listening at: unix:" + socket_path));
    EXPECT_EQ(::getpgid(worker->pid), worker->pid);
    ::kill(-worker->pid, SIGKILL);
    int status = 0;
    EXPECT_EQ(::waitpid(worker->pid, &status, 0), worker->pid);  // reparented to us

    // A preloader that does not answer: the request gives up after its timeout.
    ::kill(started->process.pid, SIGSTOP);
    const auto before = std::chrono::steady_clock::now();
    auto silent = spawn_from_preloader(control, encode_spawn_request(socket_path, 1, {}),
                                       std::chrono::milliseconds(300));
    const auto took = std::chrono::steady_clock::now() - before;
    ASSERT_FALSE(silent.ok());
    EXPECT_THAT(silent.error().what, HasSubstr("no answer"));
    EXPECT_LT(took, std::chrono::seconds(2));
    ::kill(started->process.pid, SIGKILL);
    ::waitpid(started->process.pid, &status, 0);
    for (int fd : {control, started->process.stdout_fd, started->process.stderr_fd,
                   worker->stdout_fd, worker->stderr_fd})
        ::close(fd);
    fs::remove_all(dir);
}

}  // namespace
}  // namespace tuner::server
