// The tuner's admin API and operations against the real daemon: probed limits in the
// log and /health, /performance/decisions?since=&limit=, POST /performance/optimize, SIGHUP
// reloads (invalid kept out, lower bounds obeyed), and /metrics clean under `promtool check
// metrics` once every family has samples.
#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <sstream>

#include <gtest/gtest.h>

#include "tests/integration/tuner_test_support.hpp"

namespace tuner::test {
namespace {

using namespace std::chrono_literals;

std::string replaced(std::string text, const std::string& from, const std::string& to) {
    const auto at = text.find(from);
    if (at != std::string::npos) text.replace(at, from.size(), to);
    return text;
}

// Waits until the daemon's log holds `needle`.
bool log_shows(const TunerdProcess& tunerd, const std::string& needle,
               std::chrono::milliseconds timeout = 10s) {
    return eventually([&] { return tunerd.log().find(needle) != std::string::npos; }, timeout);
}

std::string rfc3339(double unix_s) {
    const auto whole = static_cast<std::time_t>(unix_s);
    std::tm tm{};
    ::gmtime_r(&whole, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>((unix_s - static_cast<double>(whole)) * 1000));
    return buf;
}

int decisions_status(const TunerdProcess& tunerd, const std::string& query) {
    auto r = tunerd.admin_request({"GET", "/performance/decisions?" + query, {}, {}});
    return r ? r->status : -1;
}

TEST(TunerApi, LogsTheProbedLimitsAtStartAndHealthShowsThem) {
    TunerdProcess tunerd({.config = "[log]\nlevel = \"info\"\n"});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    const std::string log = tunerd.log();
    const auto line_at = log.find("event=limits ");
    ASSERT_NE(line_at, std::string::npos) << log;
    const std::string line = log.substr(line_at, log.find('\n', line_at) - line_at);
    for (const char* field : {"cgroup=", "cores=", "cores_source=", "memory_limit=",
                              "memory_source=", "working_set=", "psi="})
        EXPECT_NE(line.find(field), std::string::npos) << field << " missing: " << line;

    auto health = tunerd.admin_json("/health");
    ASSERT_TRUE(health.ok());
    const auto& limits = (*health)["limits"];
    ASSERT_TRUE(limits.is_object()) << health->dump(2);
    const auto cores = limits["cpu"]["effective_cores"].get<unsigned>();
    EXPECT_GE(cores, 1u);
    EXPECT_NE(line.find("cores=" + std::to_string(cores) + " "), std::string::npos) << line;
    EXPECT_GT(limits["memory"]["limit_bytes"].get<std::uint64_t>(), 0u);
    EXPECT_TRUE(limits["memory"]["source"].is_string());
    EXPECT_TRUE(limits["cgroup"]["version"].is_string());
}

TEST(TunerApi, DecisionsTakeSinceAsRfc3339OrUnixSecondsAndALimit) {
    TunerdProcess tunerd({.config = "[log]\nlevel = \"info\"\n"});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    std::this_thread::sleep_for(50ms);  // the manual decisions come strictly after the seed
    ASSERT_TRUE(pin_workers(tunerd, 2).ok());
    ASSERT_TRUE(release_workers(tunerd).ok());

    const auto all = admin_decisions(tunerd, "limit=100");
    ASSERT_GE(all.size(), 3u) << all.dump(2);  // seed, manual target, manual release
    const auto& seed = all.back();
    ASSERT_EQ(seed["rule"], "seed_formula");
    const auto manual = decisions_of_rule(all, "manual");
    ASSERT_EQ(manual.size(), 2u);
    const double pinned_at = unix_ms_to_s(manual.back()["time_unix_ms"]);
    ASSERT_GT(pinned_at, unix_ms_to_s(seed["time_unix_ms"]));

    // From the pin on: the manual decisions and whatever the controller decided since.
    // Half a millisecond early in Unix seconds, so the decimal rounding cannot skip the pin.
    char unix_since[32];
    std::snprintf(unix_since, sizeof unix_since, "%.4f", pinned_at - 0.0005);
    for (const std::string& since : {std::string(unix_since), rfc3339(pinned_at)}) {
        const auto from_pin = admin_decisions(tunerd, "since=" + since + "&limit=100");
        EXPECT_EQ(decisions_of_rule(from_pin, "manual").size(), 2u) << since;
        EXPECT_TRUE(decisions_of_rule(from_pin, "seed_formula").empty()) << since;
    }
    EXPECT_EQ(admin_decisions(tunerd, "since=2000-01-01T00:00:00%2B02:00&limit=100").size(),
              all.size());
    EXPECT_EQ(admin_decisions(tunerd, "since=946684800").size(), all.size());
    EXPECT_TRUE(admin_decisions(tunerd, "since=" + std::to_string(unix_now_s() + 3600)).empty());
    const auto newest = admin_decisions(tunerd, "limit=1");
    ASSERT_EQ(newest.size(), 1u);
    EXPECT_EQ(newest[0]["id"], all[0]["id"]);
    EXPECT_FALSE(newest[0]["time"].get<std::string>().empty());

    for (const char* bad : {"since=yesterday", "since=", "since=-5", "since=2026-13-40T00:00:00Z",
                            "limit=0", "limit=abc", "limit=-1", "limit=10001"})
        EXPECT_EQ(decisions_status(tunerd, bad), 400) << bad;
    auto r = tunerd.admin_request({"GET", "/performance/decisions?since=soon", {}, {}});
    ASSERT_TRUE(r.ok());
    EXPECT_NE(r->body.find("RFC 3339"), std::string::npos) << r->body;
}

TEST(TunerApi, OptimizeRunsACycleNowAndReturnsItsPlan) {
    // Scheduled cycles ten minutes apart: only the first one at start and the asked one run.
    TunerdProcess tunerd({.config = "[policy]\ninterval = \"10m\"\nwindow = \"10m\"\n"
                                    "scale_down_cooldown = \"1s\"\n[log]\nlevel = \"info\"\n"});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    const auto before = tunerd.admin_json("/workers");
    ASSERT_TRUE(before.ok());
    const unsigned seeded = (*before)["target"];
    ASSERT_GT(seeded, 1u) << "the idle pool needs room to shrink";
    std::this_thread::sleep_for(2500ms);  // idle longer than the cooldown

    auto r = tunerd.admin_request(
        {"POST", "/performance/optimize", {}, {{"Content-Type", "application/json"}}});
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->status, 200) << r->body;
    const auto plan = nlohmann::json::parse(r->body);
    EXPECT_GT(plan["plan_id"].get<std::uint64_t>(), 0u) << plan.dump(2);
    EXPECT_TRUE(plan["notes"].is_array());
    ASSERT_EQ(plan["decisions"].size(), 1u) << plan.dump(2);
    const auto& d = plan["decisions"][0];
    EXPECT_EQ(d["rule"], "scale_down");
    EXPECT_EQ(d["outcome"], "applied");
    EXPECT_EQ(d["old"], seeded);
    EXPECT_LT(d["new"].get<unsigned>(), seeded);
    EXPECT_FALSE(d["reason"].get<std::string>().empty());
    const auto after = tunerd.admin_json("/workers");
    ASSERT_TRUE(after.ok());
    EXPECT_EQ((*after)["target"], d["new"]);
}

TEST(TunerApi, ReloadKeepsTheRunningConfigWhenTheNewOneIsInvalid) {
    TunerdProcess tunerd({.config = "[workers]\nmin = 4\n[log]\nlevel = \"info\"\n"});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    const std::string good = read_text(tunerd.config_path());
    write_text(tunerd.config_path(),
               replaced(good, "min = 4\n", "min = 1\nmax = 2\nmax_requets = 5\n"));
    tunerd.signal(SIGHUP);
    ASSERT_TRUE(log_shows(tunerd, "action=\"keeping the running config\"")) << tunerd.log();
    EXPECT_NE(tunerd.log().find("workers.max_requets"), std::string::npos) << tunerd.log();

    // Still serving, with the old bounds, and no reload decision.
    auto ok = tunerd.get("/");
    ASSERT_TRUE(ok.ok());
    EXPECT_EQ(ok->status, 200);
    auto perf = tunerd.admin_json("/performance");
    ASSERT_TRUE(perf.ok());
    EXPECT_EQ((*perf)["workers"]["min"], 4);
    EXPECT_EQ((*perf)["workers"]["max"], 64);
    EXPECT_GE((*perf)["workers"]["target"].get<unsigned>(), 4u);
    EXPECT_TRUE(decisions_of_rule(admin_decisions(tunerd), "config_reload").empty());
    EXPECT_EQ(tunerd.log().find("event=config_reloaded"), std::string::npos);
}

TEST(TunerApi, ReloadKeepsWhatChangesOnlyOnRestartAndNamesIt) {
    TunerdProcess tunerd({.config = "[server]\nio_threads = 2\n[log]\nlevel = \"info\"\n"});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    write_text(tunerd.config_path(), replaced(read_text(tunerd.config_path()), "io_threads = 2\n",
                                              "io_threads = 4\nmax_queue = 77\n"));
    tunerd.signal(SIGHUP);
    ASSERT_TRUE(log_shows(tunerd, "event=config_reloaded")) << tunerd.log();
    EXPECT_NE(tunerd.log().find("event=reload_partial keys=server.io_threads "), std::string::npos)
        << tunerd.log();
    // The rest of the file applies, and the front still serves.
    auto ok = tunerd.get("/");
    ASSERT_TRUE(ok.ok());
    EXPECT_EQ(ok->status, 200);
}

TEST(TunerApi, ReloadWithAMaxBelowThePoolIsLoggedAndThePoolObeysIt) {
    TunerdProcess tunerd({.config = "[workers]\nmin = 4\n[log]\nlevel = \"info\"\n"});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    const auto before = tunerd.admin_json("/workers");
    ASSERT_TRUE(before.ok());
    ASSERT_GE((*before)["target"].get<unsigned>(), 4u);

    write_text(tunerd.config_path(),
               replaced(read_text(tunerd.config_path()), "min = 4\n", "min = 1\nmax = 2\n"));
    tunerd.signal(SIGHUP);
    ASSERT_TRUE(log_shows(tunerd, "event=config_reloaded")) << tunerd.log();

    const auto reloads = decisions_of_rule(admin_decisions(tunerd), "config_reload");
    bool max_logged = false;
    for (const auto& d : reloads) {
        if (d["knob"] == "workers.max") {
            max_logged = true;
            EXPECT_EQ(d["old"], 64);
            EXPECT_EQ(d["new"], 2);
            EXPECT_NE(d["reason"].get<std::string>().find("reload"), std::string::npos);
        }
    }
    EXPECT_TRUE(max_logged) << reloads.dump(2);
    ASSERT_TRUE(eventually(
        [&] {
            auto w = tunerd.admin_json("/workers");
            return w && (*w)["target"].get<unsigned>() <= 2 && (*w)["ready"] == (*w)["target"] &&
                   (*w)["workers"].size() == (*w)["target"].get<unsigned>();
        },
        30s))
        << tunerd.admin_dump("/workers");
    // The resize came after the reload, and says why.
    const auto all = admin_decisions(tunerd);
    ASSERT_FALSE(all.empty());
    bool resize_logged = false;
    for (const auto& d : all) {
        if (d["knob"] == "workers.count" && d["new"].get<unsigned>() <= 2 && d["rule"] == "bounds")
            resize_logged = true;
    }
    EXPECT_TRUE(resize_logged) << all.dump(2);
    auto perf = tunerd.admin_json("/performance");
    ASSERT_TRUE(perf.ok());
    EXPECT_EQ((*perf)["workers"]["max"], 2);
}

TEST(TunerApi, MetricsPassPromtoolAfterTrafficDecisionsAndACrash) {
    TunerdProcess tunerd({.config = "[workers]\nmode = \"fixed\"\ncount = 2\n"
                                    "[demo]\ncpu_ms = 1\nio_ms = 5\n[log]\nlevel = \"info\"\n"});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    // Traffic (200s and 404s), a decision (a manual target), a crash and its replacement.
    auto load = run_load({.address = tunerd.public_address(), .connections = 8}, 400);
    EXPECT_EQ(load.ok_2xx, 400u) << load.summary();
    auto missing = tunerd.get("/no-such-page");
    ASSERT_TRUE(missing.ok());
    EXPECT_EQ(missing->status, 404);
    ASSERT_TRUE(pin_workers(tunerd, 3).ok());
    ASSERT_TRUE(eventually(
        [&] {
            auto w = tunerd.admin_json("/workers");
            return w && (*w)["ready"] == 3;
        },
        20s));
    const auto pids = tunerd.ready_worker_pids();
    ASSERT_FALSE(pids.empty());
    ASSERT_EQ(::kill(pids.front(), SIGKILL), 0);
    ASSERT_TRUE(eventually(
        [&] {
            auto h = tunerd.admin_json("/health");
            return h && (*h)["workers"]["crashes_total"] == 1 && (*h)["workers"]["ready"] == 3;
        },
        20s))
        << tunerd.log();
    // A control cycle after the crash has measured the new worker's memory.
    std::this_thread::sleep_for(2s);

    const std::string text = metrics_text(tunerd);
    ASSERT_FALSE(text.empty());
    for (const char* family : {"tunerd_build_info",
                               "tunerd_workers_target",
                               "tunerd_workers_ready",
                               "tunerd_workers_busy",
                               "tunerd_queue_length",
                               "tunerd_requests_total{code=\"200\"",
                               "tunerd_requests_total{code=\"404\"",
                               "tunerd_request_duration_seconds_bucket",
                               "tunerd_request_queue_wait_seconds_count",
                               "tunerd_request_service_seconds_sum",
                               "tunerd_cpu_effective_cores",
                               "tunerd_cpu_usage_seconds_total",
                               "tunerd_memory_limit_bytes",
                               "tunerd_memory_usage_bytes",
                               "tunerd_memory_working_set_bytes",
                               "tunerd_memory_oom_kills_total",
                               "tunerd_worker_memory_bytes",
                               "tunerd_worker_crashes_total",
                               "tunerd_workers_memory_ceiling",
                               "tunerd_decisions_total{knob=\"workers.count\"",
                               "tunerd_decision_log_errors_total",
                               "tunerd_decision_log_healthy"}) {
        EXPECT_TRUE(sample_value(text, family).has_value()) << family << " has no sample";
    }
    EXPECT_EQ(sample_value(text, "tunerd_worker_crashes_total"), 1.0);
    EXPECT_GE(sample_value(text, "tunerd_requests_total{code=\"200\"").value_or(0), 400.0);
    if (std::filesystem::exists("/proc/pressure/cpu")) {
        EXPECT_TRUE(sample_value(text, "tunerd_pressure_avg10_ratio").has_value());
    }
    // No family is printed without samples (a bare HELP/TYPE pair).
    std::istringstream lines(text);
    std::string previous;
    for (std::string line; std::getline(lines, line); previous = line) {
        if (line.rfind("# TYPE", 0) == 0) {
            EXPECT_EQ(previous.rfind("# HELP", 0), 0u) << line;
        } else if (line.rfind("# HELP", 0) == 0) {
            EXPECT_NE(previous.rfind("# HELP", 0), 0u) << previous << " has no samples";
        }
    }

    // promtool is part of the test set-up (scripts/install-deps --test): missing is a failure.
    TempDir dir;
    const std::string file = dir.path() + "/metrics.txt";
    write_text(file, text);
    const auto check = run_command({"sh", "-c", "promtool check metrics < \"$0\"", file});
    ASSERT_NE(check.exit_status, 127)
        << "promtool is missing: install Debian's prometheus package (scripts/install-deps "
           "--test)\n"
        << check.output;
    EXPECT_EQ(check.exit_status, 0) << check.output;
    EXPECT_EQ(check.output, "") << check.output;
}

}  // namespace
}  // namespace tuner::test
