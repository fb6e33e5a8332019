// The live-resizable worker pool with the built-in demo app: resizes, kill -9, recycling
// and crash loops under bounded load with zero failed requests, statistics that agree with the
// client, manual targets, readiness by health_path, and max_worker_rss. The same scenarios with
// the Flask example under gunicorn are in gunicorn_test.cpp.
#include "server/pool.hpp"

#include <signal.h>

#include <algorithm>
#include <fstream>
#include <regex>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "tests/support/load_generator.hpp"
#include "tests/support/pool_scenarios.hpp"
#include "tests/support/tunerd_process.hpp"

namespace tuner::test {
namespace {

using namespace std::chrono_literals;

struct DemoPool {
    unsigned workers = 2;
    unsigned threads = 1;
    unsigned cpu_ms = 0;
    unsigned io_ms = 20;
    std::string workers_extra;  // more [workers] keys
    std::string extra;          // more sections
};

// A demo pool of a known size: fixed mode so the controller never resizes under the test; the
// admin's manual target drives every resize.
std::string demo_pool(const DemoPool& p) {
    return "[workers]\nmode = \"fixed\"\nmax = 16\ncount = " + std::to_string(p.workers) +
           "\nthreads = " + std::to_string(p.threads) + "\n" + p.workers_extra +
           "\n[demo]\nrss_mb = 5\ncpu_ms = " + std::to_string(p.cpu_ms) +
           "\nio_ms = " + std::to_string(p.io_ms) + "\n" + p.extra + "\n";
}

std::set<pid_t> worker_pids(const TunerdProcess& tunerd) {
    std::set<pid_t> out;
    auto j = tunerd.admin_json("/workers");
    if (!j) return out;
    for (const auto& w : (*j)["workers"]) out.insert(w["pid"].get<pid_t>());
    return out;
}

TEST(Pool, ResizeCyclesUnderLoadFailNoRequest) {
    TunerdProcess tunerd(
        {.config = demo_pool({.workers = 1, .threads = 2}) + "[server]\nmax_queue = 256\n"});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    // POST, which the front never retries: a resize must lose nothing without help from the
    // retry path (workers leave dispatch before they drain, and get no signal before that).
    auto load = scenario_load(tunerd, "/work");
    load.method = "POST";
    const auto r = resize_cycles_under_load(tunerd, load, {1, 8, 2, 6, 1}, 3, 10s);
    EXPECT_TRUE(r.clean()) << r.describe() << "\n" << tunerd.log();
    EXPECT_EQ(r.retries, 0) << r.describe();
    // Workers really came and went under traffic: 7 + 4 started in each cycle.
    EXPECT_GE(tunerd.metric("tunerd_worker_spawns_total").value_or(0), 1 + 3 * (7 + 4));
}

TEST(Pool, KillNineOfBusyWorkerUnderLoadFailsNoGet) {
    TunerdProcess tunerd({.config = demo_pool({.workers = 3, .threads = 2, .io_ms = 200})});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    const auto r = kill_busy_worker_under_load(tunerd, scenario_load(tunerd, "/"),
                                               KillTarget::worker, 30s, 1s);
    EXPECT_TRUE(r.clean()) << r.describe() << "\n" << tunerd.log();
    // The killed worker had requests in flight: they were retried on another worker.
    EXPECT_GE(r.retries, 1) << r.describe();
}

TEST(Pool, KillNineOfTheOnlyWorkerUnderLoadFailsNoGet) {
    // Nowhere else to retry: the retries wait in the queue for the replacement (started at once:
    // the worker had served) instead of going back to the dead worker.
    TunerdProcess tunerd({.config = demo_pool({.workers = 1, .threads = 2, .io_ms = 200})});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    const auto r = kill_busy_worker_under_load(tunerd, scenario_load(tunerd, "/"),
                                               KillTarget::worker, 30s, 1s);
    EXPECT_TRUE(r.clean()) << r.describe() << "\n" << tunerd.log();
    EXPECT_GE(r.retries, 1) << r.describe();
}

TEST(Pool, PeriodicKillsOfServingWorkersAreReplacedAtOnceAndFailNoGet) {
    // kill -9 of a ready worker every 2 s under load: each had served, so its slot is
    // refilled at once (no growing backoff), capacity never collapses and no GET fails.
    TunerdProcess tunerd({.config = demo_pool({.workers = 6, .threads = 4, .io_ms = 20})});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    LoadGenerator load({.address = tunerd.public_address(),
                        .target = "/",
                        .connections = 32,
                        .max_duration = 60s});
    load.start();
    std::this_thread::sleep_for(1s);
    unsigned kills = 0;
    for (int round = 0; round < 4; ++round) {
        // The oldest ready worker: each slot dies once, so each death is judged on its own
        // (the third death of one slot within 10 s backs off: CrashBackoff in reconcile_test).
        const auto pids = tunerd.ready_worker_pids();
        ASSERT_FALSE(pids.empty()) << tunerd.log();
        if (::kill(pids.front(), SIGKILL) == 0) ++kills;
        std::this_thread::sleep_for(2s);
    }
    // Within a second of the last kill the pool is whole again.
    EXPECT_TRUE(tunerd.wait_ready_at_target(6, 1500ms)) << tunerd.admin_dump("/workers");
    const auto result = load.stop();
    EXPECT_EQ(kills, 4u);
    EXPECT_EQ(result.client_errors, 0u) << result.summary();
    EXPECT_EQ(result.non_2xx(), 0u) << result.summary();
    const std::string log = tunerd.log();
    const std::regex crashed(R"(event=worker_crashed .*restart_in_s=([0-9.]+))");
    unsigned crashes = 0;
    for (auto it = std::sregex_iterator(log.begin(), log.end(), crashed);
         it != std::sregex_iterator(); ++it, ++crashes) {
        EXPECT_EQ(std::stod((*it)[1].str()), 0.0) << (*it)[0].str();
    }
    EXPECT_EQ(crashes, kills) << log;
}

TEST(Pool, RecyclesAfterMaxRequestsWithoutFailingOrDippingBelowTarget) {
    constexpr unsigned kWorkers = 3;
    TunerdProcess tunerd(
        {.config = demo_pool({.workers = kWorkers,
                              .threads = 2,
                              .io_ms = 10,
                              .workers_extra = "max_requests = 50\nmax_requests_jitter = 20\n",
                              .extra = "[policy]\ninterval = \"250ms\"\nwindow = \"2s\"\n"})});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    auto min_ready = [&]() -> std::optional<unsigned> {
        auto perf = tunerd.admin_json("/performance");
        if (!perf) return std::nullopt;
        return (*perf)["latency"]["min_ready"].get<unsigned>();
    };
    // The window first has to forget the start, when fewer were ready.
    const auto settle = std::chrono::steady_clock::now() + 20s;
    while (min_ready() != kWorkers && std::chrono::steady_clock::now() < settle)
        std::this_thread::sleep_for(100ms);
    ASSERT_EQ(min_ready(), kWorkers) << tunerd.log();
    const auto first_pids = worker_pids(tunerd);

    LoadGenerator load(scenario_load(tunerd, "/"));
    load.start();
    unsigned lowest = kWorkers;
    // 600 responses: every worker serves ~200, so each is recycled at least twice.
    const auto deadline = std::chrono::steady_clock::now() + 120s;
    while (load.completed() < 600 && std::chrono::steady_clock::now() < deadline) {
        if (auto m = min_ready()) lowest = std::min(lowest, *m);
        std::this_thread::sleep_for(100ms);
    }
    const auto result = load.stop();
    // The last recycles are still in the window for a moment.
    for (int i = 0; i < 30; ++i) {
        if (auto m = min_ready()) lowest = std::min(lowest, *m);
        std::this_thread::sleep_for(100ms);
    }
    EXPECT_EQ(result.client_errors, 0u) << result.summary();
    EXPECT_EQ(result.non_2xx(), 0u) << result.summary();
    EXPECT_GE(result.ok_2xx, 600u) << result.summary();
    EXPECT_EQ(lowest, kWorkers) << "capacity dipped below the target during recycling\n"
                                << tunerd.log();
    EXPECT_GE(tunerd.metric("tunerd_worker_recycles_total").value_or(0), kWorkers);
    ASSERT_TRUE(tunerd.wait_ready_at_target(kWorkers, 30s)) << tunerd.log();
    for (pid_t pid : worker_pids(tunerd)) {
        EXPECT_EQ(first_pids.count(pid), 0u) << "worker pid " << pid << " was never recycled";
    }
}

TEST(Pool, StatisticsAgreeWithTheClient) {
    // One worker of one thread, 30 ms of waiting per request, 8 clients: a queue of ~7.
    TunerdProcess tunerd({.config = demo_pool({.workers = 1, .threads = 1, .io_ms = 30}) +
                                    "[policy]\nwindow = \"60s\"\n"});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    auto client = run_load(scenario_load(tunerd, "/", 8), 120);
    ASSERT_EQ(client.ok_2xx, 120u) << client.summary();
    // A fresh control cycle, so /performance holds the whole run.
    auto optimized = tunerd.admin_request(
        {"POST", "/performance/optimize", {}, {{"Content-Type", "application/json"}}});
    ASSERT_TRUE(optimized.ok());
    auto perf = tunerd.admin_json("/performance");
    ASSERT_TRUE(perf.ok());
    const auto& latency = (*perf)["latency"];
    ASSERT_EQ(latency["completed"].get<std::uint64_t>(), 120u) << latency.dump(2);
    const double queue_p50 = latency["queue_wait"]["p50_ms"].get<double>();
    const double service_p50 = latency["service"]["p50_ms"].get<double>();
    const double client_p50 = client.percentile_ms(0.5);
    EXPECT_NEAR(service_p50, 30.0, 4.0) << latency.dump(2);
    EXPECT_NEAR(queue_p50 + service_p50, client_p50, 0.1 * client_p50)
        << "client p50 " << client_p50 << " ms\n"
        << latency.dump(2);
    EXPECT_NEAR(latency["total"]["p50_ms"].get<double>(), client_p50, 0.1 * client_p50)
        << latency.dump(2);
    // The queue really formed: most of each request's time was waiting.
    EXPECT_GT(queue_p50, 4 * service_p50) << latency.dump(2);
}

TEST(Pool, CrashLoopShowsDegradedWithExitStatusStderrAndGrowingBackoff) {
    // A worker that dies at once, as an app with an import error does. startup_timeout is long
    // so tunerd stays up (it exits 69 when no worker was ever ready by then).
    TunerdProcess tunerd(
        {.config = demo_pool({.workers = 1,
                              // The app's stderr carries a terminal escape (ESC [2J: clear).
                              .workers_extra = "command = [\"/bin/sh\", \"-c\", \"printf 'cannot "
                                               "import app: boom\\\\033[2J\\\\n' >&2; exit 3\"]\n"
                                               "startup_timeout = \"120s\"\n"}),
         .wait_ready = false});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    const auto health = tunerd.wait_health("degraded", 30s);
    ASSERT_EQ(health["status"], "degraded") << health.dump(2) << "\n" << tunerd.log();
    auto answer = tunerd.admin_request({"GET", "/health", {}, {}});
    ASSERT_TRUE(answer.ok());
    EXPECT_EQ(answer->status, 503) << answer->body;
    const auto& crash = health["workers"]["last_crash"];
    EXPECT_NE(crash["exit"].get<std::string>().find("exited with status 3"), std::string::npos)
        << health.dump(2);
    ASSERT_FALSE(crash["stderr"].empty()) << health.dump(2);
    EXPECT_NE(crash["stderr"].back().get<std::string>().find("boom"), std::string::npos)
        << health.dump(2);
    EXPECT_GE(health["workers"]["crash_streak"].get<unsigned>(), 3u);
    const std::string problems = health["problems"].dump();
    EXPECT_NE(problems.find("crash loop"), std::string::npos) << problems;

    // The app's line is in tunerd's log as one quoted field, its escape written out: no raw
    // control byte reaches a terminal that shows the log.
    const std::string log = tunerd.log();
    EXPECT_NE(log.find("stream=stderr line=\"cannot import app: boom\\x1b[2J\""), std::string::npos)
        << log;
    EXPECT_EQ(log.find('\x1b'), std::string::npos) << "a raw ESC in the log";

    // Each replacement waited twice as long as the one before: 1 s, 2 s, 4 s.
    std::vector<double> backoffs;
    const std::regex crashed(R"(event=worker_crashed .*restart_in_s=([0-9.]+))");
    for (auto it = std::sregex_iterator(log.begin(), log.end(), crashed);
         it != std::sregex_iterator(); ++it) {
        backoffs.push_back(std::stod((*it)[1].str()));
    }
    ASSERT_GE(backoffs.size(), 3u) << log;
    EXPECT_EQ(backoffs[0], 1.0);
    EXPECT_EQ(backoffs[1], 2.0);
    EXPECT_EQ(backoffs[2], 4.0);
}

TEST(Pool, ManualTargetOutOfBoundsIs400NamingTheBoundsAndDeleteReleases) {
    TunerdProcess tunerd({.config = "[workers]\nmode = \"fixed\"\ncount = 2\nmin = 1\nmax = 4\n"
                                    "[demo]\nrss_mb = 5\n"});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    for (long long wanted : {5LL, 0LL, -1LL}) {
        auto r = tunerd.set_worker_target(wanted);
        ASSERT_TRUE(r.ok());
        EXPECT_EQ(r->status, 400) << wanted << ": " << r->body;
        EXPECT_NE(r->body.find("between 1 and 4"), std::string::npos) << r->body;
    }
    auto not_a_number = tunerd.admin_request({"POST",
                                              "/workers/target",
                                              "{\"workers\": \"x\"}",
                                              {{"Content-Type", "application/json"}}});
    ASSERT_TRUE(not_a_number.ok());
    EXPECT_EQ(not_a_number->status, 400) << not_a_number->body;

    auto pinned = tunerd.set_worker_target(3);
    ASSERT_TRUE(pinned.ok());
    EXPECT_EQ(pinned->status, 200) << pinned->body;
    ASSERT_TRUE(tunerd.wait_ready_at_target(3, 10s)) << tunerd.log();
    EXPECT_EQ((*tunerd.admin_json("/workers"))["manual_target"], 3);

    auto released = tunerd.release_worker_target();
    ASSERT_TRUE(released.ok());
    EXPECT_EQ(released->status, 200) << released->body;
    EXPECT_EQ(nlohmann::json::parse(released->body)["pinned"], false) << released->body;
    // The fixed policy's count holds again.
    EXPECT_TRUE(tunerd.wait_ready_at_target(2, 15s)) << tunerd.log();
    EXPECT_TRUE((*tunerd.admin_json("/workers"))["manual_target"].is_null());
}

TEST(Pool, WorkerWhoseHealthPathAnswersNon2xxNeverBecomesReady) {
    TunerdProcess tunerd({.config = demo_pool({.workers = 1,
                                               .workers_extra = "health_path = \"/status/503\"\n"
                                                                "startup_timeout = \"60s\"\n"}),
                          .wait_ready = false});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    // Its socket accepts within milliseconds; the health check keeps it out for good.
    const bool became_ready = tunerd.wait_workers(
        [](const nlohmann::json& w) { return w["ready"].get<unsigned>() > 0; }, 3s);
    EXPECT_FALSE(became_ready) << tunerd.log();
    auto workers = tunerd.admin_json("/workers");
    ASSERT_TRUE(workers.ok());
    ASSERT_EQ((*workers)["workers"].size(), 1u) << workers->dump(2);
    EXPECT_EQ((*workers)["workers"][0]["state"], "starting") << workers->dump(2);
    EXPECT_EQ((*tunerd.admin_json("/health"))["status"], "starting");
}

TEST(Pool, WorkerWhoseHealthPathAnswers2xxBecomesReady) {
    TunerdProcess tunerd(
        {.config = demo_pool({.workers = 2, .workers_extra = "health_path = \"/health\"\n"})});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    EXPECT_TRUE(tunerd.wait_ready_at_target(2, 10s)) << tunerd.log();
    auto r = tunerd.get("/work?io_ms=0");
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 200);
}

TEST(Pool, RecyclesWorkerAboveMaxWorkerRss) {
    TunerdProcess tunerd(
        {.config = demo_pool({.workers = 2, .workers_extra = "max_worker_rss = \"80MB\"\n"})});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    // One worker grows to 160 MB of resident memory.
    auto grown = tunerd.get("/rss?mb=160");
    ASSERT_TRUE(grown.ok());
    ASSERT_EQ(grown->status, 200) << grown->body;
    const pid_t big = std::stoi(grown->header("x-worker-pid"));
    const bool replaced = tunerd.wait_workers(
        [&](const nlohmann::json& w) {
            if (w["ready"] != 2) return false;
            return std::none_of(w["workers"].begin(), w["workers"].end(),
                                [&](const nlohmann::json& x) { return x["pid"] == big; });
        },
        30s);
    EXPECT_TRUE(replaced) << tunerd.log();
    EXPECT_GE(tunerd.metric("tunerd_worker_recycles_total").value_or(0), 1);
    EXPECT_NE(tunerd.log().find("max_worker_rss"), std::string::npos) << tunerd.log();
    EXPECT_EQ(tunerd.metric("tunerd_worker_crashes_total").value_or(-1), 0);
}

// ---- rolling restart (a code deploy) ----------------------------------------------------------

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void replace_in_file(const std::string& path, const std::string& from, const std::string& to) {
    std::string text = read_file(path);
    const auto at = text.find(from);
    ASSERT_NE(at, std::string::npos) << from << " not in\n" << text;
    text.replace(at, from.size(), to);
    std::ofstream(path) << text;
}

std::string restart_state(const TunerdProcess& tunerd) {
    auto j = tunerd.admin_json("/workers");
    if (!j) return "";
    return (*j)["restart"]["state"].get<std::string>();
}

TEST(Pool, RollingRestartUnderLoadRunsTheNewAppVersionEverywhereAndFailsNoRequest) {
    constexpr unsigned kWorkers = 3;
    TunerdProcess tunerd(
        {.config = demo_pool({.workers = kWorkers,
                              .threads = 2,
                              .io_ms = 10,
                              .workers_extra = "env = { APP_VERSION = \"1\" }\n"})});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    ASSERT_TRUE(tunerd.wait_ready_at_target(kWorkers, 30s)) << tunerd.log();
    auto before = tunerd.get("/");
    ASSERT_TRUE(before.ok());
    EXPECT_EQ(before->header("x-app-version"), "1");
    const auto old_pids = worker_pids(tunerd);

    LoadGenerator load(scenario_load(tunerd, "/", 32));
    load.start();
    std::this_thread::sleep_for(300ms);
    // The deploy: the config changes, then `tunerctl restart --wait` (it rereads the file).
    replace_in_file(tunerd.config_path(), "APP_VERSION = \"1\"", "APP_VERSION = \"2\"");
    const auto restarted =
        run_command({TUNERCTL_BINARY, "restart", "--wait", "--config", tunerd.config_path(),
                     "--admin", "http://" + tunerd.admin_address()},
                    {}, 60s);
    std::this_thread::sleep_for(300ms);
    const auto result = load.stop();
    EXPECT_EQ(restarted.exit_status, 0) << restarted.output << tunerd.log();
    EXPECT_NE(restarted.output.find("done"), std::string::npos) << restarted.output;
    EXPECT_EQ(result.client_errors, 0u) << result.summary();
    EXPECT_EQ(result.non_2xx(), 0u) << result.summary();
    EXPECT_GT(result.ok_2xx, 100u) << result.summary();

    // Every worker is new, of generation 2, and every later response carries the new value.
    auto workers = tunerd.admin_json("/workers");
    ASSERT_TRUE(workers.ok());
    EXPECT_EQ((*workers)["restart"]["state"], "done") << workers->dump(2);
    EXPECT_EQ((*workers)["restart"]["replaced"], kWorkers) << workers->dump(2);
    unsigned ready = 0;
    for (const auto& w : (*workers)["workers"]) {
        if (w["state"] != "ready") continue;
        ++ready;
        EXPECT_EQ(w["generation"], 2) << workers->dump(2);
        EXPECT_EQ(old_pids.count(w["pid"].get<pid_t>()), 0u) << workers->dump(2);
    }
    EXPECT_EQ(ready, kWorkers) << workers->dump(2);
    for (int i = 0; i < 30; ++i) {
        auto r = tunerd.get("/");
        ASSERT_TRUE(r.ok());
        EXPECT_EQ(r->header("x-app-version"), "2") << "response " << i;
    }
}

TEST(Pool, RestartIsRefusedOnABadConfigAndHaltsWhenTheNewWorkerFailsItsHealthCheck) {
    TunerdProcess tunerd(
        {.config = demo_pool(
             {.workers = 2, .io_ms = 5, .workers_extra = "startup_timeout = \"1500ms\"\n"})});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    ASSERT_TRUE(tunerd.wait_ready_at_target(2, 30s)) << tunerd.log();
    const auto old_pids = worker_pids(tunerd);
    const std::string good = read_file(tunerd.config_path());

    // A config file with an error: 409 naming the key and its line, nothing replaced.
    replace_in_file(tunerd.config_path(), "startup_timeout = \"1500ms\"",
                    "startup_timeout = \"soon\"");
    auto refused = tunerd.admin_request(
        {"POST", "/workers/restart", "{}", {{"Content-Type", "application/json"}}});
    ASSERT_TRUE(refused.ok());
    EXPECT_EQ(refused->status, 409) << refused->body;
    EXPECT_NE(refused->body.find("startup_timeout"), std::string::npos) << refused->body;
    EXPECT_TRUE(std::regex_search(refused->body, std::regex(R"(tunerd\.toml:[0-9]+:[0-9]+: )")))
        << "no line number: " << refused->body;
    EXPECT_EQ(restart_state(tunerd), "none");

    // A deploy whose workers never pass the health check: the restart halts at the first new
    // worker, the old ones keep serving, /health says so. SIGUSR2 starts this one.
    std::ofstream(tunerd.config_path()) << good;
    replace_in_file(tunerd.config_path(), "[workers]\n", "[workers]\nhealth_path = \"/nowhere\"\n");
    tunerd.signal(SIGUSR2);
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (restart_state(tunerd) != "halted" && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(100ms);
    ASSERT_EQ(restart_state(tunerd), "halted") << tunerd.admin_dump("/workers") << tunerd.log();
    auto health = tunerd.admin_json("/health");
    ASSERT_TRUE(health.ok());
    EXPECT_EQ((*health)["status"], "ok") << health->dump(2);
    EXPECT_NE((*health)["problems"].dump().find("halted"), std::string::npos) << health->dump(2);
    EXPECT_NE((*health)["workers"]["restart"]["halted_reason"].dump().find("/nowhere"),
              std::string::npos)
        << health->dump(2);
    // The two old workers, still the ones serving, and no replacement keeps being tried.
    std::this_thread::sleep_for(2s);
    EXPECT_EQ(worker_pids(tunerd), old_pids) << tunerd.admin_dump("/workers");
    for (int i = 0; i < 20; ++i) {
        auto r = tunerd.get("/");
        ASSERT_TRUE(r.ok());
        EXPECT_EQ(r->status, 200);
    }
}

}  // namespace
}  // namespace tuner::test
