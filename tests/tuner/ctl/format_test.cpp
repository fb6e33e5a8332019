// tunerctl's text output: decisions on one line each with typed values, status with every
// section, workers, plans and targets, and JSON that lacks fields or has the wrong types.
#include "tuner/ctl/format.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tuner/decision_log/json.hpp"

namespace tuner::ctl {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

json decision(std::string knob, std::string type, json old_value, json new_value) {
    return {{"id", 7},
            {"time", "2026-11-23T15:04:05.123Z"},
            {"time_unix_ms", 1795446245123},
            {"plan_id", 3},
            {"subsystem", "workers"},
            {"knob", std::move(knob)},
            {"value_type", std::move(type)},
            {"old", std::move(old_value)},
            {"new", std::move(new_value)},
            {"rule", "littles_law"},
            {"reason", "λ=310 rps, S=55 ms → need 22 workers"},
            {"outcome", "applied"},
            {"error", ""},
            {"inputs", json::object()}};
}

TEST(CtlFormat, DecisionLineHasTimeKnobOldNewRuleOutcomeReason) {
    EXPECT_EQ(format_decision_line(decision("workers.count", "count", 2, 22)),
              "2026-11-23T15:04:05.123Z  workers.count 2 → 22  littles_law  applied  λ=310 rps, "
              "S=55 ms → need 22 workers\n");
}

TEST(CtlFormat, DecisionValuesPrintByTheirType) {
    EXPECT_THAT(format_decision_line(decision("db_pool.pool_recycle", "seconds", nullptr, 3600)),
                HasSubstr("db_pool.pool_recycle - → 3600s"));
    EXPECT_THAT(
        format_decision_line(decision("workers.max_worker_rss", "bytes", 104857600, 209715200)),
        HasSubstr("100MB → 200MB"));
    EXPECT_THAT(format_decision_line(decision("shared_buffers", "text", "128MB", "256MB")),
                HasSubstr("shared_buffers 128MB → 256MB"));
}

TEST(CtlFormat, DecisionTimeFromUnixMillisecondsWhenNoTimeText) {
    auto d = decision("workers.count", "count", 1, 2);
    d.erase("time");
    EXPECT_THAT(format_decision_line(d), StartsWith("2026-11-23T15:04:05.123Z  "));
}

TEST(CtlFormat, FailedDecisionShowsItsError) {
    auto d = decision("shared_buffers", "text", "128MB", "256MB");
    d["outcome"] = "failed";
    d["error"] = "connection refused";
    EXPECT_THAT(format_decision_line(d), HasSubstr("failed  λ=310"));
    EXPECT_THAT(format_decision_line(d), HasSubstr("(error: connection refused)"));
}

TEST(CtlFormat, DecisionsOneLineEachOrNone) {
    const json list = {decision("workers.count", "count", 2, 3),
                       decision("workers.threads", "count", 1, 2)};
    const std::string text = format_decisions(list);
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2);
    EXPECT_EQ(format_decisions(json::array()), "no decisions\n");
    EXPECT_EQ(format_decisions(json(nullptr)), "no decisions\n");
}

TEST(CtlFormat, MissingOrMistypedFieldsPrintAsQuestionMarks) {
    const json odd = {{"knob", 5}, {"old", "x"}, {"value_type", "count"}, {"new", {1, 2}}};
    const std::string line = format_decision_line(odd);
    EXPECT_THAT(line, StartsWith("?  5 x → "));
    EXPECT_NO_THROW(format_status(json::array(), json("text")));
    EXPECT_NO_THROW(format_workers(json(3)));
    EXPECT_NO_THROW(format_plan(json(nullptr)));
    EXPECT_NO_THROW(format_target(json::object()));
}

json health() {
    return {{"status", "degraded"},
            {"version", "0.1.0"},
            {"uptime_s", 3723},
            {"problems", {"1 of 2 workers ready for 40s", "decision log failing"}}};
}

json performance() {
    return {{"workers",
             {{"target", 2},
              {"ready", 1},
              {"threads", 1},
              {"manual_target", 2},
              {"mode", "adaptive"},
              {"memory_ceiling", 9},
              {"min", 1},
              {"max", 64},
              {"dry_run", false}}},
            {"limits",
             {{"cpu",
               {{"effective_cores", 2},
                {"source", "quota"},
                {"quota_cores", 1.5},
                {"quota_cgroup", "/tunerd.slice"},
                {"affinity_cores", 4},
                {"host_cores", 4},
                {"utilisation", nullptr}}},
              {"memory",
               {{"limit_bytes", 536870912},
                {"source", "cgroup memory.max at /tunerd.slice"},
                {"usage_bytes", 209715200},
                {"working_set_bytes", 157286400},
                {"oom_kills", 0}}}}},
            {"latency",
             {{"rate_rps", 41.26},
              {"window_s", 9.012},
              {"completed", 412},
              {"queue_length_mean", 0.4},
              {"queue_length_max", 3},
              {"queue_wait", {{"p50_ms", 0.12}, {"p95_ms", 4.5}}},
              {"service", {{"p50_ms", 55.2}, {"p95_ms", 61.0}}},
              {"total", {{"p50_ms", 56.0}, {"p95_ms", 120.0}}}}},
            {"decisions",
             {decision("workers.count", "count", 1, 2), decision("workers.count", "count", 2, 3),
              decision("workers.count", "count", 3, 4)}}};
}

TEST(CtlFormat, StatusShowsEverySection) {
    const std::string text = format_status(health(), performance());
    EXPECT_THAT(text, HasSubstr("status     tunerd 0.1.0: degraded, up 1h02m"));
    EXPECT_THAT(text, HasSubstr("problems   1 of 2 workers ready for 40s\n"));
    EXPECT_THAT(text, HasSubstr("           decision log failing\n"));
    EXPECT_THAT(text, HasSubstr("workers    1 of 2 ready, 1 thread each; mode adaptive, bounds "
                                "1..64, memory ceiling 9; manual target 2 (pinned)"));
    EXPECT_THAT(text, HasSubstr("cpu        2 effective cores, bound by quota (quota 1.50 cores "
                                "at /tunerd.slice); affinity 4, host 4"));
    EXPECT_THAT(text, HasSubstr("memory     limit 512MB from cgroup memory.max at /tunerd.slice; "
                                "usage 200MB, working set 150MB"));
    EXPECT_THAT(text, HasSubstr("latency    41.3 rps over the last 9 s (412 completed)"));
    EXPECT_THAT(text, HasSubstr("queue wait p50 0.12 ms, p95 4.5 ms"));
    EXPECT_THAT(text, HasSubstr("service    p50 55 ms, p95 61 ms"));
    EXPECT_THAT(text, HasSubstr("total      p50 56 ms, p95 120 ms"));
    EXPECT_THAT(text, HasSubstr("workers.count 1 → 2"));
}

// /performance's `front` with its connection counters; a test adds the parts it shows.
json front_with(json parts) {
    json front = {
        {"open_connections", 3},
        {"max_connections", 1024},
        {"connections_evicted", 0},
        {"connections_refused", {{"max_connections", 0}, {"max_connections_per_address", 0}}},
        {"request_buffering", true}};
    front.update(parts);
    return front;
}

TEST(CtlFormat, StatusShowsTheFrontsCompression) {
    auto p = performance();
    p["front"] = front_with({{"rate_limit", {{"rate", 0.0}}},
                             {"compression",
                              {{"enabled", true},
                               {"level", 5},
                               {"configured_level", 6},
                               {"brotli_level", 3},
                               {"responses", 30},
                               {"bytes_in", 10485760},
                               {"bytes_out", 1048576},
                               {"ratio", 10.0},
                               {"cpu_seconds", 0.125},
                               {"gzip", {{"responses", 20}}},
                               {"br", {{"responses", 10}}}}}});
    EXPECT_THAT(format_status(health(), p),
                HasSubstr("compression gzip level 5 of 6, brotli 3: 30 responses (gzip 20, br "
                          "10), 10MB → 1MB (10.0×), CPU 0.12 s"));
    p["front"]["compression"] = {{"enabled", false}};
    EXPECT_THAT(format_status(health(), p), HasSubstr("           compression off\n"));
    p["front"].erase("compression");
    EXPECT_THAT(format_status(health(), p), Not(HasSubstr("compression")));
}

TEST(CtlFormat, StatusShowsTheSpoolAndItsRefusals) {
    auto p = performance();
    p["front"] = front_with(
        {{"spool",
          {{"held_bytes", 12 * 1024 * 1024}, {"max_bytes", 1024 * 1024 * 1024}, {"refused", 0}}},
         {"rate_limit", {{"rate", 0.0}}}});
    EXPECT_THAT(format_status(health(), p),
                HasSubstr("request buffering on, spool 12MB of 1GB held\n"));
    p["front"]["spool"]["refused"] = 3;
    EXPECT_THAT(format_status(health(), p),
                HasSubstr("request buffering on, spool 12MB of 1GB held, 3 refused (503)\n"));
    p["front"].erase("spool");
    EXPECT_THAT(format_status(health(), p), HasSubstr("request buffering on\n"))
        << "a daemon that does not report the spool";
}

TEST(CtlFormat, StatusShowsStaticMountsAndTheAccessLog) {
    auto p = performance();
    p["front"] =
        front_with({{"rate_limit", {{"rate", 0.0}, {"burst", 20}, {"limited", 0}, {"clients", 0}}},
                    {"static",
                     {{"mounts", json::array({{{"prefix", "/static/"}}})},
                      {"responses", {{"200", 12}, {"304", 3}}},
                      {"bytes", 5 * 1024 * 1024}}},
                    {"access_log",
                     {{"enabled", true},
                      {"path", "/var/log/tunerd/access.log"},
                      {"format", "json"},
                      {"written", 15},
                      {"dropped", 1},
                      {"errors", 0}}}});
    auto text = format_status(health(), p);
    EXPECT_THAT(text, HasSubstr("static 1 mount: 12 × 200, 3 × 304; 5MB sent\n"));
    EXPECT_THAT(text, HasSubstr("access log /var/log/tunerd/access.log (json): 15 lines, 1 "
                                "dropped, 0 errors\n"));
    p["front"]["static"]["mounts"] = json::array();
    p["front"]["access_log"]["enabled"] = false;
    text = format_status(health(), p);
    EXPECT_THAT(text, HasSubstr("static off\n"));
    EXPECT_THAT(text, HasSubstr("access log off\n"));
}

TEST(CtlFormat, StatusShowsOnlyTheRecentDecisionsAsked) {
    const std::string text = format_status(health(), performance(), 2);
    EXPECT_THAT(text, HasSubstr("the last 2 (newest first"));
    EXPECT_THAT(text, HasSubstr("workers.count 2 → 3"));
    EXPECT_THAT(text, Not(HasSubstr("workers.count 3 → 4")));
}

TEST(CtlFormat, StatusSaysNoneWhenThereAreNoProblemsOrDecisions) {
    auto h = health();
    h["problems"] = json::array();
    auto p = performance();
    p["decisions"] = json::array();
    p["workers"]["manual_target"] = nullptr;
    p["workers"]["dry_run"] = true;
    const std::string text = format_status(h, p);
    EXPECT_THAT(text, HasSubstr("problems   none\n"));
    EXPECT_THAT(text, HasSubstr("decisions  none yet\n"));
    EXPECT_THAT(text, HasSubstr("manual target none; DRY RUN"));
}

TEST(CtlFormat, CpuWithoutQuotaSaysWhatBoundIt) {
    const json cpu = {{"effective_cores", 4}, {"source", "host"}, {"quota_cores", nullptr},
                      {"affinity_cores", 4},  {"host_cores", 4},  {"utilisation", 0.25}};
    EXPECT_EQ(format_cpu(cpu), "4 effective cores, bound by host; affinity 4, host 4; busy 25%");
}

TEST(CtlFormat, WorkersTableHasOneRowPerWorker) {
    const json w = {{"target", 2},
                    {"ready", 2},
                    {"threads", 1},
                    {"mode", "fixed"},
                    {"manual_target", nullptr},
                    {"workers",
                     {{{"id", 1},
                       {"pid", 4242},
                       {"port", nullptr},
                       {"state", "ready"},
                       {"threads", 1},
                       {"inflight", 0},
                       {"served", 17},
                       {"rss_bytes", 20971520},
                       {"age_s", 75.5},
                       {"restarts", 0}},
                      {{"id", 2},
                       {"pid", 4243},
                       {"port", 20001},
                       {"state", "draining"},
                       {"threads", 1},
                       {"inflight", 1},
                       {"served", 3},
                       {"rss_bytes", 0},
                       {"age_s", 2},
                       {"restarts", 1}}}}};
    const std::string text = format_workers(w);
    EXPECT_THAT(text, StartsWith("target 2, ready 2, threads 1, mode fixed, manual target none\n"));
    EXPECT_THAT(text, HasSubstr("  1    4242     -      ready     1        0         17        "
                                "20MB      1m15s"));
    EXPECT_THAT(text, HasSubstr("  2    4243     20001  draining"));
    EXPECT_THAT(format_workers({{"target", 0}, {"workers", json::array()}}),
                HasSubstr("no worker processes"));
}

TEST(CtlFormat, PlanListsDecisionsAndNotes) {
    const json plan = {{"plan_id", 9},
                       {"decisions", {decision("workers.count", "count", 2, 5)}},
                       {"notes", {"memory ceiling 5 holds growth"}}};
    const std::string text = format_plan(plan);
    EXPECT_THAT(text, StartsWith("plan 9: 1 decision\n  2026-"));
    EXPECT_THAT(text, HasSubstr("  note: memory ceiling 5 holds growth\n"));
    EXPECT_THAT(
        format_plan({{"plan_id", 0}, {"decisions", json::array()}, {"notes", json::array()}}),
        StartsWith("no change"));
}

TEST(CtlFormat, TargetSaysPinnedReleasedOrNothingToRelease) {
    auto d = decision("workers.count", "count", 2, 4);
    d["rule"] = "manual";
    EXPECT_THAT(format_target({{"target", 4}, {"pinned", true}, {"decision", d}}),
                StartsWith("workers pinned at 4 until `tunerctl target --release`"));
    EXPECT_THAT(format_target({{"target", 3}, {"pinned", false}, {"decision", d}}),
                StartsWith("manual target released; the policy decides again (target now 3)"));
    EXPECT_EQ(format_target({{"target", 3}, {"pinned", false}}),
              "no manual target was set (target 3)\n");
}

TEST(CtlFormat, DecisionToJsonHasTheApiShape) {
    Decision d;
    d.id = 12;
    d.time = WallClock::time_point(std::chrono::milliseconds(1795446245123));
    d.plan_id = 4;
    d.subsystem = "postgres";
    d.knob = "work_mem";
    d.old_value = Text{"4MB"};
    d.new_value = Text{"8MB"};
    d.rule = "pgtune_web";
    d.reason = "why";
    d.inputs_json = R"({"memory_bytes": 1073741824})";
    d.outcome = Outcome::failed;
    d.error = "refused";
    const json j = decision_json(d);
    EXPECT_EQ(j["id"], 12);
    EXPECT_EQ(j["time"], "2026-11-23T15:04:05.123Z");
    EXPECT_EQ(j["time_unix_ms"], 1795446245123);
    EXPECT_EQ(j["value_type"], "text");
    EXPECT_EQ(j["old"], "4MB");
    EXPECT_EQ(j["new"], "8MB");
    EXPECT_EQ(j["outcome"], "failed");
    EXPECT_EQ(j["inputs"]["memory_bytes"], 1073741824);
    EXPECT_THAT(format_decision_line(j), HasSubstr("work_mem 4MB → 8MB  pgtune_web  failed"));
}

TEST(CtlFormat, UptimeAndMilliseconds) {
    EXPECT_EQ(format_uptime(45), "45s");
    EXPECT_EQ(format_uptime(312), "5m12s");
    EXPECT_EQ(format_uptime(7380), "2h03m");
    EXPECT_EQ(format_uptime(3 * 86400 + 4 * 3600), "3d04h");
    EXPECT_EQ(format_uptime(-1), "0s");
    EXPECT_EQ(format_ms(0.421), "0.42 ms");
    EXPECT_EQ(format_ms(8.14), "8.1 ms");
    EXPECT_EQ(format_ms(120.4), "120 ms");
}

TEST(CtlFormat, CacheStatsOnOneLineAndClearSaysWhatWent) {
    const json stats = {{"enabled", true}, {"bytes", 2048},    {"capacity", 64 << 20},
                        {"entries", 3},    {"hit_ratio", 0.9}, {"hits", 54},
                        {"misses", 4},     {"expired", 1},     {"stale", 0},
                        {"bypasses", 2},   {"collapsed", 49},  {"evictions", 0}};
    EXPECT_EQ(format_cache(stats),
              "cache 2KB of 64MB, 3 entries; hit ratio 0.90 (54 hits, 4 misses, 1 expired, 0 "
              "stale, 2 bypassed), 49 collapsed, 0 evicted\n");
    json lowered = stats;
    lowered["capacity"] = 16 << 20;
    lowered["size"] = 64 << 20;
    EXPECT_THAT(format_cache(lowered),
                HasSubstr("cache 2KB of 16MB (cache.size 64MB, lowered under memory pressure), "
                          "3 entries"));
    lowered["capacity"] = 64 << 20;
    EXPECT_THAT(format_cache(lowered), HasSubstr("cache 2KB of 64MB, 3 entries"));
    EXPECT_EQ(format_cache({{"enabled", false}}), "cache off\n");
    EXPECT_EQ(format_cache(json::array()), "cache off\n");
    EXPECT_EQ(format_cache({{"cleared", 3}, {"bytes_freed", 2048}}),
              "cache cleared: 3 entries, 2KB\n");
}

}  // namespace
}  // namespace tuner::ctl
