// The control thread (DESIGN "Threads of the daemon"): every policy.interval it samples the
// probes, adds the pool's state and the front's window statistics to make a Snapshot, runs the
// policies and applies the Plan through apply(). It also keeps the latest picture for the admin
// API and the metrics, and runs a cycle on demand (POST /performance/optimize).
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "model/config.hpp"
#include "model/decision.hpp"
#include "model/snapshot.hpp"
#include "policies/cache_capacity.hpp"
#include "policies/compression_level.hpp"
#include "policies/seed_formula.hpp"
#include "policies/worker_controller.hpp"
#include "probes/prober.hpp"
#include "server/dispatcher.hpp"
#include "server/pool.hpp"
#include "tuner/control/apply.hpp"
#include "tuner/control/control_view.hpp"
#include "tuner/control/database_tuner.hpp"
#include "tuner/decision_log/json.hpp"
#include "tuner/decision_log/log.hpp"

namespace tuner {

class ControlLoop {
public:
    ControlLoop(Config config, server::WorkerPool& pool, server::Dispatcher& dispatcher,
                Applier& applier, DecisionLog& log, probes::ProbeRoots roots = {});
    ~ControlLoop();

    // Before the pool starts: the first snapshot and the pool's starting size, decided by the
    // policies (seed formula, or workers.count when fixed) and recorded through apply().
    // Returns {workers, threads}.
    std::pair<unsigned, unsigned> initial_shape(
        const std::function<void(unsigned, unsigned)>& start_pool);

    void start();
    void stop();

    // Runs one cycle now on the control thread; `done` gets its plan (with outcomes) as JSON,
    // on the control thread (or at once with an "error" member when the loop is not running).
    void optimize_now(std::function<void(nlohmann::json)> done = {});

    // SIGHUP with a valid new config: new bounds and modes reach the controller and the pool.
    void reload(const Config& config);

    // POST /postgres/rollback: see DatabaseTuner::rollback; answers at once when there is no
    // database configured.
    void rollback_postgres(std::function<void(nlohmann::json report, int http_status)> done);

    // Where the compression level policy reads the front's compression (its level in use and
    // the CPU it spent). Set before start(); unset, the policy does not run.
    void set_compression_source(std::function<policies::CompressionState()> source);

    // Where each snapshot reads the front's micro-cache as memory (Snapshot::cache: its size,
    // capacity and bytes held), for the budget and the cache.capacity policy. Set before
    // start(); unset, the cache counts as off.
    void set_cache_source(std::function<CacheMemory()> source);

    [[nodiscard]] ControlView view() const;
    [[nodiscard]] Config config() const;

    // Liveness for the systemd watchdog: the thread marks progress at the top of each turn of its
    // loop and wakes at least every `every` to do so (between cycles too), so a mark older than
    // a few of `every` means it is stuck (in a probe, a policy, a lock). Call before start().
    void set_heartbeat_every(Duration every);
    // When the thread last showed progress (start() counts as one).
    [[nodiscard]] Clock::time_point last_heartbeat() const;
    // A test-only hook (docs/operations.md, "Test hooks"): each on-demand cycle (POST
    // /performance/optimize) first holds the control thread for this long, as a stuck probe
    // would. Zero (the default) does nothing; the daemon sets it only from
    // TUNERD_TEST_STALL_CONTROL_MS with TUNERD_TEST_HOOKS=1. Call before start().
    void set_test_stall(Duration stall);

private:
    void run();
    nlohmann::json cycle();
    Snapshot take_snapshot();
    void act_on_plan(Plan& plan);
    void record_sample(const Snapshot& s);

    mutable std::mutex config_mutex_;
    Config config_;
    server::WorkerPool& pool_;
    server::Dispatcher& dispatcher_;
    Applier& applier_;
    DecisionLog& log_;
    probes::Prober prober_;
    policies::WorkerController controller_;
    std::unique_ptr<DatabaseTuner> database_;
    std::function<policies::CompressionState()> compression_source_;
    policies::CompressionLevelPolicy compression_;
    std::function<CacheMemory()> cache_source_;
    policies::CacheCapacityPolicy cache_capacity_;

    mutable std::mutex view_mutex_;
    ControlView view_;

    std::mutex wake_mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
    std::vector<std::function<void(nlohmann::json)>> optimize_requests_;
    bool optimize_requested_ = false;
    std::optional<Config> pending_reload_;
    std::thread thread_;
    Clock::time_point last_sample_{};
    Duration heartbeat_every_{0};
    Duration test_stall_{0};
    std::atomic<Clock::rep> heartbeat_{0};
};

}  // namespace tuner
