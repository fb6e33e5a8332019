// The worker pool supervisor (see pool.hpp).
#include "server/pool.hpp"

#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include "model/log_text.hpp"
#include "server/guarded.hpp"
#include "server/preloader.hpp"
#include "server/process.hpp"

namespace tuner::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::use_awaitable;

namespace {

constexpr std::size_t kStderrTail = 20;
constexpr double kLogLinesPerSecond = 50;
constexpr double kLogBurst = 200;
constexpr auto kCrashStreakReset = std::chrono::seconds(60);

double seconds_since(Clock::time_point t, Clock::time_point now) {
    return std::chrono::duration<double>(now - t).count();
}

}  // namespace

struct WorkerPool::Worker {
    unsigned id = 0;
    pid_t pid = -1;
    Lifecycle phase = Lifecycle::starting;
    // Why it is in its phase: why it is being replaced (recycle_due, retiring), drained, or why
    // it never became ready (start_failed); "" otherwise.
    std::string reason;
    unsigned threads = 1;
    unsigned generation = 1;  // the restart generation it was started in
    UpstreamAddress address;
    Clock::time_point spawned_at{};
    Clock::time_point ready_at{};
    BackendPtr backend;
    unsigned slot = 0;
    SlotHistory slot_history;  // its slot's crashes: the replacement of a crash inherits them
    std::unique_ptr<asio::posix::stream_descriptor> out, err;
    std::string out_partial, err_partial;
    std::unique_ptr<asio::steady_timer> timer;  // readiness, drain and kill deadlines
    std::deque<std::string> stderr_tail;
    double tokens = kLogBurst;
    Clock::time_point tokens_at = Clock::now();
    std::uint64_t suppressed = 0;
    unsigned preloader_generation = 0;  // > 0: this is a preloader's output, not a worker
};

struct WorkerPool::Preloader {
    enum class Phase { starting, ready, stopping, exited };
    unsigned generation = 1;
    pid_t pid = -1;
    Phase phase = Phase::exited;
    std::unique_ptr<asio::posix::stream_descriptor> control;  // owns tunerd's end
    std::shared_ptr<Worker> output;  // its stdout and stderr, read and logged as a worker's
    std::unique_ptr<asio::steady_timer> timer;  // the import deadline
    Clock::time_point started_at{};
    std::string last_error;
    SlotHistory history;  // its crashes: the same backoff as a worker slot's
    Clock::time_point not_before{};
    unsigned restarts = 0;
    std::uint64_t forked = 0;
};

namespace {

// Every signal to a worker goes through here but on_exit's last one. An exited worker has been
// reaped, or is about to be: its pid may already name another process, so it is never signalled.
void signal_worker(const WorkerPool::Worker& w, int signal) {
    if (w.phase == Lifecycle::exited) return;
    signal_process_group(w.pid, signal);
}

}  // namespace

struct WorkerPool::Impl {
    explicit Impl(asio::io_context& ioc) : sigchld(ioc, SIGCHLD), reconcile_timer(ioc) {}
    asio::signal_set sigchld;
    asio::steady_timer reconcile_timer;
    bool reconcile_scheduled = false;
    std::map<std::uint16_t, unsigned> ports_in_use;  // port -> worker id
    std::uint16_t next_port = 0;
};

const char* to_string(RestartStatus::State state) {
    switch (state) {
        case RestartStatus::State::none:
            return "none";
        case RestartStatus::State::rolling:
            return "rolling";
        case RestartStatus::State::done:
            return "done";
        case RestartStatus::State::halted:
            return "halted";
    }
    return "?";
}

std::vector<std::string> substitute_command(const std::vector<std::string>& command,
                                            const std::map<std::string, std::string>& values) {
    // One pass per argument: a substituted value is never scanned again, so a socket path that
    // happens to contain "{port}" stays as it is, whatever the order of the names.
    std::vector<std::string> out;
    out.reserve(command.size());
    for (const std::string& arg : command) {
        std::string result;
        std::size_t i = 0;
        while (i < arg.size()) {
            if (arg[i] == '{') {
                const auto close = arg.find('}', i);
                if (close != std::string::npos) {
                    if (auto it = values.find(arg.substr(i + 1, close - i - 1));
                        it != values.end()) {
                        result += it->second;
                        i = close + 1;
                        continue;
                    }
                }
            }
            result += arg[i++];
        }
        out.push_back(std::move(result));
    }
    return out;
}

WorkerPool::WorkerPool(asio::io_context& ioc, Dispatcher& dispatcher, PoolOptions options)
    : ioc_(ioc),
      dispatcher_(dispatcher),
      options_(std::move(options)),
      impl_(std::make_unique<Impl>(ioc)) {
    impl_->next_port = options_.workers.ports.first;
    Dispatcher::Callbacks callbacks;
    callbacks.drained = [this](unsigned id) {
        asio::post(ioc_, [this, id] {
            std::shared_ptr<Worker> w;
            {
                std::lock_guard lock(mutex_);
                auto it = workers_.find(id);
                if (it == workers_.end() || it->second->phase != Lifecycle::draining) return;
                w = it->second;
            }
            terminate(w);
        });
    };
    callbacks.recycle_due = [this](unsigned id) {
        asio::post(ioc_, [this, id] {
            {
                std::lock_guard lock(mutex_);
                auto it = workers_.find(id);
                if (it == workers_.end()) return;
                mark_recycle_due_locked(
                    *it->second,
                    "served " +
                        std::to_string(it->second->backend ? it->second->backend->recycle_after
                                                           : 0) +
                        " requests (max_requests " + std::to_string(options_.workers.max_requests) +
                        " + jitter)");
            }
            reconcile();
        });
    };
    dispatcher_.set_callbacks(std::move(callbacks));
}

WorkerPool::~WorkerPool() {
    // Whatever is still running dies with us (the destructor runs at exit, after stop()).
    std::lock_guard lock(mutex_);
    for (auto& [id, w] : workers_) {
        signal_worker(*w, SIGKILL);
        if (!w->address.unix_path.empty()) ::unlink(w->address.unix_path.c_str());
    }
}

void WorkerPool::start(unsigned target, unsigned threads) {
    // The shape holds at once, as resize() does, not once the I/O thread runs: the control
    // thread's first cycle may come before, and took a target of 0 for an empty pool to raise
    // to workers.min, a resize that could then land after this start and override it.
    {
        std::lock_guard lock(mutex_);
        target_ = target;
        threads_ = std::max(1u, threads);
    }
    asio::post(ioc_, [this] {
        {
            std::lock_guard lock(mutex_);
            started_ = true;
        }
        watch_children();
        reconcile();
    });
}

void WorkerPool::resize(unsigned target) {
    {
        std::lock_guard lock(mutex_);
        target_ = target;
    }
    asio::post(ioc_, [this] { reconcile(); });
}

void WorkerPool::set_threads(unsigned threads) {
    {
        std::lock_guard lock(mutex_);
        threads_ = std::max(1u, threads);
    }
    asio::post(ioc_, [this] { reconcile(); });
}

void WorkerPool::set_worker_env(std::map<std::string, std::string> env) {
    std::lock_guard lock(mutex_);
    worker_env_ = std::move(env);
}

void WorkerPool::set_max_processes(std::optional<unsigned> max) {
    std::lock_guard lock(mutex_);
    max_processes_ = max;
}

void WorkerPool::update_options(const PoolConfig& workers, const DemoConfig& demo) {
    asio::post(ioc_, [this, workers, demo] {
        std::lock_guard lock(mutex_);
        options_.workers = workers;
        options_.demo = demo;
    });
}

unsigned WorkerPool::restart(std::string trigger) {
    unsigned generation = 0;
    {
        std::lock_guard lock(mutex_);
        generation = next_generation_++;
    }
    asio::post(ioc_, [this, generation, trigger = std::move(trigger)] {
        {
            std::lock_guard lock(mutex_);
            if (stopping_) return;
            generation_ = generation;
            restart_ = RestartStatus{};
            restart_.state = RestartStatus::State::rolling;
            restart_.generation = generation;
            restart_.trigger = trigger;
            restart_began_ = Clock::now();
            unsigned old = 0;
            for (const auto& [id, w] : workers_) {
                old += counts_towards_target(w->phase) || w->phase == Lifecycle::retiring ? 1 : 0;
            }
            spdlog::info(
                "event=restart_begin generation={} trigger=\"{}\" workers={} (each replaced "
                "by a new one, ready before the old one drains)",
                generation, trigger, old);
        }
        reconcile();
    });
    return generation;
}

void WorkerPool::check_restart_failure_locked(const Worker& w, bool was_ready,
                                              const std::string& what) {
    if (restart_.state != RestartStatus::State::rolling || w.generation != generation_ || was_ready)
        return;
    halt_restart_locked(what);
}

void WorkerPool::halt_restart_locked(const std::string& what) {
    if (restart_.state != RestartStatus::State::rolling) return;
    restart_.state = RestartStatus::State::halted;
    restart_.halted_reason = what;
    restart_.elapsed_s = seconds_since(restart_began_, Clock::now());
    // The workers waiting for their replacement go back to plain service.
    for (auto& [id, other] : workers_) {
        if (other->phase == Lifecycle::retiring && other->generation < generation_ &&
            other->reason.starts_with("restart:")) {
            other->phase = Lifecycle::ready;
            other->reason.clear();
        }
    }
    spdlog::error(
        "event=restart_halted generation={} replaced={} error=\"{}\" action=\"the workers of "
        "the older generation keep serving; fix the app or the config, then restart again\"",
        generation_, restart_.replaced, what);
}

void WorkerPool::check_restart_done_locked() {
    if (restart_.state != RestartStatus::State::rolling) return;
    unsigned old = 0;
    bool starting = false;
    for (const auto& [id, w] : workers_) {
        if (w->phase == Lifecycle::starting) starting = true;
        if ((takes_requests(w->phase) || w->phase == Lifecycle::starting) &&
            w->generation < generation_)
            ++old;
    }
    restart_.remaining = old;
    if (old > 0 || starting) return;
    restart_.state = RestartStatus::State::done;
    restart_.elapsed_s = seconds_since(restart_began_, Clock::now());
    spdlog::info("event=restart_done generation={} replaced={} seconds={:.1f}", generation_,
                 restart_.replaced, *restart_.elapsed_s);
}

void WorkerPool::set_worker_rss(const std::map<unsigned, std::uint64_t>& rss_bytes) {
    bool recycle = false;
    {
        std::lock_guard lock(mutex_);
        rss_ = rss_bytes;
        const auto limit = options_.workers.max_worker_rss_bytes;
        if (limit == 0) return;
        for (const auto& [id, bytes] : rss_bytes) {
            auto it = workers_.find(id);
            if (it == workers_.end() || bytes <= limit) continue;
            recycle = mark_recycle_due_locked(*it->second, "RSS " + format_size_approx(bytes) +
                                                               " > max_worker_rss " +
                                                               format_size_approx(limit)) ||
                      recycle;
        }
    }
    if (recycle) asio::post(ioc_, [this] { reconcile(); });
}

void WorkerPool::upstream_failed(unsigned worker_id, const std::string& error) {
    // Synchronous, not posted: the front calls this before it gives the failed request's slot
    // back and retries. A posted check ran too late: the freed slot and the retry itself were
    // granted to the dead worker again (it was still "accepting"), so with no other worker free
    // the retry failed too and the client got 502 (kill -9 of the last ready worker).
    std::lock_guard lock(mutex_);
    auto it = workers_.find(worker_id);
    if (it == workers_.end() || it->second->phase == Lifecycle::exited) return;
    // A worker whose process is gone but not yet reaped takes no more requests; a live one
    // (say a gunicorn master replacing its child) keeps its place.
    if (!process_alive(it->second->pid)) {
        dispatcher_.stop_accepting(worker_id);
        spdlog::warn("event=worker_unreachable worker={} pid={} error=\"{}\"", worker_id,
                     it->second->pid, error);
    } else {
        spdlog::debug("event=upstream_error worker={} error=\"{}\"", worker_id, error);
    }
}

void WorkerPool::worker_stuck(unsigned worker_id, const std::string& why) {
    asio::post(ioc_, [this, worker_id, why] {
        {
            std::lock_guard lock(mutex_);
            auto it = workers_.find(worker_id);
            if (it == workers_.end() || !mark_recycle_due_locked(*it->second, "stuck: " + why))
                return;
            spdlog::warn("event=worker_stuck worker={} pid={} reason=\"{}\"", worker_id,
                         it->second->pid, why);
        }
        reconcile();
    });
}

void WorkerPool::watch_children() {
    impl_->sigchld.async_wait([this](const beast::error_code& ec, int) {
        if (ec) return;
        // on_exit runs before the reap: it may still signal the worker's group (see there).
        reap_exited_children([this](pid_t pid, int status) { on_exit(pid, status); });
        watch_children();
    });
}

unsigned WorkerPool::counted_locked() const {
    unsigned n = 0;
    for (const auto& [id, w] : workers_) n += counts_towards_target(w->phase) ? 1 : 0;
    return n;
}

bool WorkerPool::mark_recycle_due_locked(Worker& w, std::string reason) {
    // Only a worker in plain service: one already on its way out keeps its reason.
    if (w.phase != Lifecycle::ready) return false;
    w.phase = Lifecycle::recycle_due;
    w.reason = std::move(reason);
    return true;
}

std::uint64_t WorkerPool::recycle_limit() {
    const auto& cfg = options_.workers;
    if (cfg.max_requests == 0) return 0;
    std::uint64_t jitter = 0;
    if (cfg.max_requests_jitter > 0) {
        jitter = std::uniform_int_distribution<std::uint64_t>(0, cfg.max_requests_jitter)(rng_);
    }
    return cfg.max_requests + jitter;
}

void WorkerPool::schedule_reconcile(Duration after) {
    if (impl_->reconcile_scheduled) return;
    impl_->reconcile_scheduled = true;
    impl_->reconcile_timer.expires_after(after);
    impl_->reconcile_timer.async_wait([this](const beast::error_code& ec) {
        impl_->reconcile_scheduled = false;
        if (!ec) reconcile();
    });
}

ReconcileInput WorkerPool::reconcile_input_locked() {
    ReconcileInput in;
    const auto load = dispatcher_.backend_load();
    for (const auto& [id, w] : workers_) {
        auto it = load.find(id);
        in.workers.push_back({id, w->phase, w->threads, w->spawned_at,
                              it == load.end() ? 0u : it->second.first, w->generation});
    }
    if (restart_.state == RestartStatus::State::rolling) in.restart_generation = generation_;
    in.target = target_;
    in.threads = threads_;
    in.max_processes = max_processes_;
    in.now = Clock::now();
    // Only as many vacant slots as the pool is short of: the latest-allowed ones go first.
    const unsigned counted = counted_locked();
    const unsigned missing = target_ > counted ? target_ - counted : 0;
    std::sort(vacant_slots_.begin(), vacant_slots_.end(),
              [](const VacantSlot& a, const VacantSlot& b) { return a.not_before < b.not_before; });
    if (vacant_slots_.size() > missing) vacant_slots_.resize(missing);
    for (const auto& v : vacant_slots_) in.vacant_slots.push_back(v.not_before);
    return in;
}

void WorkerPool::reconcile() {
    ensure_preloader();
    ReconcilePlan plan;
    std::vector<std::shared_ptr<Worker>> to_drain;
    {
        std::lock_guard lock(mutex_);
        if (!started_ || stopping_) return;
        retire_idle_preloaders_locked();
        plan = plan_reconcile(reconcile_input_locked());
        if (plan.retry_after) schedule_reconcile(*plan.retry_after);
        for (const auto& replace : plan.replace) begin_replacement_locked(replace);
        check_restart_done_locked();
        for (unsigned id : plan.kill) {
            auto& w = workers_.at(id);
            w->phase = Lifecycle::stopping;
            signal_worker(*w, SIGKILL);
        }
        for (unsigned id : plan.drain) to_drain.push_back(workers_.at(id));
    }
    for (auto& w : to_drain) begin_drain(w, "scale down or replaced");
    for (unsigned i = 0; i < plan.spawn; ++i) spawn_one();
}

void WorkerPool::begin_replacement_locked(const ReconcilePlan::Replace& replace) {
    auto& w = *workers_.at(replace.id);
    if (!replace.reason.empty()) w.reason = replace.reason;
    ++health_.recycled_total;
    if (restart_.state == RestartStatus::State::rolling && w.generation < generation_)
        ++restart_.replaced;
    if (replace.replacement_first) {
        spdlog::info("event=worker_recycle worker={} reason=\"{}\" order=replacement_first", w.id,
                     w.reason);
        w.phase = Lifecycle::retiring;
    } else {
        spdlog::info(
            "event=worker_recycle worker={} reason=\"{}\" order=drain_first (memory ceiling)", w.id,
            w.reason);
    }
}

std::optional<std::uint16_t> WorkerPool::allocate_port() {
    const auto& range = options_.workers.ports;
    const unsigned span = static_cast<unsigned>(range.last - range.first) + 1;
    for (unsigned tries = 0; tries < span; ++tries) {
        std::uint16_t port = impl_->next_port;
        impl_->next_port = port >= range.last ? range.first : static_cast<std::uint16_t>(port + 1);
        if (impl_->ports_in_use.count(port)) continue;
        // Skip ports something else holds.
        beast::error_code ec;
        asio::ip::tcp::acceptor probe(ioc_);
        probe.open(asio::ip::tcp::v4(), ec);
        if (!ec) probe.bind({asio::ip::address_v4::loopback(), port}, ec);
        if (ec) continue;
        return port;
    }
    return std::nullopt;
}

std::vector<std::string> WorkerPool::build_argv(const Worker& w) const {
    std::map<std::string, std::string> values = {
        {"socket", w.address.unix_path},
        {"port", w.address.tcp_port ? std::to_string(*w.address.tcp_port) : ""},
        {"threads", std::to_string(w.threads)},
        {"worker_id", std::to_string(w.id)},
    };
    if (options_.workers.is_builtin_demo()) {
        std::vector<std::string> argv = {options_.self_exe, "demo-worker"};
        if (w.address.tcp_port) {
            argv.insert(argv.end(), {"--port", values["port"]});
        } else {
            argv.insert(argv.end(), {"--socket", w.address.unix_path});
        }
        argv.insert(
            argv.end(),
            {"--threads", values["threads"], "--cpu-ms", std::to_string(options_.demo.cpu_ms),
             "--io-ms", std::to_string(options_.demo.io_ms), "--rss-mb",
             std::to_string(options_.demo.rss_mb), "--worker-id", values["worker_id"]});
        return argv;
    }
    return substitute_command(options_.workers.command, values);
}

std::map<std::string, std::string> WorkerPool::build_env(const Worker& w) const {
    std::map<std::string, std::string> env = worker_env_;
    for (const auto& [k, v] : options_.workers.env) env[k] = v;
    if (w.address.tcp_port) {
        env["PORT"] = std::to_string(*w.address.tcp_port);
    } else {
        env["TUNER_SOCKET"] = w.address.unix_path;
    }
    env["TUNER_WORKER_ID"] = std::to_string(w.id);
    env["TUNER_THREADS"] = std::to_string(w.threads);
    env["WEB_CONCURRENCY"] = "1";
    return env;
}

Duration WorkerPool::note_crash_locked(Clock::time_point now, unsigned slot, SlotHistory history,
                                       bool served, std::string description,
                                       std::vector<std::string> stderr_tail) {
    if (now - last_crash_ > kCrashStreakReset) health_.crash_streak = 0;
    ++health_.crash_streak;
    ++health_.crashes_total;
    last_crash_ = now;
    health_.last_exit = std::move(description);
    health_.last_stderr = std::move(stderr_tail);
    const CrashVerdict verdict = judge_crash(history, served, now);
    vacant_slots_.push_back({slot, std::move(history), now + verdict.backoff});
    if (verdict.backoff > Duration{0}) schedule_reconcile(verdict.backoff);
    return verdict.backoff;
}

void WorkerPool::take_slot_locked(Worker& w) {
    // The vacant slot whose backoff ended first (its crash history goes with it), else a new one.
    const auto now = Clock::now();
    auto best = vacant_slots_.end();
    for (auto it = vacant_slots_.begin(); it != vacant_slots_.end(); ++it) {
        if (it->not_before <= now &&
            (best == vacant_slots_.end() || it->not_before < best->not_before))
            best = it;
    }
    if (best == vacant_slots_.end()) {
        w.slot = next_slot_++;
        return;
    }
    w.slot = best->slot;
    w.slot_history = std::move(best->history);
    vacant_slots_.erase(best);
}

void WorkerPool::spawn_one() {
    auto w = std::make_shared<Worker>();
    SpawnSpec spec;
    std::shared_ptr<Preloader> preloader;
    std::string request;
    {
        std::lock_guard lock(mutex_);
        if (stopping_) return;
        if (options_.workers.uses_preload()) {
            // Forked from this generation's preloader once it is ready (its readiness calls
            // reconcile, which spawns what is missing then).
            auto it = preloaders_.find(generation_);
            if (it == preloaders_.end() || it->second->phase != Preloader::Phase::ready) return;
            preloader = it->second;
        }
        w->id = next_id_++;
        w->threads = threads_;
        w->generation = generation_;
        take_slot_locked(*w);
        const auto& command = options_.workers.command;
        const bool wants_port =
            !preloader && std::any_of(command.begin(), command.end(), [](const std::string& a) {
                return a.find("{port}") != std::string::npos;
            });
        if (wants_port) {
            w->address.tcp_port = allocate_port();
            if (!w->address.tcp_port) {
                health_.last_exit = "worker " + std::to_string(w->id) +
                                    " could not start: no free port in workers.ports";
                spdlog::error(
                    "event=spawn_failed worker={} error=\"no free port in workers.ports\"", w->id);
                vacant_slots_.push_back(
                    {w->slot, std::move(w->slot_history), Clock::now() + std::chrono::seconds(1)});
                schedule_reconcile(std::chrono::seconds(1));
                return;
            }
            impl_->ports_in_use[*w->address.tcp_port] = w->id;
        } else {
            w->address.unix_path = options_.socket_dir + "/w" + std::to_string(w->id) + ".sock";
            ::unlink(w->address.unix_path.c_str());
        }
        spec.argv = build_argv(*w);
        spec.env = build_env(*w);
        spec.dir = options_.workers.dir;
        if (preloader) request = encode_spawn_request(w->address.unix_path, w->threads, spec.env);
    }
    // The seam between the two spawners: fork/exec of workers.command, or a fork of the
    // preloader; either gives a process group leader with its stdout and stderr on pipes.
    auto spawned = preloader ? spawn_from_preloader(preloader->control->native_handle(), request,
                                                    kPreloadSpawnTimeout)
                             : spawn_process(spec);
    const auto now = Clock::now();
    std::lock_guard lock(mutex_);
    ++health_.spawned_total;
    if (preloader && spawned) ++preloader->forked;
    if (preloader && !spawned && !spawned.error().what.starts_with("refused") &&
        preloader->phase == Preloader::Phase::ready) {
        // It does not answer (or its socket broke): kill it; its exit restarts it.
        preloader->last_error = spawned.error().to_string();
        spdlog::error("event=preloader_unresponsive generation={} pid={} error=\"{}\"",
                      preloader->generation, preloader->pid, preloader->last_error);
        signal_process_group(preloader->pid, SIGKILL);
    }
    if (!spawned) {
        // Counted as a crash: the same backoff keeps a broken command from spinning.
        const auto& e = spawned.error();
        const Duration backoff = note_crash_locked(
            now, w->slot, std::move(w->slot_history), false,
            "worker " + std::to_string(w->id) + " could not start: " + e.to_string(), {});
        if (w->address.tcp_port) impl_->ports_in_use.erase(*w->address.tcp_port);
        spdlog::error("event=spawn_failed worker={} error=\"{}\" retry_in_s={}", w->id,
                      e.to_string(), to_seconds(backoff));
        check_restart_failure_locked(*w, false, health_.last_exit);
        return;
    }
    w->pid = spawned->pid;
    w->spawned_at = now;
    w->out = std::make_unique<asio::posix::stream_descriptor>(ioc_, spawned->stdout_fd);
    w->err = std::make_unique<asio::posix::stream_descriptor>(ioc_, spawned->stderr_fd);
    w->timer = std::make_unique<asio::steady_timer>(ioc_);
    workers_[w->id] = w;
    spdlog::info("event=worker_spawned worker={} pid={} threads={} address={}", w->id, w->pid,
                 w->threads, w->address.to_string());
    read_output(w, false);
    read_output(w, true);
    probe_readiness(w);
}

void WorkerPool::probe_readiness(std::shared_ptr<Worker> w) {
    // Try to connect (and GET health_path when set) every 50 ms until ready or startup_timeout.
    spawn_guarded(
        ioc_,
        [this, w]() -> asio::awaitable<void> {
            using Protocol = asio::generic::stream_protocol;
            const auto deadline = w->spawned_at + options_.workers.startup_timeout;
            const std::string health_path = options_.workers.health_path;
            asio::steady_timer pause(ioc_);
            while (w->phase == Lifecycle::starting) {
                beast::error_code ec;
                beast::basic_stream<Protocol> stream(ioc_);
                const Protocol::endpoint ep =
                    w->address.tcp_port
                        ? Protocol::endpoint(asio::ip::tcp::endpoint(
                              asio::ip::address_v4::loopback(), *w->address.tcp_port))
                        : Protocol::endpoint(
                              asio::local::stream_protocol::endpoint(w->address.unix_path));
                stream.expires_after(std::chrono::seconds(2));
                co_await stream.async_connect(ep, asio::redirect_error(use_awaitable, ec));
                bool ready = !ec;
                if (ready && !health_path.empty()) {
                    http::request<http::empty_body> req{http::verb::get, health_path, 11};
                    req.set(http::field::host, "localhost");
                    req.set(http::field::user_agent, "tunerd-readiness");
                    req.keep_alive(false);
                    co_await http::async_write(stream, req,
                                               asio::redirect_error(use_awaitable, ec));
                    beast::flat_buffer buf;
                    http::response<http::string_body> res;
                    if (!ec)
                        co_await http::async_read(stream, buf, res,
                                                  asio::redirect_error(use_awaitable, ec));
                    ready = !ec && res.result_int() >= 200 && res.result_int() < 300;
                }
                stream.close();
                if (w->phase != Lifecycle::starting) co_return;
                if (ready) {
                    on_ready(w);
                    co_return;
                }
                if (Clock::now() >= deadline) {
                    std::lock_guard lock(mutex_);
                    w->phase = Lifecycle::start_failed;
                    w->reason = "not ready within " +
                                format_duration(options_.workers.startup_timeout) +
                                (health_path.empty() ? " (socket never accepted)"
                                                     : " (" + health_path + " never answered 2xx)");
                    spdlog::error("event=worker_start_timeout worker={} pid={} error=\"{}\"", w->id,
                                  w->pid, w->reason);
                    signal_worker(*w, SIGKILL);
                    co_return;
                }
                pause.expires_after(std::chrono::milliseconds(50));
                co_await pause.async_wait(asio::redirect_error(use_awaitable, ec));
            }
        },
        "worker_readiness");
}

void WorkerPool::on_ready(const std::shared_ptr<Worker>& w) {
    {
        std::lock_guard lock(mutex_);
        if (stopping_ || w->phase != Lifecycle::starting) return;
        w->phase = Lifecycle::ready;
        w->ready_at = Clock::now();
        ever_ready_ = true;
        auto backend = std::make_shared<Backend>();
        backend->id = w->id;
        backend->capacity = w->threads;
        backend->address = w->address;
        backend->recycle_after = recycle_limit();
        w->backend = backend;
        spdlog::info("event=worker_ready worker={} pid={} startup_ms={:.0f}", w->id, w->pid,
                     seconds_since(w->spawned_at, w->ready_at) * 1000);
        dispatcher_.add(backend);
    }
    reconcile();
}

void WorkerPool::begin_drain(const std::shared_ptr<Worker>& w, const char* why) {
    bool drained = false;
    {
        std::lock_guard lock(mutex_);
        if (!takes_requests(w->phase) && w->phase != Lifecycle::starting) return;
        w->phase = Lifecycle::draining;
        if (w->reason.empty()) w->reason = why;
        drained = dispatcher_.stop_accepting(w->id);
        spdlog::info("event=worker_draining worker={} pid={} reason=\"{}\"", w->id, w->pid,
                     w->reason);
        w->timer->expires_after(options_.workers.drain_timeout);
        w->timer->async_wait([this, w](const beast::error_code& ec) {
            if (ec || w->phase != Lifecycle::draining) return;
            spdlog::warn("event=drain_timeout worker={} pid={} drain_timeout={}", w->id, w->pid,
                         format_duration(options_.workers.drain_timeout));
            terminate(w);
        });
    }
    if (drained) terminate(w);
}

void WorkerPool::terminate(const std::shared_ptr<Worker>& w) {
    std::lock_guard lock(mutex_);
    if (w->phase == Lifecycle::stopping || w->phase == Lifecycle::exited) return;
    w->phase = Lifecycle::stopping;
    dispatcher_.remove(w->id);
    signal_worker(*w, SIGTERM);
    w->timer->expires_after(options_.workers.kill_timeout);
    w->timer->async_wait([w](const beast::error_code& ec) {
        if (ec || w->phase == Lifecycle::exited) return;
        spdlog::warn("event=worker_kill worker={} pid={} reason=\"no exit within kill_timeout\"",
                     w->id, w->pid);
        signal_worker(*w, SIGKILL);
    });
}

void WorkerPool::on_exit(pid_t pid, int status) {
    std::function<void()> done;
    {
        std::lock_guard lock(mutex_);
        if (on_preloader_exit_locked(pid, status)) {
            if (!stopping_) asio::post(ioc_, [this] { reconcile(); });
            return;
        }
        auto it = std::find_if(workers_.begin(), workers_.end(),
                               [&](const auto& kv) { return kv.second->pid == pid; });
        if (it == workers_.end()) return;
        auto w = it->second;
        const Lifecycle phase = std::exchange(w->phase, Lifecycle::exited);
        if (w->timer) w->timer->cancel();
        // Whatever is left in a worker's process group (a gunicorn master's orphaned child)
        // goes with it. The worker is not reaped yet (reap_exited_children calls us first), so
        // its pid and group id are still its own; after this, nothing signals it again (its
        // phase is exited).
        signal_process_group(w->pid, SIGKILL);
        const std::uint64_t served_count = dispatcher_.served_by(w->id);
        const bool served = served_count > 0;
        dispatcher_.remove(w->id);
        const auto now = Clock::now();
        const std::string how = describe_wait_status(status);
        if (exit_expected(phase)) {
            spdlog::info("event=worker_exited worker={} pid={} status=\"{}\"", w->id, w->pid, how);
        } else {
            const Duration backoff = note_crash_locked(
                now, w->slot, std::move(w->slot_history), served,
                "worker " + std::to_string(w->id) + " (pid " + std::to_string(w->pid) + ") " +
                    (phase == Lifecycle::start_failed ? w->reason + "; " + how : how) + " after " +
                    std::to_string(static_cast<long>(seconds_since(w->spawned_at, now))) + "s",
                {w->stderr_tail.begin(), w->stderr_tail.end()});
            spdlog::error(
                "event=worker_crashed worker={} pid={} slot={} status=\"{}\" uptime_s={:.1f} "
                "served={} restart_in_s={}",
                w->id, w->pid, w->slot, how, seconds_since(w->spawned_at, now), served_count,
                to_seconds(backoff));
            // Died before it was ready: a new generation that cannot serve halts the restart.
            check_restart_failure_locked(
                *w, phase != Lifecycle::starting && phase != Lifecycle::start_failed,
                health_.last_exit);
        }
        if (!w->address.unix_path.empty()) ::unlink(w->address.unix_path.c_str());
        if (w->address.tcp_port) impl_->ports_in_use.erase(*w->address.tcp_port);
        workers_.erase(it);
        rss_.erase(w->id);
        if (stopping_ && workers_.empty()) done = std::move(stop_done_);
    }
    if (done) {
        done();
        return;
    }
    reconcile();
}

// ---- the preloader (workers.preload) --------------------------------------------------------

void WorkerPool::ensure_preloader() {
    std::shared_ptr<Preloader> p;
    SpawnSpec spec;
    std::string script_error;
    {
        std::lock_guard lock(mutex_);
        if (!started_ || stopping_ || !options_.workers.uses_preload()) return;
        auto& slot = preloaders_[generation_];
        if (!slot) {
            slot = std::make_shared<Preloader>();
            slot->generation = generation_;
            slot->timer = std::make_unique<asio::steady_timer>(ioc_);
        }
        p = slot;
        if (p->phase != Preloader::Phase::exited || Clock::now() < p->not_before) return;
        const auto script = find_preloader_script(options_.self_exe);
        if (!script) {
            script_error = std::string(kPreloaderScript) + " is neither beside " +
                           options_.self_exe + " nor in ../share/tunerd/ (a broken install)";
        } else {
            spec.argv = preloader_argv(options_.workers, *script);
        }
        // The environment the app is imported with: each worker gets its own on top.
        spec.env = worker_env_;
        for (const auto& [k, v] : options_.workers.env) spec.env[k] = v;
        spec.env["WEB_CONCURRENCY"] = "1";
        spec.env["TUNER_PRELOAD_GENERATION"] = std::to_string(p->generation);
        spec.dir = options_.workers.dir;
    }
    auto started = script_error.empty()
                       ? start_preloader(spec)
                       : Result<StartedPreloader>(make_error("preloader", script_error));
    std::lock_guard lock(mutex_);
    const auto now = Clock::now();
    if (!started) {
        p->last_error = "cannot start: " + started.error().to_string();
        const CrashVerdict verdict = judge_crash(p->history, false, now);
        p->not_before = now + verdict.backoff;
        ++p->restarts;
        health_.last_exit =
            "preloader of generation " + std::to_string(p->generation) + " " + p->last_error;
        spdlog::error("event=preloader_start_failed generation={} error=\"{}\" retry_in_s={}",
                      p->generation, p->last_error, to_seconds(verdict.backoff));
        halt_restart_locked(health_.last_exit);
        p->timer->expires_after(verdict.backoff);
        p->timer->async_wait([this](const beast::error_code& ec) {
            if (!ec) reconcile();
        });
        return;
    }
    p->pid = started->process.pid;
    p->phase = Preloader::Phase::starting;
    p->started_at = now;
    p->control = std::make_unique<asio::posix::stream_descriptor>(ioc_, started->control_fd);
    // The last life's error and stderr stay on show (/health) until this one is ready.
    auto previous_output = std::move(p->output);
    p->output = std::make_shared<Worker>();
    if (previous_output) p->output->stderr_tail = previous_output->stderr_tail;
    p->output->pid = p->pid;
    p->output->preloader_generation = p->generation;
    p->output->out =
        std::make_unique<asio::posix::stream_descriptor>(ioc_, started->process.stdout_fd);
    p->output->err =
        std::make_unique<asio::posix::stream_descriptor>(ioc_, started->process.stderr_fd);
    spdlog::info("event=preloader_spawned generation={} pid={} app=\"{}\" server={}", p->generation,
                 p->pid, options_.workers.preload, options_.workers.server);
    read_output(p->output, false);
    read_output(p->output, true);
    // The import must be done within startup_timeout, as a worker's start.
    p->timer->expires_after(options_.workers.startup_timeout);
    p->timer->async_wait([this, p](const beast::error_code& ec) {
        std::lock_guard lock(mutex_);
        if (ec || p->phase != Preloader::Phase::starting) return;
        p->last_error = "the app was not imported within " +
                        format_duration(options_.workers.startup_timeout) +
                        " (workers.startup_timeout)";
        spdlog::error("event=preloader_start_timeout generation={} pid={}", p->generation, p->pid);
        signal_process_group(p->pid, SIGKILL);
    });
    watch_preloader_hello(p);
}

void WorkerPool::watch_preloader_hello(const std::shared_ptr<Preloader>& p) {
    p->control->async_wait(
        asio::posix::descriptor_base::wait_read, [this, p](const beast::error_code& ec) {
            if (ec) return;
            bool now_ready = false;
            {
                std::lock_guard lock(mutex_);
                if (p->phase != Preloader::Phase::starting || !p->control) return;
                auto message = receive_control_message(p->control->native_handle());
                if (message && !*message) {
                    watch_preloader_hello(p);
                    return;
                }
                // A closed socket or garbage: the preloader is failing; its exit says the rest.
                if (!message) {
                    if (p->last_error.empty()) p->last_error = message.error().what;
                    return;
                }
                auto hello = parse_preloader_hello(**message);
                if (!hello) {
                    p->last_error = hello.error().what;
                    signal_process_group(p->pid, SIGKILL);
                    return;
                }
                if (!hello->ready) {
                    p->last_error = hello->error;  // it exits with the traceback on stderr
                    spdlog::error("event=preloader_import_failed generation={} pid={} error=\"{}\"",
                                  p->generation, p->pid, p->last_error);
                    return;
                }
                p->phase = Preloader::Phase::ready;
                p->last_error.clear();
                p->timer->cancel();
                spdlog::info("event=preloader_ready generation={} pid={} import_ms={:.0f}",
                             p->generation, p->pid,
                             seconds_since(p->started_at, Clock::now()) * 1000);
                now_ready = true;
            }
            if (now_ready) reconcile();
        });
}

void WorkerPool::retire_idle_preloaders_locked() {
    for (auto& [generation, p] : preloaders_) {
        if (generation == generation_) continue;
        if (p->phase != Preloader::Phase::starting && p->phase != Preloader::Phase::ready) continue;
        const bool serving = std::any_of(workers_.begin(), workers_.end(), [&](const auto& kv) {
            return kv.second->generation == generation && kv.second->phase != Lifecycle::exited;
        });
        if (serving) continue;
        p->phase = Preloader::Phase::stopping;
        spdlog::info(
            "event=preloader_retired generation={} pid={} reason=\"no worker of its "
            "generation is left\"",
            generation, p->pid);
        signal_process_group(p->pid, SIGTERM);
    }
}

bool WorkerPool::on_preloader_exit_locked(pid_t pid, int status) {
    auto it = std::find_if(preloaders_.begin(), preloaders_.end(), [&](const auto& kv) {
        return kv.second->pid == pid && kv.second->phase != Preloader::Phase::exited;
    });
    if (it == preloaders_.end()) return false;
    auto p = it->second;
    const auto phase = std::exchange(p->phase, Preloader::Phase::exited);
    p->timer->cancel();
    if (p->control) {
        beast::error_code ignored;
        p->control->close(ignored);
        p->control.reset();
    }
    const std::string how = describe_wait_status(status);
    const auto now = Clock::now();
    if (phase == Preloader::Phase::stopping || stopping_ || p->generation != generation_) {
        spdlog::info("event=preloader_exited generation={} pid={} status=\"{}\"", p->generation,
                     pid, how);
        if (p->generation != generation_) preloaders_.erase(it);
        return true;
    }
    // It crashed, or could not import the app. Its workers are tunerd's children: they serve on.
    const bool was_ready = phase == Preloader::Phase::ready;
    p->last_error = p->last_error.empty() ? how : p->last_error + " (" + how + ")";
    const CrashVerdict verdict = judge_crash(p->history, was_ready, now);
    p->not_before = now + verdict.backoff;
    ++p->restarts;
    health_.last_exit = "preloader of generation " + std::to_string(p->generation) + " (pid " +
                        std::to_string(pid) + ") " + p->last_error;
    if (p->output)
        health_.last_stderr = {p->output->stderr_tail.begin(), p->output->stderr_tail.end()};
    spdlog::error(
        "event=preloader_crashed generation={} pid={} status=\"{}\" was_ready={} error=\"{}\" "
        "restart_in_s={} (its workers keep serving)",
        p->generation, pid, how, was_ready, p->last_error, to_seconds(verdict.backoff));
    if (!was_ready) halt_restart_locked(health_.last_exit);
    p->timer->expires_after(verdict.backoff);
    p->timer->async_wait([this](const beast::error_code& ec) {
        if (!ec) reconcile();
    });
    return true;
}

void WorkerPool::read_output(std::shared_ptr<Worker> w, bool is_stderr) {
    auto buffer = std::make_shared<std::array<char, 4096>>();
    auto& stream = is_stderr ? w->err : w->out;
    if (!stream) return;
    stream->async_read_some(asio::buffer(*buffer), [this, w, is_stderr, buffer](
                                                       const beast::error_code& ec, std::size_t n) {
        std::string& partial = is_stderr ? w->err_partial : w->out_partial;
        if (!ec) partial.append(buffer->data(), n);
        std::size_t start = 0;
        for (auto nl = partial.find('\n'); nl != std::string::npos;
             nl = partial.find('\n', start)) {
            log_line(*w, is_stderr, std::string_view(partial).substr(start, nl - start));
            start = nl + 1;
        }
        partial.erase(0, start);
        if (partial.size() > 16384) {  // a line without end: log it in pieces
            log_line(*w, is_stderr, partial);
            partial.clear();
        }
        if (ec) {
            if (!partial.empty()) log_line(*w, is_stderr, partial);
            partial.clear();
            auto& s = is_stderr ? w->err : w->out;
            if (s) {
                beast::error_code ignored;
                s->close(ignored);
            }
            return;
        }
        read_output(w, is_stderr);
    });
}

void WorkerPool::log_line(Worker& w, bool is_stderr, std::string_view line) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (is_stderr) {
        std::lock_guard lock(mutex_);
        w.stderr_tail.emplace_back(line.substr(0, 500));
        if (w.stderr_tail.size() > kStderrTail) w.stderr_tail.pop_front();
    }
    // Token bucket: a worker that floods its output cannot flood tunerd's log.
    const auto now = Clock::now();
    w.tokens = std::min(kLogBurst, w.tokens + seconds_since(w.tokens_at, now) * kLogLinesPerSecond);
    w.tokens_at = now;
    if (w.tokens < 1) {
        ++w.suppressed;
        return;
    }
    w.tokens -= 1;
    if (w.suppressed) {
        spdlog::warn("event=worker_output_suppressed worker={} lines={}", w.id, w.suppressed);
        w.suppressed = 0;
    }
    // The app's bytes reach an operator's terminal and log readers through tunerd's log: one
    // quoted field, escaped (log_text.hpp), so no output of the app can forge or break a line.
    const std::string text = log_quote(line);
    if (w.preloader_generation) {
        spdlog::info("preloader={} stream={} line={}", w.preloader_generation,
                     is_stderr ? "stderr" : "stdout", text);
        return;
    }
    spdlog::info("worker={} stream={} line={}", w.id, is_stderr ? "stderr" : "stdout", text);
}

void WorkerPool::stop(bool immediate, std::function<void()> done) {
    asio::post(ioc_, [this, immediate, done = std::move(done)]() mutable {
        std::vector<std::shared_ptr<Worker>> all;
        {
            std::lock_guard lock(mutex_);
            const bool already = stopping_;
            stopping_ = true;
            impl_->reconcile_timer.cancel();
            // The workers do not need their preloader to stop (they are tunerd's children).
            for (auto& [generation, p] : preloaders_) {
                if (p->phase == Preloader::Phase::exited) continue;
                p->timer->cancel();
                p->phase = Preloader::Phase::stopping;
                signal_process_group(p->pid, SIGTERM);
            }
            if (workers_.empty()) {
                if (!already || done) {
                    if (done) asio::post(ioc_, std::move(done));
                }
                return;
            }
            if (done) stop_done_ = std::move(done);
            for (auto& [id, w] : workers_) all.push_back(w);
        }
        for (auto& w : all) {
            bool starting = false;
            {
                std::lock_guard lock(mutex_);
                starting = w->phase == Lifecycle::starting;
            }
            if (immediate || starting) {
                terminate(w);
                if (immediate) {
                    // "At once": SIGKILL follows SIGTERM after at most 2 s.
                    std::lock_guard lock(mutex_);
                    w->timer->expires_after(
                        std::min<Duration>(options_.workers.kill_timeout, std::chrono::seconds(2)));
                    w->timer->async_wait([w](const beast::error_code& ec) {
                        if (!ec && w->phase != Lifecycle::exited) signal_worker(*w, SIGKILL);
                    });
                }
            } else {
                begin_drain(w, "tunerd stopping");
            }
        }
    });
}

PoolStatus WorkerPool::status() const {
    PoolStatus s;
    const auto load = dispatcher_.backend_load();
    std::lock_guard lock(mutex_);
    const auto now = Clock::now();
    s.state.target = target_;
    s.state.threads = threads_;
    for (const auto& [id, w] : workers_) {
        WorkerInfo info;
        info.id = w->id;
        info.pid = w->pid;
        info.port = w->address.tcp_port;
        info.state = public_state(w->phase);
        info.threads = w->threads;
        if (auto it = load.find(id); it != load.end()) {
            info.inflight = it->second.first;
            info.served = it->second.second;
        }
        info.age_s = seconds_since(w->spawned_at, now);
        info.restarts = w->slot_history.restarts;
        info.generation = w->generation;
        if (auto it = rss_.find(id); it != rss_.end()) info.rss_bytes = it->second;
        switch (info.state) {
            case WorkerState::ready:
                ++s.state.ready;
                break;
            case WorkerState::starting:
                ++s.state.starting;
                break;
            case WorkerState::draining:
            case WorkerState::stopping:
                ++s.state.draining;
                break;
        }
        s.state.workers.push_back(info);
    }
    s.health = health_;
    if (options_.workers.uses_preload() || !preloaders_.empty()) {
        PreloaderStatus ps;
        ps.generation = generation_;
        if (auto it = preloaders_.find(generation_); it != preloaders_.end()) {
            const auto& p = *it->second;
            ps.pid = p.phase == Preloader::Phase::exited ? -1 : p.pid;
            switch (p.phase) {
                case Preloader::Phase::starting:
                    ps.state = "starting";
                    break;
                case Preloader::Phase::ready:
                    ps.state = "ready";
                    break;
                case Preloader::Phase::stopping:
                    ps.state = "stopping";
                    break;
                case Preloader::Phase::exited:
                    ps.state = "failed";
                    break;
            }
            ps.restarts = p.restarts;
            ps.workers_forked = p.forked;
            ps.last_error = p.last_error;
            if (p.output)
                ps.last_stderr = {p.output->stderr_tail.begin(), p.output->stderr_tail.end()};
            if (p.phase == Preloader::Phase::exited) {
                ps.restart_in_s = std::max(0.0, seconds_since(now, p.not_before));
                s.health.problems.push_back("preloader of generation " +
                                            std::to_string(p.generation) +
                                            " is down (no new worker can start): " + p.last_error);
            }
        } else {
            ps.state = "starting";
        }
        for (const auto& [generation, p] : preloaders_) {
            if (generation != generation_ && p->phase != Preloader::Phase::exited)
                ++ps.older_running;
        }
        s.preloader = std::move(ps);
    }
    s.ever_ready = ever_ready_;
    s.restart = restart_;
    s.restart.generation = generation_;
    if (restart_.state == RestartStatus::State::rolling)
        s.restart.elapsed_s = seconds_since(restart_began_, now);
    if (restart_.state == RestartStatus::State::halted) {
        s.health.problems.push_back("restart to generation " + std::to_string(generation_) +
                                    " halted: " + restart_.halted_reason +
                                    "; the older workers keep serving");
    }
    if (s.state.ready < target_ && !stopping_) {
        if (!below_target_since_) below_target_since_ = now;
        s.below_target_for_s = seconds_since(*below_target_since_, now);
    } else {
        below_target_since_.reset();
    }
    for (const auto& v : vacant_slots_) {
        if (v.not_before <= now || counted_locked() >= target_) continue;
        const double in_s = seconds_since(now, v.not_before);
        if (!s.health.next_restart_in_s || in_s < *s.health.next_restart_in_s)
            s.health.next_restart_in_s = in_s;
    }
    // A crash loop: three crashes in a row, each within a minute of the last.
    if (health_.crash_streak >= 3 && now - last_crash_ < kCrashStreakReset) {
        s.health.degraded = true;
        s.health.problems.push_back("crash loop: " + std::to_string(health_.crash_streak) +
                                    " worker crashes in a row; last: " + health_.last_exit);
    }
    return s;
}

std::vector<std::pair<unsigned, pid_t>> WorkerPool::worker_pids() const {
    std::lock_guard lock(mutex_);
    std::vector<std::pair<unsigned, pid_t>> out;
    for (const auto& [id, w] : workers_) {
        if (w->phase != Lifecycle::exited) out.emplace_back(id, w->pid);
    }
    return out;
}

}  // namespace tuner::server
