// Threads as a second knob against the real daemon. In a 512 MB memory cgroup, an app
// whose processes hold 150 MB and whose requests burn 5 ms of CPU then wait 50 ms, under a closed
// loop of 32 clients: the adaptive controller from threads = 1 (threads_max = 16) finds its shape,
// then static pairs (a second tunerd in mode = "fixed" and a cgroup of its own, each pair set by a
// SIGHUP reload) are measured in interleaved rounds, each window of a contending pair followed by
// an equal window of the adaptive pool. The test measures the pairs that contend (grid_pairs());
// bench/threads_grid runs the whole grid processes {1, 2} × threads {1, 4, 8, 16} with longer
// windows, for docs/benchmarks.md ("Threads").
// Proves: no OOM kill, no failed request through the rolling thread changes, every threads
// change a logged decision with its reason (a pair change two decisions with one plan_id), memory
// measured per thread count, two processes where two fit, and the adaptive pool at least 0.8 × the
// best static pair (best of the windows each, measured alongside). The demo app, then the Flask
// example under gunicorn.
// Needs root for the cgroups; skipped with the reason elsewhere. Flask and gunicorn missing is a
// failure (make test installs them).
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "policies/cpu_knee.hpp"
#include "tests/integration/memory_cgroup.hpp"
#include "tests/integration/tuner_test_support.hpp"

namespace tuner::test {
namespace {

using namespace std::chrono_literals;
using policies::PoolShape;

constexpr std::uint64_t kLimitBytes = 512 * MiB;
constexpr unsigned kClients = 32;
constexpr unsigned kThreadsMax = 16;
constexpr auto kSettle = 500ms;  // after a shape is in place or the clients start, before a window
constexpr auto kShapeTimeout = 90s;  // a rolling change of two gunicorn workers on a busy box
constexpr auto kQuiet = 7s;          // no pool decision for this long: converged
constexpr auto kConvergeTimeout = 90s;
constexpr double kMinShareOfBest = 0.8;  // the acceptance bar (the benchmark aims for 0.9)
// Other tenants of a shared machine take the CPU at random (a build on the reference VM halves
// the throughput for seconds at a time). So that the comparison measures the pool's shapes and
// not the neighbours, tunerd, its workers and the clients run at this nice value, grid and
// adaptive alike, as the benchmarks in docs/benchmarks.md do.
constexpr int kNice = -10;

// The benchmark (bench/threads_grid) sets TUNER_THREADS_WINDOW_S: longer windows, and the adaptive
// pool measured after every pair's window, not only after the contenders'.
int benchmark_window_s() {
    const char* text = std::getenv("TUNER_THREADS_WINDOW_S");
    return text ? std::max(0, std::atoi(text)) : 0;
}

// The length of each throughput window: 3 s in the test (some 900 requests of the best pairs).
std::chrono::milliseconds window_length() {
    const int seconds = benchmark_window_s();
    return std::chrono::seconds(seconds > 0 ? seconds : 3);
}

// The static pairs. The benchmark measures the whole grid processes {1, 2} × threads
// {1, 4, 8, 16}, three times each. The test, which must leave time for the others, measures the
// pairs that were ever best or close in the benchmark's runs (docs/benchmarks.md, "Threads":
// 2 × 16, and 2 × 8 beside it), once each; the best single process (1 × 16) served at most 0.65 ×
// of the best pair there, the fewer threads never half (a 5 ms CPU + 50 ms wait request needs
// some 20 in flight at once).
std::vector<PoolShape> grid_pairs() {
    if (benchmark_window_s() > 0)
        return {{1, 1}, {1, 4}, {1, 8}, {1, 16}, {2, 1}, {2, 4}, {2, 8}, {2, 16}};
    return {{2, 8}, {2, 16}};
}
// The grid daemon starts at this pair; the test's first window then follows a pair change
// (processes and threads in one plan) under load, 1 × 16 → 2 × 8.
PoolShape grid_start() {
    return benchmark_window_s() > 0 ? grid_pairs().front() : PoolShape{1, 16};
}
// Best of this many windows, for every static pair and for the adaptive pool alongside: three
// in the benchmark; one in the test, whose 0.8 bar leaves room for a window's noise.
int tries() {
    return benchmark_window_s() > 0 ? 3 : 1;
}

// A pair whose window served less than this share of the best pair's window so far cannot be the
// best of the grid (only the best pair's neighbouring adaptive windows are compared): the test
// skips the adaptive window after it. A pair that came out best in the end was above the bar in
// the windows the comparison uses, unless the box's noise halved it, when no comparison holds.
constexpr double kContenderShare = 0.5;

// Every thread of tunerd and of the processes it started so far at kNice (workers started later
// inherit it from tunerd's I/O thread, gunicorn's worker from its master).
void raise_priority(const TunerdProcess& tunerd) {
    std::vector<pid_t> pids = processes_with_marker(tunerd.marker());
    pids.push_back(tunerd.pid());
    for (const pid_t pid : pids) {
        std::error_code ec;
        for (const auto& task :
             std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
            const auto tid = static_cast<id_t>(std::stoul(task.path().filename().string()));
            ::setpriority(PRIO_PROCESS, tid, kNice);
        }
    }
}

// The calling thread (and the load generator's threads it starts) at kNice while it lives.
class RaisedPriority {
public:
    RaisedPriority() : previous_(::getpriority(PRIO_PROCESS, 0)) {
        ::setpriority(PRIO_PROCESS, 0, kNice);
    }
    ~RaisedPriority() { ::setpriority(PRIO_PROCESS, 0, previous_); }
    RaisedPriority(const RaisedPriority&) = delete;
    RaisedPriority& operator=(const RaisedPriority&) = delete;

private:
    int previous_;
};

// An app under test: its [workers] keys besides mode, count and threads, its other sections, and
// the request the clients send.
struct App {
    std::string name;
    std::string workers;
    std::string sections;
    std::string target;
};

// The built-in demo app: 150 MB per process, 5 ms CPU + 50 ms wait per request. The operator's
// estimate of a worker is its size, so the seed formula does not start more than fit.
App demo_app() {
    return {"demo", "memory_per_worker = \"150MB\"\n",
            "[demo]\ncpu_ms = 5\nio_ms = 50\nrss_mb = 150\n", "/"};
}

// examples/flask under gunicorn (`--threads {threads}`), its worker holding 150 MB
// (EXAMPLE_RSS_MB), on the route that burns 5 ms of CPU then waits 50 ms. A slot is the gunicorn
// master and its worker, hence the estimate above 150 MB.
App flask_app() {
    const std::string dir = TUNER_SOURCE_DIR "/examples/flask";
    return {"flask",
            "command = [\"/usr/bin/python3\", \"-m\", \"gunicorn\", \"-w\", \"1\", \"--threads\", "
            "\"{threads}\", \"-b\", \"unix:{socket}\", \"--chdir\", \".\", \"app:app\"]\n"
            "dir = \"" +
                dir +
                "\"\n"
                "health_path = \"/health\"\n"
                "env = { PYTHONDONTWRITEBYTECODE = \"1\", EXAMPLE_RSS_MB = \"150\" }\n"
                "memory_per_worker = \"180MB\"\n",
            "", "/work?cpu_ms=5&io_ms=50"};
}

// Debian's Flask and gunicorn for /usr/bin/python3 (scripts/install-deps --test installs them).
std::string missing_python_packages() {
    auto r = run_command({"/usr/bin/python3", "-c", "import flask, gunicorn"}, {}, 30s);
    return r.exit_status == 0 ? "" : r.output;
}

std::string fixed_knobs(PoolShape shape) {
    return "mode = \"fixed\"\ncount = " + std::to_string(shape.processes) +
           "\nthreads = " + std::to_string(shape.threads) + "\n";
}

std::string config_text(const App& app, const std::string& knobs,
                        const std::string& sections = "") {
    return "[workers]\n" + knobs + app.workers + app.sections + sections +
           "[log]\nlevel = \"info\"\n";
}

// The adaptive daemon from threads = 1. Its clients pause while the grid's pool is measured;
// that is the measurement's doing, not a drop in load, so a long scale_down_cooldown keeps it
// from shrinking the pool in those seconds (scale-down is tested in tuner_test).
std::string adaptive_config(const App& app) {
    return config_text(app, "threads = 1\nthreads_max = " + std::to_string(kThreadsMax) + "\n",
                       "[policy]\nscale_down_cooldown = \"10m\"\n");
}

std::string shape_text(PoolShape s) {
    return std::to_string(s.processes) + "x" + std::to_string(s.threads);
}

// The pool as /workers shows it, when every worker is ready at the pool's thread count.
std::optional<PoolShape> shape_in_place(const nlohmann::json& w) {
    const unsigned target = w["target"];
    const unsigned threads = w["threads"];
    if (w["ready"] != target || w["workers"].size() != target) return std::nullopt;
    for (const auto& worker : w["workers"]) {
        if (worker["state"] != "ready" || worker["threads"] != threads) return std::nullopt;
    }
    return PoolShape{target, threads};
}

// One tunerd in its cgroup, with a closed loop of kClients clients that the test turns on and off
// (the counts add up over the restarts).
class Daemon {
public:
    Daemon(const std::string& config, const MemoryCgroup& cgroup)
        : cgroup_(cgroup),
          tunerd_(
              {.config = config, .ready_timeout = 60s, .cgroup_procs_file = cgroup.procs_file()}) {}

    ::testing::AssertionResult start(const std::string& target) {
        if (auto started = tunerd_.start(); !started) {
            return ::testing::AssertionFailure() << started.error().to_string() << "\n"
                                                 << tunerd_.log();
        }
        cgroup_.account_cpu_of(tunerd_);
        raise_priority(tunerd_);
        load_.emplace(LoadOptions{.address = tunerd_.public_address(),
                                  .target = target,
                                  .connections = kClients,
                                  .max_duration = 900s,
                                  .request_timeout = 60s});
        return ::testing::AssertionSuccess();
    }

    void load_on() { load_->start(); }
    void load_off() { result_ = load_->stop(); }
    // Requests per second the clients got over one window (the load must be on).
    double measure() const {
        const LoadMark from = mark(*load_);
        std::this_thread::sleep_for(window_length());
        return throughput_rps(from, mark(*load_));
    }
    [[nodiscard]] std::optional<PoolShape> shape() const {
        const auto w = tunerd_.admin_json("/workers");
        return w ? shape_in_place(*w) : std::nullopt;
    }
    void stop() {
        tunerd_.signal(SIGTERM);
        EXPECT_TRUE(tunerd_.wait_exit(60s).has_value()) << tunerd_.log();
    }

    [[nodiscard]] TunerdProcess& tunerd() { return tunerd_; }
    [[nodiscard]] const LoadResult& requests() const { return result_; }

private:
    const MemoryCgroup& cgroup_;
    TunerdProcess tunerd_;
    std::optional<LoadGenerator> load_;
    LoadResult result_;
};

std::string rps_list(const std::vector<double>& tries) {
    std::string out;
    for (const double rps : tries) out += (out.empty() ? "" : " ") + std::to_string(lround(rps));
    return out;
}

std::string mb(std::uint64_t bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(bytes) / MiB);
    return buf;
}

void print_line(const App& app, const std::string& text) {
    std::printf("[ threads  ] %s %s\n", app.name.c_str(), text.c_str());
    std::fflush(stdout);
}

// Every pool decision of a run: each threads change logged with its rule and reason, each plan
// changing a knob at most once; returns how many plans changed both workers.count and
// workers.threads (a pair change). `print`: show them, oldest first.
unsigned check_pool_decisions(const App& app, const std::string& phase,
                              const nlohmann::json& decisions, bool print) {
    std::map<std::uint64_t, std::vector<nlohmann::json>> plans;
    for (const auto& d : decisions) {
        if (d["subsystem"] != "workers") continue;
        plans[d["plan_id"].get<std::uint64_t>()].push_back(d);
        if (d["knob"] != "workers.threads") continue;
        EXPECT_FALSE(d["rule"].get<std::string>().empty()) << d.dump();
        EXPECT_FALSE(d["reason"].get<std::string>().empty()) << d.dump();
        EXPECT_EQ(d["outcome"], "applied") << d.dump();
    }
    unsigned pair_changes = 0;
    for (const auto& [plan_id, members] : plans) {
        std::set<std::string> knobs;
        for (const auto& d : members) {
            EXPECT_TRUE(knobs.insert(d["knob"].get<std::string>()).second)
                << "plan " << plan_id << " changes " << d["knob"] << " twice";
        }
        if (knobs.count("workers.count") && knobs.count("workers.threads")) ++pair_changes;
    }
    for (auto it = decisions.rbegin(); print && it != decisions.rend(); ++it) {
        const auto& d = *it;
        if (d["subsystem"] != "workers") continue;
        print_line(app, phase + " decision plan " + std::to_string(d["plan_id"].get<int>()) + " " +
                            d["knob"].get<std::string>() + " " + d["old"].dump() + " → " +
                            d["new"].dump() + " (" + d["rule"].get<std::string>() +
                            "): " + d["reason"].get<std::string>());
    }
    return pair_changes;
}

std::optional<double> last_pool_decision_unix_s(const nlohmann::json& decisions) {
    std::optional<double> last;
    for (const auto& d : decisions) {
        if (d["subsystem"] != "workers") continue;
        const double at = unix_ms_to_s(d["time_unix_ms"]);
        last = std::max(last.value_or(at), at);
    }
    return last;
}

// Seconds from `started` (Unix time) until the pool is in place and no pool decision came for
// kQuiet; nullopt when that did not happen within kConvergeTimeout.
std::optional<double> converge(Daemon& daemon, double started) {
    std::optional<double> after_s;
    eventually(
        [&] {
            const double quiet_since = std::max(
                started,
                last_pool_decision_unix_s(admin_decisions(daemon.tunerd())).value_or(started));
            if (!daemon.shape() ||
                unix_now_s() - quiet_since < std::chrono::duration<double>(kQuiet).count()) {
                return false;
            }
            after_s = quiet_since - started;
            return true;
        },
        kConvergeTimeout, 1s);
    return after_s;
}

// Rewrites the running daemon's config file with other [workers] knobs and reloads it.
void reload_knobs(const TunerdProcess& tunerd, const std::string& from, const std::string& to) {
    std::string text = read_text(tunerd.config_path());
    const auto at = text.find(from);
    ASSERT_NE(at, std::string::npos) << "the knobs are not in " << tunerd.config_path();
    text.replace(at, from.size(), to);
    ASSERT_TRUE(write_text(tunerd.config_path(), text));
    tunerd.signal(SIGHUP);
}

// Window by window: a static pair's, then the adaptive pool's right after it.
struct Measurements {
    std::map<PoolShape, std::vector<double>> grid;
    std::map<PoolShape, std::vector<double>> adaptive_alongside;
    std::vector<PoolShape> adaptive_shapes;  // the adaptive pool after each of its windows
    std::map<unsigned, std::uint64_t> largest_tree_by_threads;  // grid, /workers rss_bytes

    [[nodiscard]] PoolShape best_pair() const {
        PoolShape best{};
        double best_rps = -1;
        for (const auto& [shape, rps] : grid) {
            const double top = *std::max_element(rps.begin(), rps.end());
            if (top > best_rps) best = shape, best_rps = top;
        }
        return best;
    }
};

// The grid, every pair tries() times in interleaved rounds; after each window of a contending pair
// (kContenderShare; every pair in the benchmark), one of the adaptive pool's. Only one pool has
// clients at a time, and the two windows of a step are seconds apart, so load from elsewhere on
// the box falls on both alike: a static pair is compared with the adaptive pool measured
// alongside it.
void measure_alongside(Daemon& grid, Daemon& adaptive, Measurements& out) {
    const auto pairs = grid_pairs();
    std::string knobs = fixed_knobs(grid_start());
    const bool every_pair = benchmark_window_s() > 0;
    double best_window = 0;
    for (int round = 0; round < tries(); ++round) {
        for (const PoolShape shape : pairs) {
            grid.load_on();
            if (const std::string next = fixed_knobs(shape); next != knobs) {
                reload_knobs(grid.tunerd(), knobs, next);  // a rolling change under load
                knobs = next;
            }
            ASSERT_TRUE(eventually([&] { return grid.shape() == shape; }, kShapeTimeout))
                << "the pool never got to " << shape_text(shape) << ": "
                << grid.tunerd().admin_dump("/workers") << "\n"
                << grid.tunerd().log();
            std::this_thread::sleep_for(kSettle);
            const double rps = grid.measure();
            out.grid[shape].push_back(rps);
            best_window = std::max(best_window, rps);
            // Each worker's process tree as the probes measured it (0 until they have).
            if (const auto w = grid.tunerd().admin_json("/workers")) {
                for (const auto& worker : (*w)["workers"]) {
                    auto& largest = out.largest_tree_by_threads[shape.threads];
                    largest = std::max(largest, worker["rss_bytes"].get<std::uint64_t>());
                }
            }
            grid.load_off();
            if (!every_pair && rps < kContenderShare * best_window) continue;

            adaptive.load_on();
            std::this_thread::sleep_for(kSettle);
            out.adaptive_alongside[shape].push_back(adaptive.measure());
            out.adaptive_shapes.push_back(adaptive.shape().value_or(PoolShape{}));
            adaptive.load_off();
        }
    }
}

double best_of(const std::vector<double>& tries) {
    return *std::max_element(tries.begin(), tries.end());
}

// The whole proof for one app; the numbers are printed for docs/benchmarks.md.
void prove_threads_knob(const App& app) {
    if (kSanitizedBuild) GTEST_SKIP() << kSanitizedMemoryReason;
    // One cgroup for each daemon: both run all along, their clients take turns.
    MemoryCgroup grid_cgroup, adaptive_cgroup;
    for (const auto& [cgroup, role] :
         {std::pair{&grid_cgroup, "grid"}, std::pair{&adaptive_cgroup, "adaptive"}}) {
        // A cgroup as a service manager would make it, with the CPU accounted on its own.
        const std::string name = "tunerd-threads-test-" + std::to_string(::getpid()) + "-" + role;
        if (auto why = cgroup->make(name, kLimitBytes, true))
            GTEST_SKIP() << "threads test skipped: " << *why;
    }
    const RaisedPriority priority;
    print_line(app, adaptive_cgroup.describe() + " (the grid's alike); " +
                        std::to_string(kClients) + " clients on " + app.target + "; nice " +
                        std::to_string(kNice) + "; windows of " +
                        std::to_string(window_length().count() / 1000) + " s");

    Daemon grid(config_text(app, fixed_knobs(grid_start())), grid_cgroup);
    Daemon adaptive(adaptive_config(app), adaptive_cgroup);
    ASSERT_TRUE(grid.start(app.target));
    ASSERT_TRUE(adaptive.start(app.target));

    // The adaptive pool finds its shape under its clients, from threads = 1.
    const double started = unix_now_s();
    adaptive.load_on();
    const auto converged_after_s = converge(adaptive, started);
    const PoolShape converged = adaptive.shape().value_or(PoolShape{});
    adaptive.load_off();
    const double converged_at = unix_now_s();
    ASSERT_TRUE(converged_after_s.has_value())
        << "the adaptive pool kept changing for " << kConvergeTimeout.count() << " s";

    Measurements m;
    measure_alongside(grid, adaptive, m);
    if (::testing::Test::HasFatalFailure()) return;

    const auto adaptive_decisions = admin_decisions(adaptive.tunerd());
    const unsigned adaptive_pairs = check_pool_decisions(app, "adaptive", adaptive_decisions, true);
    const unsigned grid_pair_changes =
        check_pool_decisions(app, "grid", admin_decisions(grid.tunerd()), false);
    unsigned changes_after_convergence = 0;
    for (const auto& d : adaptive_decisions) {
        changes_after_convergence +=
            d["subsystem"] == "workers" && unix_ms_to_s(d["time_unix_ms"]) > converged_at;
    }
    const auto perf = adaptive.tunerd().admin_json("/performance");
    ASSERT_TRUE(perf.ok());
    const auto memory = (*perf)["recommendations"]["workers"]["memory"];
    grid.stop();
    adaptive.stop();
    const auto grid_kills_read = grid_cgroup.oom_kills();
    const auto adaptive_kills_read = adaptive_cgroup.oom_kills();
    EXPECT_TRUE(grid_kills_read.ok()) << grid_kills_read.error().to_string();
    EXPECT_TRUE(adaptive_kills_read.ok()) << adaptive_kills_read.error().to_string();
    const std::uint64_t grid_kills = grid_kills_read.value_or(0);
    const std::uint64_t adaptive_kills = adaptive_kills_read.value_or(0);

    for (const PoolShape shape : grid_pairs()) {
        print_line(app, "grid " + shape_text(shape) + ": " + rps_list(m.grid[shape]) +
                            " rps; adaptive alongside: " +
                            (m.adaptive_alongside[shape].empty()
                                 ? std::string("- (not a contender)")
                                 : rps_list(m.adaptive_alongside[shape]) + " rps"));
    }
    const PoolShape best = m.best_pair();
    const double best_rps = best_of(m.grid[best]);
    ASSERT_FALSE(m.adaptive_alongside[best].empty())
        << "the best pair " << shape_text(best) << " was never a contender";
    const double adaptive_rps = best_of(m.adaptive_alongside[best]);
    std::set<PoolShape> shapes(m.adaptive_shapes.begin(), m.adaptive_shapes.end());
    std::string shapes_text;
    for (const auto& s : shapes) shapes_text += " " + shape_text(s);
    print_line(app, "adaptive: converged at " + shape_text(converged) + " " +
                        std::to_string(lround(*converged_after_s)) +
                        " s after its load started; pool during the windows:" + shapes_text + "; " +
                        std::to_string(changes_after_convergence) +
                        " pool decisions after convergence");
    char ratio[32];
    std::snprintf(ratio, sizeof ratio, "%.2f", adaptive_rps / best_rps);
    print_line(app, "best static pair " + shape_text(best) + " " +
                        std::to_string(lround(best_rps)) + " rps (best of " +
                        std::to_string(tries()) + "); adaptive alongside it " +
                        std::to_string(lround(adaptive_rps)) + " rps = " + ratio + " x");
    std::string trees = "largest process tree by threads (grid):";
    for (const auto& [threads, bytes] : m.largest_tree_by_threads)
        trees += " " + std::to_string(threads) + ": " + mb(bytes) + ";";
    print_line(app, trees);
    print_line(app, "memory measured by threads (adaptive): " + memory["measured"].dump());
    print_line(app, "oom kills: grid " + std::to_string(grid_kills) + ", adaptive " +
                        std::to_string(adaptive_kills) + "; pair changes: grid " +
                        std::to_string(grid_pair_changes) + ", adaptive " +
                        std::to_string(adaptive_pairs));
    for (const auto& [name, daemon] :
         {std::pair{"grid", &grid}, std::pair{"adaptive", &adaptive}}) {
        const LoadResult& r = daemon->requests();
        print_line(app, std::string("requests: ") + name + " " + std::to_string(r.sent) +
                            " sent, " + std::to_string(r.ok_2xx) + " 2xx, " +
                            std::to_string(r.non_2xx()) + " other, " +
                            std::to_string(r.client_errors) + " client errors");
    }

    EXPECT_EQ(grid_kills, 0u);
    EXPECT_EQ(adaptive_kills, 0u);
    // No failed request, through every rolling thread change of both pools.
    for (const auto* load : {&grid.requests(), &adaptive.requests()}) {
        EXPECT_GT(load->ok_2xx, 0u);
        EXPECT_EQ(load->client_errors, 0u) << load->summary();
        EXPECT_EQ(load->non_2xx(), 0u) << load->summary();
    }
    // A pair change (1 × 16 → 2 × 8 in the test's grid, 1 × 16 → 2 × 1 in the benchmark's, by
    // reload) is two decisions with one plan_id.
    EXPECT_GE(grid_pair_changes, 1u);

    EXPECT_EQ(converged.processes, 2u) << "memory fits two processes of 150 MB";
    EXPECT_GT(converged.threads, 1u);
    const auto raises = decisions_of_rule(adaptive_decisions, "threads_wait_share");
    ASSERT_FALSE(raises.empty()) << adaptive_decisions.dump(2);
    const std::string first_raise = raises.back()["reason"];
    EXPECT_NE(first_raise.find("memory ceiling 2 processes at"), std::string::npos) << first_raise;
    EXPECT_NE(first_raise.find("wait share"), std::string::npos) << first_raise;
    // The per-process estimate was measured at more than one thread count, not assumed flat.
    EXPECT_GE(memory["measured"].size(), 2u) << memory.dump(2);
    EXPECT_GE(adaptive_rps, kMinShareOfBest * best_rps)
        << "adaptive " << adaptive_rps << " rps, best static " << shape_text(best) << " "
        << best_rps << " rps";
}

TEST(ThreadsRoot, DemoAppIn512MBFindsThreadsNearTheBestStaticPairWithoutOomKills) {
    prove_threads_knob(demo_app());
}

TEST(ThreadsRoot, FlaskUnderGunicornIn512MBFindsThreadsNearTheBestStaticPairWithoutOomKills) {
    if (const auto missing = missing_python_packages(); !missing.empty()) {
        // `make test` installs them: their absence is a failure, never a silent skip.
        FAIL() << "needs python3-flask and python3-gunicorn for /usr/bin/python3 "
                  "(scripts/install-deps --test installs them): "
               << missing;
    }
    prove_threads_knob(flask_app());
}

}  // namespace
}  // namespace tuner::test
