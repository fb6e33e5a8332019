// The worker pool supervisor: spawns the app's workers, marks them ready when their socket
// accepts (or health_path answers 2xx), resizes live without losing a request (scale down =
// stop dispatching, drain, SIGTERM, SIGKILL), recycles workers after max_requests or above
// max_worker_rss, replaces crashed workers with exponential backoff, and changes threads by
// rolling replacement. Runs on the I/O thread; every public method may be called from any
// thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "model/config.hpp"
#include "model/snapshot.hpp"
#include "server/dispatcher.hpp"
#include "server/reconcile.hpp"

namespace tuner::server {

struct PoolOptions {
    PoolConfig workers;
    DemoConfig demo;
    std::string self_exe;    // the tunerd binary, for builtin:demo
    std::string socket_dir;  // where worker Unix sockets live
};

struct PoolHealth {
    bool degraded = false;
    std::vector<std::string> problems;     // human sentences
    std::string last_exit;                 // "worker 7 (pid 1234) killed by signal 9 (SIGKILL)"
    std::vector<std::string> last_stderr;  // the last lines the crashed worker wrote
    unsigned crash_streak = 0;
    std::uint64_t crashes_total = 0;
    std::uint64_t recycled_total = 0;
    std::uint64_t spawned_total = 0;
    std::optional<double> next_restart_in_s;  // while a crash backoff holds a restart back
};

// A rolling restart (a code deploy): every worker replaced one at a time by one of the new
// generation, each ready before the old one drains.
struct RestartStatus {
    enum class State { none, rolling, done, halted };
    State state = State::none;
    unsigned generation = 1;          // the generation new workers start in
    std::string trigger;              // "admin API", "SIGUSR2"
    unsigned replaced = 0;            // workers of an older generation replaced so far
    unsigned remaining = 0;           // workers of an older generation still serving
    std::optional<double> elapsed_s;  // since it began (rolling), or how long it took (done)
    std::string halted_reason;        // a new worker failed before it was ready: the old ones stay
};
const char* to_string(RestartStatus::State state);

// The preloader of the current generation (workers.preload), for /workers and /health.
struct PreloaderStatus {
    unsigned generation = 0;
    pid_t pid = -1;
    std::string state;      // "starting" (importing), "ready", "failed" (restarts after a backoff)
    unsigned restarts = 0;  // after a crash or a failed import
    std::uint64_t workers_forked = 0;      // by this generation's preloader, all its lives
    std::string last_error;                // the import error, or how it died
    std::vector<std::string> last_stderr;  // its last stderr lines (an import's traceback)
    std::optional<double> restart_in_s;
    unsigned older_running = 0;  // preloaders of older generations, kept while their workers live
};

struct PoolStatus {
    PoolState state;
    std::optional<PreloaderStatus>
        preloader;  // with workers.preload  // target, ready, starting, draining, threads, workers
    PoolHealth health;
    RestartStatus restart;
    bool ever_ready = false;
    std::optional<double> below_target_for_s;  // how long fewer than target workers were ready
};

class WorkerPool {
public:
    WorkerPool(boost::asio::io_context& ioc, Dispatcher& dispatcher, PoolOptions options);
    ~WorkerPool();
    WorkerPool(const WorkerPool&) = delete;
    WorkerPool& operator=(const WorkerPool&) = delete;

    // Starts supervising with this many workers of this many threads: status() reports the
    // shape at once, the workers start once the I/O thread runs.
    void start(unsigned target, unsigned threads);
    // Live resize; concurrent calls coalesce to the latest target.
    void resize(unsigned target);
    // Rolling replacement to a new per-worker thread count, one worker at a time.
    void set_threads(unsigned threads);
    // Extra environment for workers started from now on (the DB pool sizes); recycled workers
    // pick it up.
    void set_worker_env(std::map<std::string, std::string> env);
    // The most worker processes memory holds at once, every live one counted (unset: no limit
    // applies). A new thread count replaces as many workers at once as that leaves room for; at
    // it, a replacement starts only once the old worker is gone.
    void set_max_processes(std::optional<unsigned> max);
    // Process-tree memory of each worker (from the probes), for max_worker_rss and /workers.
    void set_worker_rss(const std::map<unsigned, std::uint64_t>& rss_bytes);
    // Config reload: recycling limits, timeouts, command (new workers use it).
    void update_options(const PoolConfig& workers, const DemoConfig& demo);
    // Rolling restart for a code deploy: every worker is replaced, one at a time, by one
    // started now (with the options update_options gave last), each new one ready before the old
    // one drains; at the memory ceiling the old one drains first. A new worker that dies or fails
    // its readiness check before it is ready halts the restart, and the old workers keep serving.
    // Returns the generation the new workers get; the restart begins on the I/O thread, after
    // anything posted before it (an update_options).
    unsigned restart(std::string trigger);
    // The front could not reach a worker or lost it mid-request. Acts before it returns (a dead
    // worker leaves dispatch at once), so the front calls it before releasing the slot and
    // retrying.
    void upstream_failed(unsigned worker_id, const std::string& error);
    // A worker held a request far past request_timeout: replace it gracefully.
    void worker_stuck(unsigned worker_id, const std::string& why);

    // Graceful stop: drain every worker, SIGTERM, SIGKILL after kill_timeout; `done` runs on
    // the I/O thread when all have exited. `immediate`: skip draining (second signal).
    void stop(bool immediate, std::function<void()> done);

    [[nodiscard]] PoolStatus status() const;
    // (worker id, pid) of every live worker, for the probes.
    [[nodiscard]] std::vector<std::pair<unsigned, pid_t>> worker_pids() const;

    struct Worker;
    struct Preloader;

private:
    // workers.preload: start the current generation's preloader when there is none (or its
    // crash backoff ended); retire older ones whose workers are all gone. On the I/O thread.
    void ensure_preloader();
    void watch_preloader_hello(const std::shared_ptr<Preloader>& p);
    void retire_idle_preloaders_locked();
    bool on_preloader_exit_locked(pid_t pid, int status);
    void halt_restart_locked(const std::string& what);
    // Decide (plan_reconcile over the workers' facts), then act: spawn, drain, kill, replace.
    void reconcile();
    ReconcileInput reconcile_input_locked();  // drops the vacant slots no longer needed
    void begin_replacement_locked(const ReconcilePlan::Replace& replace);
    // A ready worker is to be replaced (max_requests, max_worker_rss, stuck); false when it is
    // not in plain service (already on its way out, or still starting).
    bool mark_recycle_due_locked(Worker& w, std::string reason);
    void spawn_one();
    void on_ready(const std::shared_ptr<Worker>& w);
    void begin_drain(const std::shared_ptr<Worker>& w, const char* why);
    void terminate(const std::shared_ptr<Worker>& w);
    void on_exit(pid_t pid, int status);
    void watch_children();
    void probe_readiness(std::shared_ptr<Worker> w);
    void read_output(std::shared_ptr<Worker> w, bool is_stderr);
    void log_line(Worker& w, bool is_stderr, std::string_view line);
    void schedule_reconcile(Duration after);
    std::vector<std::string> build_argv(const Worker& w) const;
    std::map<std::string, std::string> build_env(const Worker& w) const;
    std::optional<std::uint16_t> allocate_port();
    unsigned counted_locked() const;
    // Records a crash (or a failed start) of a worker of `slot`: the slot becomes vacant until
    // its replacement may start (judge_crash), which is returned.
    Duration note_crash_locked(Clock::time_point now, unsigned slot, SlotHistory history,
                               bool served, std::string description,
                               std::vector<std::string> stderr_tail);
    // A new worker takes a vacant slot whose backoff ended (with its crash history), else a new.
    void take_slot_locked(Worker& w);
    // The rolling restart: halted when a worker of its generation died before it was ready;
    // done when every worker in service is of the new generation.
    void check_restart_failure_locked(const Worker& w, bool was_ready, const std::string& what);
    void check_restart_done_locked();
    std::uint64_t recycle_limit();

    boost::asio::io_context& ioc_;
    Dispatcher& dispatcher_;
    PoolOptions options_;
    struct Impl;
    std::unique_ptr<Impl> impl_;

    mutable std::mutex mutex_;  // guards everything below; held only briefly
    unsigned target_ = 0;
    unsigned threads_ = 1;
    bool started_ = false;
    bool stopping_ = false;
    std::optional<unsigned> max_processes_;
    unsigned next_id_ = 1;
    std::map<unsigned, std::shared_ptr<Worker>> workers_;
    std::map<unsigned, std::shared_ptr<Preloader>> preloaders_;  // by generation
    std::map<std::string, std::string> worker_env_;
    std::map<unsigned, std::uint64_t> rss_;
    PoolHealth health_;
    bool ever_ready_ = false;
    mutable std::optional<Clock::time_point> below_target_since_;
    Clock::time_point last_crash_{};
    struct VacantSlot {
        unsigned slot = 0;
        SlotHistory history;
        Clock::time_point not_before{};
    };
    std::vector<VacantSlot> vacant_slots_;  // left by crashes, until a replacement takes them
    unsigned next_slot_ = 1;
    unsigned generation_ = 1;       // new workers start in it
    unsigned next_generation_ = 2;  // the next restart's
    RestartStatus restart_;
    Clock::time_point restart_began_{};
    std::mt19937_64 rng_{std::random_device{}()};
    std::function<void()> stop_done_;
};

// "{socket}" etc. replaced in every argument.
std::vector<std::string> substitute_command(const std::vector<std::string>& command,
                                            const std::map<std::string, std::string>& values);

}  // namespace tuner::server
