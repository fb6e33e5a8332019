// The adaptive worker controller against the real daemon: a closed loop
// of 64 clients on the demo app (5 ms CPU + 50 ms wait, one thread per worker), first pinned at
// the seed size, then released; the pool shrinks once the load stops; dry_run never resizes.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include <gtest/gtest.h>

#include "tests/integration/tuner_test_support.hpp"
#include "tuner/decision_log/log.hpp"

namespace tuner::test {
namespace {

using namespace std::chrono_literals;

constexpr unsigned kClients = 64;
constexpr auto kPhase1 = 5s;
constexpr auto kPhase2 = 20s;   // phase 2 ends here when the pool converged by kPhase2 - kMeasured
constexpr auto kMeasured = 6s;  // phase 2's last seconds, compared with phase 1
constexpr auto kPhase2Max = 30s;  // a slow machine (a sanitizer build) converges later: the
                                  // measured seconds then start at convergence, up to here
constexpr auto kCooldown = 5s;    // scale_down_cooldown of these tests

std::string demo_config(bool dry_run) {
    return "[workers]\nthreads = 1\n"
           "[demo]\ncpu_ms = 5\nio_ms = 50\n"
           "[policy]\nscale_down_cooldown = \"5s\"\n" +
           std::string(dry_run ? "dry_run = true\n" : "") + "[log]\nlevel = \"info\"\n";
}

// The pool size the seed formula chose at start (the first decision of the run).
std::optional<unsigned> seed_size(const TunerdProcess& tunerd) {
    const auto seeds = decisions_of_rule(admin_decisions(tunerd), "seed_formula");
    if (seeds.empty()) return std::nullopt;
    return seeds.back()["new"].get<unsigned>();
}

// What the controller aims for under this load by Little's law (the queue included), within
// its bounds and memory ceiling: /performance recommendations.workers.
struct ControllerView {
    unsigned target = 0;
    unsigned ready = 0;
    unsigned littles_law_target = 0;
    std::string need_text;
};

std::optional<ControllerView> controller_view(const TunerdProcess& tunerd) {
    auto perf = tunerd.admin_json("/performance");
    if (!perf) return std::nullopt;
    const auto& rec = (*perf)["recommendations"]["workers"];
    if (!rec.contains("need")) return std::nullopt;
    ControllerView v;
    v.target = (*perf)["workers"]["target"].get<unsigned>();
    v.ready = (*perf)["workers"]["ready"].get<unsigned>();
    const auto need = rec["need"]["needed_workers"].get<unsigned>();
    const auto max = rec["bounds"]["max"].get<unsigned>();
    const auto ceiling = rec["memory"]["ceiling_workers"].get<unsigned>();
    v.littles_law_target = std::min({need, max, ceiling});
    v.need_text = rec["need"].dump();
    return v;
}

TEST(Tuner, ClosedLoopOutgrowsThePinnedSeedThenShrinksAfterTheCooldown) {
    TunerdProcess tunerd({.config = demo_config(false)});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    const auto seed = seed_size(tunerd);
    ASSERT_TRUE(seed.has_value()) << tunerd.log();

    // Phase 1: the seed size, pinned by a manual target.
    auto pinned = pin_workers(tunerd, *seed);
    ASSERT_TRUE(pinned && pinned->status == 200) << (pinned ? pinned->body : "no answer");
    ASSERT_TRUE(eventually(
        [&] {
            auto w = tunerd.admin_json("/workers");
            return w && (*w)["target"] == *seed && (*w)["ready"] == *seed;
        },
        20s));
    LoadGenerator load({.address = tunerd.public_address(),
                        .connections = kClients,
                        .max_duration = 180s,
                        .request_timeout = 60s});
    load.start();
    // The first two seconds connect 64 clients and fill the queue; phase 1 is measured after.
    std::this_thread::sleep_for(2s);
    const LoadMark phase1_from = mark(load);
    std::this_thread::sleep_for(kPhase1 - 2s);
    const LoadMark phase1_to = mark(load);
    const double phase1_rps = throughput_rps(phase1_from, phase1_to);

    // Phase 2: released; the controller sizes the pool on its own.
    const double released_at = unix_now_s();
    auto released = release_workers(tunerd);
    ASSERT_TRUE(released && released->status == 200);
    const auto phase2_start = std::chrono::steady_clock::now();
    std::optional<double> converged_after_s;
    std::string converged_how;
    LoadMark measured_from{};
    CpuMark measured_cpu_from{};
    bool measured_from_set = false;
    // Until the measured seconds start (by kPhase2Max - kMeasured at the latest), which then
    // set the end.
    auto phase2_end = phase2_start + kPhase2Max;
    while (std::chrono::steady_clock::now() < phase2_end) {
        const auto now = std::chrono::steady_clock::now();
        const double t = std::chrono::duration<double>(now - phase2_start).count();
        // The measured seconds follow convergence (or start at the latest moment that still
        // ends by kPhase2Max).
        if (!measured_from_set && now - phase2_start >= kPhase2 - kMeasured &&
            (converged_after_s || now - phase2_start >= kPhase2Max - kMeasured)) {
            measured_from = mark(load);
            measured_cpu_from = cpu_mark(tunerd);
            measured_from_set = true;
            phase2_end = now + kMeasured;
        }
        if (!converged_after_s) {
            for (const auto& knee : decisions_of_rule(admin_decisions(tunerd), "cpu_knee")) {
                if (unix_ms_to_s(knee["time_unix_ms"]) >= released_at) {
                    converged_after_s = t;
                    converged_how = "cpu_knee: " + knee["reason"].get<std::string>();
                }
            }
        }
        if (!converged_after_s) {
            if (const auto v = controller_view(tunerd);
                v && v->ready == v->target &&
                std::abs(static_cast<int>(v->target) - static_cast<int>(v->littles_law_target)) <=
                    1) {
                converged_after_s = t;
                converged_how = "Little's-law target " + std::to_string(v->littles_law_target) +
                                " reached at " + std::to_string(v->target) + " workers; need " +
                                v->need_text;
            }
        }
        std::this_thread::sleep_for(500ms);
    }
    const LoadMark phase2_to = mark(load);
    ASSERT_TRUE(measured_from_set);
    const double phase2_rps = throughput_rps(measured_from, phase2_to);
    // On a shared machine other tenants take CPU too: say how much tunerd's processes got.
    const auto [ours_cores, machine_cores] = cores_used(measured_cpu_from, cpu_mark(tunerd));
    const auto pool_under_load = tunerd.admin_json("/workers");
    ASSERT_TRUE(pool_under_load.ok());
    const unsigned loaded_target = (*pool_under_load)["target"].get<unsigned>();

    // Load stops; the pool shrinks once scale_down_cooldown of low utilisation has passed.
    const double stopped_at = unix_now_s();
    const LoadResult result = load.stop();
    const std::string numbers = [&] {
        char buf[1024];
        std::snprintf(buf, sizeof buf,
                      "seed %u workers; phase 1 %.1f rps; phase 2 (last %lld s) %.1f rps = %.2f x; "
                      "converged after %s s (%s); pool under load %u workers; CPU in the last "
                      "%lld s: tunerd and workers %.2f cores, whole machine %.2f of %ld cores",
                      *seed, phase1_rps, static_cast<long long>(kMeasured.count()), phase2_rps,
                      phase1_rps > 0 ? phase2_rps / phase1_rps : 0.0,
                      converged_after_s ? std::to_string(*converged_after_s).c_str() : "never",
                      converged_how.c_str(), loaded_target,
                      static_cast<long long>(kMeasured.count()), ours_cores, machine_cores,
                      ::sysconf(_SC_NPROCESSORS_ONLN));
        return std::string(buf);
    }();
    std::printf("[ numbers  ] %s\n", numbers.c_str());

    EXPECT_EQ(result.client_errors, 0u) << result.summary();
    EXPECT_EQ(result.non_2xx(), 0u) << result.summary();
    EXPECT_TRUE(converged_after_s.has_value())
        << "neither the Little's-law target nor a CPU knee within "
        << (kPhase2Max - kMeasured).count() << " s\n"
        << tunerd.admin_dump("/performance");
    EXPECT_GE(phase2_rps, 2.5 * phase1_rps) << numbers << "\n" << tunerd.admin_dump("/performance");
    EXPECT_GT(loaded_target, *seed);

    const bool shrank = eventually(
        [&] {
            auto w = tunerd.admin_json("/workers");
            return w && (*w)["target"].get<unsigned>() < loaded_target;
        },
        kCooldown + 40s, 500ms);
    EXPECT_TRUE(shrank) << tunerd.admin_dump("/performance");
    const auto scale_downs = decisions_of_rule(admin_decisions(tunerd), "scale_down");
    ASSERT_FALSE(scale_downs.empty()) << tunerd.log();
    double first_scale_down = 0;
    for (const auto& d : scale_downs) {
        const double at = unix_ms_to_s(d["time_unix_ms"]);
        if (at >= stopped_at && (first_scale_down == 0 || at < first_scale_down))
            first_scale_down = at;
    }
    ASSERT_GT(first_scale_down, 0) << "no scale_down after the load stopped";
    EXPECT_GE(first_scale_down - stopped_at, std::chrono::duration<double>(kCooldown).count())
        << "shrank before scale_down_cooldown";

    // Every decision is in SQLite and in /performance, each with its rule and reason.
    std::set<std::string> rules_in_api;
    auto perf = tunerd.admin_json("/performance");
    ASSERT_TRUE(perf.ok());
    ASSERT_FALSE((*perf)["decisions"].empty());
    for (const auto& d : (*perf)["decisions"]) {
        EXPECT_FALSE(d["reason"].get<std::string>().empty()) << d.dump();
        rules_in_api.insert(d["rule"].get<std::string>());
    }
    EXPECT_TRUE(rules_in_api.count("scale_down")) << (*perf)["decisions"].dump(2);
    std::set<std::string> rules_in_db;
    ASSERT_TRUE(eventually(
        [&] {
            auto stored = read_decisions(tunerd.state_dir() + "/tunerd.db", std::nullopt, 1000);
            if (!stored) return false;
            rules_in_db.clear();
            for (const auto& d : *stored) {
                if (!d.reason.empty()) rules_in_db.insert(d.rule);
            }
            return rules_in_db.count("scale_down") > 0;
        },
        10s));
    for (const char* rule : {"seed_formula", "manual", "scale_down"})
        EXPECT_TRUE(rules_in_db.count(rule)) << rule << " missing from SQLite";
    EXPECT_TRUE(rules_in_db.count("queue_growth") || rules_in_db.count("littles_law"))
        << "no growth decision in SQLite";
}

TEST(Tuner, DryRunLogsEachDecisionOnceAndNeverResizes) {
    TunerdProcess tunerd({.config = demo_config(true)});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    const auto seed = seed_size(tunerd);
    ASSERT_TRUE(seed.has_value()) << tunerd.log();
    LoadGenerator load({.address = tunerd.public_address(),
                        .connections = kClients,
                        .max_duration = 60s,
                        .request_timeout = 60s});
    load.start();
    std::set<unsigned> targets_seen;
    const auto until = std::chrono::steady_clock::now() + 6s;
    while (std::chrono::steady_clock::now() < until) {
        if (auto w = tunerd.admin_json("/workers"))
            targets_seen.insert((*w)["target"].get<unsigned>());
        std::this_thread::sleep_for(250ms);
    }
    const auto result = load.stop();
    EXPECT_EQ(result.non_2xx(), 0u) << result.summary();
    EXPECT_EQ(targets_seen, std::set<unsigned>{*seed}) << "dry_run resized the pool";
    // Held in a variable: a range-for over a member of a temporary outlives it (until C++23).
    const auto after = tunerd.admin_json("/workers");
    ASSERT_TRUE(after.ok());
    for (const auto& w : (*after)["workers"]) EXPECT_EQ(w["state"], "ready") << w.dump();

    // Oldest first: after the seed, every decision is a dry run, and an unchanged one is not
    // logged again.
    auto decisions = admin_decisions(tunerd);
    std::reverse(decisions.begin(), decisions.end());
    ASSERT_GE(decisions.size(), 2u) << "the controller proposed nothing under load\n"
                                    << tunerd.log();
    std::map<std::string, nlohmann::json> last_by_knob;
    unsigned growth_proposals = 0;
    for (const auto& d : decisions) {
        if (d["rule"] == "seed_formula") continue;
        EXPECT_EQ(d["outcome"], "dry_run") << d.dump();
        const std::string knob = d["knob"];
        if (auto it = last_by_knob.find(knob); it != last_by_knob.end()) {
            EXPECT_NE(it->second, d["new"]) << "logged twice while unchanged: " << d.dump();
        }
        last_by_knob[knob] = d["new"];
        if (knob == "workers.count" && d["new"].get<unsigned>() > *seed) ++growth_proposals;
    }
    EXPECT_GE(growth_proposals, 1u) << decisions.dump(2);
}

}  // namespace
}  // namespace tuner::test
