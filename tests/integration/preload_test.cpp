// The preloading spawner (workers.preload, issue 18) against the real binary, with the Flask
// example as etc/examples/flask.toml runs it: one tunerd for the whole life cycle (serving,
// process tree, memory, resize under load, kill -9 of a worker and of the preloader, a deploy
// with a new env value, a deploy whose app fails to import), so the suite starts one daemon.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/load_generator.hpp"
#include "tests/support/pool_scenarios.hpp"
#include "tests/support/tunerd_process.hpp"

namespace tuner::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kExampleConfig = TUNER_SOURCE_DIR "/etc/examples/flask.toml";
constexpr const char* kExampleApp = TUNER_SOURCE_DIR "/examples/flask/app.py";

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

void write_file(const std::string& path, const std::string& text) {
    std::ofstream(path) << text;
}

void replace_in_file(const std::string& path, const std::string& from, const std::string& to) {
    std::string text = read_file(path);
    const auto at = text.find(from);
    ASSERT_NE(at, std::string::npos) << from << " not in " << path;
    text.replace(at, from.size(), to);
    write_file(path, text);
}

// The example config with its [workers] keys replaced or added (values are TOML text).
std::string example_config(std::map<std::string, std::string> workers) {
    std::istringstream in(read_file(kExampleConfig));
    std::vector<std::string> lines;
    bool in_workers = false;
    for (std::string line; std::getline(in, line);) {
        if (line.rfind('[', 0) == 0) in_workers = line == "[workers]";
        if (in_workers) {
            const auto key = line.substr(0, line.find_first_of(" ="));
            if (auto it = workers.find(key); it != workers.end()) {
                line = key + " = " + it->second;
                workers.erase(it);
            }
        }
        lines.push_back(line);
    }
    std::string out;
    for (const auto& line : lines) {
        out += line + "\n";
        if (line == "[workers]") {
            for (const auto& [k, v] : workers) out += k + " = " + v + "\n";
        }
    }
    return out;
}

// From /proc/<pid>/stat: ppid and process group.
std::pair<pid_t, pid_t> parent_and_group(pid_t pid) {
    const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
    const auto close = stat.rfind(')');
    if (close == std::string::npos) return {-1, -1};
    std::istringstream rest(stat.substr(close + 2));
    char state = 0;
    pid_t ppid = -1, pgrp = -1;
    rest >> state >> ppid >> pgrp;
    return {ppid, pgrp};
}

// PSS of a process and its children (a `gunicorn -w 1` slot is a master and its worker), in bytes.
std::uint64_t tree_pss_bytes(pid_t root) {
    std::uint64_t total = 0;
    std::vector<pid_t> tree = {root};
    for (pid_t child : child_pids(root)) tree.push_back(child);
    for (pid_t pid : tree) {
        std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/smaps_rollup"));
        for (std::string line; std::getline(in, line);) {
            if (line.rfind("Pss:", 0) == 0) total += std::stoull(line.substr(4)) * 1024;
        }
    }
    return total;
}

// GET /health over a Unix socket answers 200: the app itself is up, not only gunicorn's master.
bool unix_health_ok(const std::string& path) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    std::string got;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
        const std::string req = "GET /health HTTP/1.0\r\nHost: x\r\n\r\n";
        if (::write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
            char buf[512];
            for (ssize_t n; got.size() < 4096 && (n = ::read(fd, buf, sizeof buf)) > 0;)
                got.append(buf, static_cast<std::size_t>(n));
        }
    }
    ::close(fd);
    return got.rfind("HTTP/1.0 200", 0) == 0 || got.rfind("HTTP/1.1 200", 0) == 0;
}

// The per-slot PSS of the way without a preload: `gunicorn -w 1` on the same app, alone.
std::uint64_t one_w1_slot_pss(const std::string& app_dir) {
    const std::string socket = app_dir + "/w1-slot.sock";
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::setpgid(0, 0);
        ::setenv("EXAMPLE_RSS_MB", "100", 1);  // as the preloaded app holds
        const int devnull = ::open("/dev/null", O_RDWR);
        ::dup2(devnull, 1);
        ::dup2(devnull, 2);
        ::execl("/usr/bin/python3", "python3", "-B", "-m", "gunicorn", "-w", "1", "-b",
                ("unix:" + socket).c_str(), "--chdir", app_dir.c_str(), "app:app", nullptr);
        ::_exit(127);
    }
    // Ready when its worker has imported the app and answers.
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline && !unix_health_ok(socket))
        std::this_thread::sleep_for(50ms);
    const std::uint64_t pss = tree_pss_bytes(pid);
    ::kill(-pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return pss;
}

nlohmann::json workers_json(const TunerdProcess& tunerd) {
    auto j = tunerd.admin_json("/workers");
    return j ? *j : nlohmann::json();
}

std::vector<pid_t> ready_pids(const nlohmann::json& workers) {
    std::vector<pid_t> pids;
    for (const auto& w : workers["workers"])
        if (w["state"] == "ready") pids.push_back(w["pid"].get<pid_t>());
    return pids;
}

std::string app_version(const TunerdProcess& tunerd) {
    auto r = tunerd.get("/");
    if (!r.ok() || r->status != 200) return "error";
    const auto j = nlohmann::json::parse(r->body, nullptr, false);
    return j.is_object() && j["version"].is_string() ? j["version"].get<std::string>() : "none";
}

TEST(Preload, FlaskExampleLifeCycleFromOnePreloader) {
    if (run_command({"/usr/bin/python3", "-c", "import flask, gunicorn"}, {}, 30s).exit_status != 0)
        FAIL() << "needs python3-flask and python3-gunicorn (scripts/install-deps --test)";
    // A copy of the example app, so a deploy can change it.
    TempDir app_dir("tunerd-preload-app");
    write_file(app_dir.path() + "/app.py", read_file(kExampleApp));
    TunerdProcess tunerd({.config = example_config({
                                        {"dir", "\"" + app_dir.path() + "\""},
                                        {"mode", "\"fixed\""},
                                        {"count", "2"},
                                        {"max", "16"},
                                        {"threads", "2"},
                                        {"env",
                                         "{ APP_VERSION = \"1\", PYTHONDONTWRITEBYTECODE = \"1\", "
                                         "EXAMPLE_RSS_MB = \"100\" }"},
                                    }) +
                                    "[server]\nmax_queue = 256\n"});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    ASSERT_TRUE(tunerd.wait_ready_at_target(2, 30s)) << tunerd.log();

    // ---- serving, and the process tree: preloader and workers are tunerd's children.
    EXPECT_EQ(app_version(tunerd), "1");
    auto workers = workers_json(tunerd);
    const auto& preloader = workers["preloader"];
    ASSERT_EQ(preloader["state"], "ready") << workers.dump(2);
    const pid_t preloader_pid = preloader["pid"].get<pid_t>();
    EXPECT_EQ(parent_and_group(preloader_pid).first, tunerd.pid());
    for (pid_t pid : ready_pids(workers)) {
        EXPECT_NE(pid, preloader_pid);
        EXPECT_EQ(parent_and_group(pid), std::make_pair(tunerd.pid(), pid)) << pid;
        // One process a slot: the gunicorn worker itself, tunerd standing in for its arbiter.
        EXPECT_TRUE(child_pids(pid).empty()) << "a preloaded gunicorn slot is one process: " << pid;
    }
    EXPECT_GE(preloader["workers_forked"].get<unsigned>(), 2u);

    // ---- memory: a preloaded slot's PSS against a `gunicorn -w 1` slot's.
    std::uint64_t preloaded = 0;
    for (pid_t pid : ready_pids(workers)) preloaded = std::max(preloaded, tree_pss_bytes(pid));
    const std::uint64_t w1 = one_w1_slot_pss(app_dir.path());
    std::cout << "per-slot PSS: preloaded " << preloaded / 1024 << " KiB, gunicorn -w 1 "
              << w1 / 1024 << " KiB\n";
    RecordProperty("preloaded_slot_pss_kib", static_cast<int>(preloaded / 1024));
    RecordProperty("w1_slot_pss_kib", static_cast<int>(w1 / 1024));
    EXPECT_GT(preloaded, 0u);
    // 100 MB held from import: a -w 1 slot holds all of it; a preloaded slot shares it with the
    // preloader and the other slot (PSS: a third of it).
    EXPECT_LT(preloaded * 2, w1) << "a preloaded slot should cost far less than a -w 1 slot";

    // ---- resize under load (POST: never retried): no request fails.
    {
        auto load = scenario_load(tunerd, "/io?ms=20");
        load.method = "POST";
        const auto r = resize_cycles_under_load(tunerd, load, {4, 1, 2}, 1, 20s);
        EXPECT_TRUE(r.clean()) << r.describe() << "\n" << tunerd.log();
    }

    // ---- kill -9 of a worker: replaced, from the same preloader.
    {
        const pid_t victim = ready_pids(workers_json(tunerd)).front();
        ::kill(victim, SIGKILL);
        EXPECT_TRUE(tunerd.wait_workers(
            [&](const nlohmann::json& j) {
                const auto pids = ready_pids(j);
                return pids.size() == 2 &&
                       std::find(pids.begin(), pids.end(), victim) == pids.end();
            },
            15s))
            << tunerd.admin_dump("/workers");
        EXPECT_EQ(workers_json(tunerd)["preloader"]["pid"], preloader_pid);
    }

    // ---- kill -9 of the preloader: the workers serve on; it comes back; a new slot is forked
    // from the new one.
    {
        const auto before = workers_json(tunerd);
        const auto forked_before = before["preloader"]["workers_forked"].get<unsigned>();
        ::kill(preloader_pid, SIGKILL);
        for (int i = 0; i < 5; ++i) EXPECT_EQ(app_version(tunerd), "1");
        EXPECT_TRUE(tunerd.wait_workers(
            [&](const nlohmann::json& j) {
                return j["preloader"]["state"] == "ready" &&
                       j["preloader"]["pid"] != preloader_pid && j["preloader"]["restarts"] == 1;
            },
            15s))
            << tunerd.admin_dump("/workers");
        EXPECT_EQ(ready_pids(workers_json(tunerd)), ready_pids(before)) << "no worker was lost";
        ASSERT_TRUE(tunerd.set_worker_target(3).ok());
        EXPECT_TRUE(tunerd.wait_ready_at_target(3, 15s)) << tunerd.admin_dump("/workers");
        const auto after = workers_json(tunerd);
        EXPECT_EQ(after["preloader"]["workers_forked"].get<unsigned>(), forked_before + 1);
        for (pid_t pid : ready_pids(after)) EXPECT_EQ(parent_and_group(pid).first, tunerd.pid());
    }

    // ---- the threads knob (here by a config reload, which also ends the manual target: back to
    // workers.count = 2): the slots roll to 4 threads, each forked from the same preloader, and
    // serve while they do.
    {
        const auto before = workers_json(tunerd);
        const auto forked_before = before["preloader"]["workers_forked"].get<unsigned>();
        replace_in_file(tunerd.config_path(), "threads = 2", "threads = 4");
        LoadGenerator load(scenario_load(tunerd, "/io?ms=20"));
        load.start();
        tunerd.signal(SIGHUP);
        const bool rolled = tunerd.wait_workers(
            [](const nlohmann::json& j) {
                unsigned at_four = 0;
                for (const auto& w : j["workers"])
                    if (w["state"] == "ready" && w["threads"] == 4) ++at_four;
                return at_four == 2 && j["workers"].size() == 2;
            },
            30s);
        const auto result = load.stop();
        EXPECT_TRUE(rolled) << tunerd.admin_dump("/workers") << tunerd.log();
        EXPECT_EQ(result.client_errors + result.non_2xx(), 0u) << result.summary();
        const auto after = workers_json(tunerd);
        EXPECT_EQ(after["preloader"]["pid"], before["preloader"]["pid"]);
        EXPECT_GE(after["preloader"]["workers_forked"].get<unsigned>(), forked_before + 2);
        for (pid_t pid : ready_pids(after)) EXPECT_EQ(parent_and_group(pid).first, tunerd.pid());
    }

    // ---- a deploy with a new env value, under load (POST: never retried): a new preloader, the
    // slots roll to it, no request fails, the old preloader goes once its last worker is gone.
    {
        replace_in_file(tunerd.config_path(), "APP_VERSION = \"1\"", "APP_VERSION = \"2\"");
        auto options = scenario_load(tunerd, "/io?ms=10", 8);
        options.method = "POST";
        LoadGenerator load(options);
        load.start();
        const auto restarted =
            run_command({TUNERCTL_BINARY, "restart", "--wait", "--config", tunerd.config_path(),
                         "--admin", "http://" + tunerd.admin_address()},
                        {}, 60s);
        const auto result = load.stop();
        EXPECT_EQ(restarted.exit_status, 0) << restarted.output << tunerd.log();
        EXPECT_GT(result.ok_2xx, 0u) << result.summary();
        EXPECT_EQ(result.client_errors + result.non_2xx(), 0u) << result.summary() << tunerd.log();
        for (int i = 0; i < 6; ++i) EXPECT_EQ(app_version(tunerd), "2");
        EXPECT_TRUE(tunerd.wait_workers(
            [](const nlohmann::json& j) {
                return j["preloader"]["generation"] == 2 && j["preloader"]["state"] == "ready" &&
                       j["preloader"]["older_running"] == 0;
            },
            10s))
            << tunerd.admin_dump("/workers");
    }

    // ---- a deploy whose app fails to import: the rollout stops with the traceback in /health,
    // and the workers of the last good deploy keep serving.
    {
        const auto serving = ready_pids(workers_json(tunerd));
        write_file(app_dir.path() + "/app.py",
                   "import os\nraise RuntimeError('settings missing: deploy incomplete')\n");
        auto r = tunerd.admin_request(
            {"POST", "/workers/restart", "{}", {{"Content-Type", "application/json"}}});
        ASSERT_TRUE(r.ok());
        nlohmann::json health;
        const auto deadline = std::chrono::steady_clock::now() + 15s;
        while (std::chrono::steady_clock::now() < deadline) {
            auto h = tunerd.admin_json("/health");
            if (h && (*h)["workers"]["restart"]["state"] == "halted") {
                health = *h;
                break;
            }
            std::this_thread::sleep_for(50ms);
        }
        ASSERT_FALSE(health.is_null()) << tunerd.admin_dump("/health") << tunerd.log();
        const auto& p = health["workers"]["preloader"];
        EXPECT_NE(p["last_error"].dump().find("deploy incomplete"), std::string::npos)
            << health.dump(2);
        EXPECT_NE(health["workers"]["restart"]["halted_reason"].dump().find("deploy incomplete"),
                  std::string::npos)
            << health.dump(2);
        // The traceback reaches the stderr tail as the pipe is read: give it a moment.
        EXPECT_TRUE(tunerd.wait_workers(
            [](const nlohmann::json& j) {
                const auto s = j["preloader"]["last_stderr"].dump();
                return s.find("Traceback") != std::string::npos &&
                       s.find("app.py") != std::string::npos;
            },
            5s))
            << tunerd.admin_dump("/workers");
        EXPECT_NE(health["problems"].dump().find("halted"), std::string::npos) << health.dump(2);
        for (int i = 0; i < 5; ++i) EXPECT_EQ(app_version(tunerd), "2");
        EXPECT_EQ(ready_pids(workers_json(tunerd)), serving)
            << tunerd.admin_dump("/workers") << tunerd.log();
    }
}

// workers.server = "waitress": each slot is one process, forked from the preloader, serving the
// preloaded app through the front, and recycled after max_requests from the same preloader.
TEST(Preload, WaitressSlotIsOneProcess) {
    if (run_command({"/usr/bin/python3", "-c", "import flask, waitress"}, {}, 30s).exit_status != 0)
        FAIL() << "needs python3-flask and python3-waitress (scripts/install-deps --test)";
    TunerdProcess tunerd({.config = example_config({
                              {"dir", "\"" TUNER_SOURCE_DIR "/examples/flask\""},
                              {"server", "\"waitress\""},
                              {"mode", "\"fixed\""},
                              {"count", "2"},
                              {"threads", "2"},
                              {"max_requests", "25"},
                              {"max_requests_jitter", "0"},
                              {"env", "{ APP_VERSION = \"w\", PYTHONDONTWRITEBYTECODE = \"1\" }"},
                          })});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    ASSERT_TRUE(tunerd.wait_ready_at_target(2, 30s)) << tunerd.log();
    EXPECT_EQ(app_version(tunerd), "w");
    const auto workers = workers_json(tunerd);
    const pid_t preloader_pid = workers["preloader"]["pid"].get<pid_t>();
    for (pid_t pid : ready_pids(workers)) {
        EXPECT_NE(pid, preloader_pid);
        EXPECT_EQ(parent_and_group(pid), std::make_pair(tunerd.pid(), pid)) << pid;
        EXPECT_TRUE(child_pids(pid).empty()) << "a waitress slot is one process: " << pid;
        std::cout << "waitress slot " << pid << " PSS " << tree_pss_bytes(pid) / 1024 << " KiB\n";
    }
    // Recycling (max_requests = 25): 200 requests from 2 clients, each slot replaced by a new
    // fork of the same preloader, and no request fails.
    const auto first = ready_pids(workers);
    const auto result = run_load(scenario_load(tunerd, "/io?ms=5", 2), 200);
    EXPECT_EQ(result.ok_2xx, 200u) << result.summary() << tunerd.log();
    EXPECT_GE(tunerd.metric("tunerd_worker_recycles_total").value_or(0), 2);
    ASSERT_TRUE(tunerd.wait_ready_at_target(2, 15s)) << tunerd.log();
    const auto after = workers_json(tunerd);
    EXPECT_EQ(after["preloader"]["pid"].get<pid_t>(), preloader_pid);
    for (pid_t pid : ready_pids(after)) {
        EXPECT_EQ(std::count(first.begin(), first.end(), pid), 0) << pid << " never recycled";
        EXPECT_EQ(parent_and_group(pid).first, tunerd.pid());
    }
}

}  // namespace
}  // namespace tuner::test
