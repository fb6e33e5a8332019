// The tunerd daemon (see tunerd.hpp).
#include "tuner/daemon/tunerd.hpp"

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "policies/io_threads.hpp"
#include "policies/registry.hpp"
#include "server/admin.hpp"
#include "server/dispatcher.hpp"
#include "server/front.hpp"
#include "server/guarded.hpp"
#include "server/pool.hpp"
#include "server/process.hpp"
#include "tuner/admin/metrics.hpp"
#include "tuner/admin/routes.hpp"
#include "tuner/build_info.hpp"
#include "tuner/config/load.hpp"
#include "tuner/control/actuators.hpp"
#include "tuner/control/apply.hpp"
#include "tuner/control/control_loop.hpp"
#include "tuner/daemon/logging.hpp"
#include "tuner/daemon/socket_dir.hpp"
#include "tuner/decision_log/log.hpp"

namespace tuner {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

void raise_open_file_limit(std::uint64_t max_connections);

Result<tcp::endpoint> resolve_listen(asio::io_context& ioc, const std::string& key,
                                     const std::string& listen) {
    auto parsed = config::parse_listen(listen);
    if (!parsed) return parsed.error().at(key);
    const auto& [host, port] = *parsed;
    boost::system::error_code ec;
    const auto address = asio::ip::make_address(host, ec);
    if (!ec) return tcp::endpoint(address, port);
    tcp::resolver resolver(ioc);
    const auto results = resolver.resolve(host, std::to_string(port), ec);
    if (ec || results.empty())
        return make_error(key, "cannot resolve \"" + host + "\": " + ec.message());
    return results.begin()->endpoint();
}

using systemd::endpoint_text;

// Written atomically (temporary file + rename), so a reader never sees half of it.
Status write_file_atomically(const std::string& path, const std::string& text) {
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        if (!out) return system_error(tmp, "");
        out << text;
        if (!out.flush()) return system_error(tmp, "");
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) return system_error(path, "");
    return {};
}

Result<std::string> read_token(const std::string& path) {
    std::ifstream in(path);
    if (!in) return system_error("admin.token_file", "cannot read \"" + path + "\"");
    std::string token;
    std::getline(in, token);
    while (!token.empty() && (token.back() == '\r' || token.back() == ' ' || token.back() == '\t'))
        token.pop_back();
    if (token.empty()) return make_error("admin.token_file", "\"" + path + "\" holds no token");
    return token;
}

// Decisions for the bounds a reload changed, so the log says why the pool moves next.
std::vector<Decision> bound_changes(const Config& before, const Config& after) {
    std::vector<Decision> out;
    const std::string inputs = nlohmann::json{{"source", after.source}}.dump();
    auto add = [&](const Knob& knob, KnobValue old_value, KnobValue new_value) {
        if (old_value == new_value) return;
        out.push_back(make_decision(
            knob, WallClock::now(), std::move(old_value), std::move(new_value),
            {policies::rule::config_reload,
             std::string(knob.name) + " changed by a config reload (" + after.source + ")",
             inputs}));
    };
    auto count = [](std::int64_t n) { return KnobValue{Count{n}}; };
    add(knob::workers_min, count(before.workers.min), count(after.workers.min));
    add(knob::workers_max, count(before.workers.max), count(after.workers.max));
    add(knob::workers_threads_max, count(before.workers.effective_threads_max()),
        count(after.workers.effective_threads_max()));
    if (before.workers.mode == PoolMode::fixed || after.workers.mode == PoolMode::fixed) {
        add(knob::workers_fixed_count, count(before.workers.count), count(after.workers.count));
    }
    add(knob::workers_mode, Text{to_string(before.workers.mode)},
        Text{to_string(after.workers.mode)});
    return out;
}

class Daemon {
public:
    Daemon(Config config, DaemonOptions options)
        : config_(std::move(config)), options_(std::move(options)) {}

    int run();

private:
    // The stages of run(), in order; a stage that fails returns the exit code.
    std::optional<int> prepare_directories();
    void build_parts();
    std::string spool_directory() const;
    std::optional<int> open_listeners();
    void start_serving();
    int finish();

    void handle_signals();
    // Stops the pool (immediate: SIGTERM at once, SIGKILL after at most 2 s; else drain first),
    // then the admin listener, then the event loop: run() returns.
    void stop_then_exit(bool immediate);
    void begin_shutdown(bool immediate);
    void finish_shutdown_when_idle(Clock::time_point deadline);
    // Rereads the config file (SIGHUP, and before a rolling restart), with systemd's reload
    // notifications around it. `errors` set: the file was rejected and the running config stays.
    struct ReloadOutcome {
        bool skipped = false;  // started without a config file: nothing to re-read
        std::vector<std::string> errors;
    };
    ReloadOutcome reload();
    ReloadOutcome reload_config();
    // A rolling restart of the workers (tunerctl restart, POST /workers/restart, SIGUSR2): the
    // config file is reread first, so a deploy's new command, env or dir is what the new workers
    // run. An HTTP status and the answer's body.
    std::pair<int, nlohmann::json> restart_workers(const std::string& trigger);
    // Rereads admin.token_file (on every SIGHUP, so a leaked token can be replaced without a
    // restart); an unreadable or empty file keeps the token in use.
    void reload_admin_token(const std::string& token_file);
    void watch_startup();
    void check_startup();
    void start_watchdog();
    void watchdog_tick();
    // sd_notify: a no-op without NOTIFY_SOCKET.
    void notify(const std::string& state);
    // "STATUS=serving: 3 of 3 workers ready" to the manager every 2 s when it changed.
    void status_tick();
    void schedule_status();
    std::string pool_status_text() const;
    // The listening sockets systemd passed, checked and matched to the two listeners; the exit
    // code when they cannot be used.
    std::optional<int> take_passed_sockets(const tcp::endpoint& public_configured,
                                           const tcp::endpoint& admin_configured,
                                           systemd::SocketAssignment& out);

    Config config_;
    DaemonOptions options_;
    std::string state_dir_;
    SocketDirectory socket_dir_;
    std::string listen_file_;
    asio::io_context ioc_{1};
    std::unique_ptr<DecisionLog> log_;
    std::unique_ptr<server::Dispatcher> dispatcher_;
    std::unique_ptr<server::WorkerPool> pool_;
    std::unique_ptr<Metrics> metrics_;
    std::unique_ptr<Applier> applier_;
    std::unique_ptr<ControlLoop> control_;
    std::unique_ptr<server::Front> front_;
    std::unique_ptr<server::AdminServer> admin_;
    std::unique_ptr<AdminContext> admin_context_;
    std::unique_ptr<asio::signal_set> signals_;
    std::unique_ptr<asio::steady_timer> shutdown_timer_, hard_stop_timer_, startup_timer_,
        watchdog_timer_, status_timer_;
    systemd::Notifier notifier_;
    std::string last_status_;
    bool ready_sent_ = false;
    bool watchdog_withheld_ = false;
    bool stopping_ = false;
    bool immediate_ = false;
    bool admin_token_set_ = false;
    int exit_code_ = kExitOk;
    Clock::time_point started_at_ = Clock::now();
    Clock::time_point startup_deadline_{};
    Duration watchdog_period_{0};
};

int Daemon::run() {
    if (auto st = notifier_.open(options_.systemd.notify_socket); !st) {
        spdlog::warn("event=notify_socket_unusable error={} (no readiness or watchdog messages)",
                     log_quote(st.error().to_string()));
    }
    if (options_.systemd.watchdog_error) {
        spdlog::warn("event=watchdog_ignored error={}",
                     log_quote(options_.systemd.watchdog_error->to_string()));
    }
    if (auto exit = prepare_directories()) return *exit;
    // Threads other than this one (control, log writer, extra I/O) must not take the process's
    // signals: they start with them blocked and inherit the mask; then this thread unblocks
    // them for its signal_set.
    ::signal(SIGPIPE, SIG_IGN);
    sigset_t blocked, previous;
    sigemptyset(&blocked);
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD}) sigaddset(&blocked, sig);
    ::pthread_sigmask(SIG_BLOCK, &blocked, &previous);
    raise_open_file_limit(config_.server.max_connections);
    build_parts();
    if (auto exit = open_listeners()) return *exit;
    start_serving();
    ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);

    signals_ = std::make_unique<asio::signal_set>(ioc_, SIGTERM, SIGINT, SIGHUP);
    signals_->add(SIGUSR1);
    signals_->add(SIGUSR2);
    handle_signals();
    watch_startup();
    start_watchdog();
    server::run_guarded(ioc_, "main");
    return finish();
}

std::optional<int> Daemon::prepare_directories() {
    state_dir_ = config::resolve_state_dir(config_.state);
    std::error_code fs_ec;
    std::filesystem::create_directories(state_dir_, fs_ec);
    if (fs_ec || !std::filesystem::is_directory(state_dir_)) {
        spdlog::critical("event=state_dir_failed dir={} error={}", log_quote(state_dir_),
                         log_quote(fs_ec ? fs_ec.message() : "not a directory"));
        return kExitCantCreate;
    }
    config_.state.dir = state_dir_;
    auto socket_dir = prepare_socket_directory(state_dir_);
    if (!socket_dir) {
        spdlog::critical("event=socket_dir_failed dir={} error={}",
                         log_quote(socket_dir.error().where), log_quote(socket_dir.error().what));
        return kExitCantCreate;
    }
    socket_dir_ = *socket_dir;
    listen_file_ = state_dir_ + "/listen.json";
    std::filesystem::remove(listen_file_, fs_ec);
    return std::nullopt;
}

// Request bodies larger than server.body_buffer_size wait here (unnamed files, 0600) for a
// worker; the system's temporary directory when the state directory cannot hold them.
std::string Daemon::spool_directory() const {
    const std::string dir = state_dir_ + "/spool";
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (!ec && ::chmod(dir.c_str(), 0700) == 0) return dir;
    spdlog::warn(
        "event=spool_dir_failed dir={} error={} (large request bodies are held in the "
        "system's temporary directory)",
        log_quote(dir), log_quote(ec ? ec.message() : std::strerror(errno)));
    return {};
}

// Client connections need descriptors: the soft open-file limit is raised to the hard one (the
// workers get the old one back), with a warning when max_connections cannot fit.
void raise_open_file_limit(std::uint64_t max_connections) {
    struct rlimit limit;
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
    server::set_worker_open_file_limit(limit.rlim_cur);
    if (limit.rlim_cur < limit.rlim_max) {
        const rlim_t before = limit.rlim_cur;
        limit.rlim_cur = limit.rlim_max;
        if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) limit.rlim_cur = before;
    }
    // A client connection, its worker connection, and room for workers, logs and the database.
    const std::uint64_t needed = 2 * max_connections + 256;
    if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < needed) {
        spdlog::warn(
            "event=open_file_limit limit={} needed={} (server.max_connections = {} needs "
            "about 2 descriptors each; raise LimitNOFILE or lower max_connections: "
            "accepts beyond the limit back off)",
            static_cast<std::uint64_t>(limit.rlim_cur), needed, max_connections);
    }
}

void Daemon::build_parts() {
    spdlog::info("event=starting version={} revision={} config={} state_dir={} pid={} dry_run={}",
                 build::version, build::revision(), log_quote(config_.source),
                 log_quote(state_dir_), ::getpid(), config_.policy.dry_run);
    DecisionLog::Options log_options;
    log_options.path = state_dir_ + "/tunerd.db";
    log_options.retention = config_.state.retention;
    log_ = std::make_unique<DecisionLog>(log_options);
    log_->start_run(build::version, config::config_hash(config_), config::format_config(config_));

    dispatcher_ =
        std::make_unique<server::Dispatcher>(config_.server.max_queue, config_.policy.window);
    pool_ = std::make_unique<server::WorkerPool>(
        ioc_, *dispatcher_,
        server::PoolOptions{config_.workers, config_.demo, options_.self_exe, socket_dir_.path});
    metrics_ = std::make_unique<Metrics>();
    applier_ = std::make_unique<Applier>(
        *log_, config_.policy.dry_run, [this](const Decision& d) { metrics_->count_decision(d); });
    register_pool_actuators(*applier_, *pool_);
    control_ = std::make_unique<ControlLoop>(config_, *pool_, *dispatcher_, *applier_, *log_);
    if (options_.test_stall_control.count() > 0) {
        spdlog::warn(
            "event=test_hooks stall_control_ms={} (TUNERD_TEST_HOOKS=1: a test build "
            "switch, never set in production)",
            options_.test_stall_control.count());
        control_->set_test_stall(options_.test_stall_control);
    }
    server::FrontHooks hooks;
    hooks.upstream_failed = [this](unsigned id, const std::string& error) {
        pool_->upstream_failed(id, error);
    };
    hooks.worker_stuck = [this](unsigned id, const std::string& why) {
        pool_->worker_stuck(id, why);
    };
    front_ = std::make_unique<server::Front>(ioc_, config_.server, *dispatcher_, hooks,
                                             spool_directory());
    // compression.level: the policy reads the front's compression, its actuator sets the level.
    control_->set_compression_source([this] {
        const auto c = front_->connection_stats().compression;
        return policies::CompressionState{control_->config().server.compression, c.levels.gzip,
                                          c.cpu_seconds()};
    });
    applier_->set_actuator(knob::compression_level, [this](const Decision& d) -> Status {
        const auto level = new_count(d);
        if (!level || *level < 1 || *level > 9)
            return make_error(d.knob, "needs a level 1-9, got " + to_string(d.new_value));
        front_->set_compression_level(*level);
        return {};
    });
    // cache.capacity: each snapshot reads the cache as memory; the policy's decision sets it.
    control_->set_cache_source([this] {
        const auto c = front_->cache_stats();
        return CacheMemory{c.enabled, control_->config().server.cache.size_bytes, c.capacity,
                           c.bytes};
    });
    register_cache_actuator(*applier_,
                            [this](std::uint64_t bytes) { front_->set_cache_capacity(bytes); });
    admin_ = std::make_unique<server::AdminServer>(ioc_);
}

std::optional<int> Daemon::open_listeners() {
    auto public_ep = resolve_listen(ioc_, "server.listen", config_.server.listen);
    auto admin_ep = resolve_listen(ioc_, "admin.listen", config_.admin.listen);
    for (auto* r : {&public_ep, &admin_ep}) {
        if (!*r) {
            spdlog::critical("event=bad_listen_address error={}",
                             log_quote(r->error().to_string()));
            return kExitConfig;
        }
    }
    if (!config_.admin.token_file.empty()) {
        auto token = read_token(config_.admin.token_file);
        if (!token) {
            spdlog::critical("event=bad_config error={}", log_quote(token.error().to_string()));
            return kExitConfig;
        }
        admin_->set_token(*token);
        admin_token_set_ = true;
    }
    systemd::SocketAssignment passed;
    if (auto exit = take_passed_sockets(*public_ep, *admin_ep, passed)) return *exit;
    auto bound_public = passed.public_listener ? front_->adopt(passed.public_listener->endpoint,
                                                               passed.public_listener->fd)
                                               : front_->listen(*public_ep);
    if (!bound_public) {
        spdlog::critical("event=listen_failed listener=public address={} error={}",
                         config_.server.listen, log_quote(bound_public.error().what));
        return kExitOsErr;
    }
    auto bound_admin = passed.admin_listener ? admin_->adopt(passed.admin_listener->endpoint,
                                                             passed.admin_listener->fd)
                                             : admin_->listen(*admin_ep);
    if (!bound_admin) {
        spdlog::critical("event=listen_failed listener=admin address={} error={}",
                         config_.admin.listen, log_quote(bound_admin.error().what));
        return kExitOsErr;
    }
    // The name in admin.listen passed as loopback ("localhost"); what was bound decides.
    if (config_.admin.token_file.empty() && !bound_admin->address().is_loopback()) {
        spdlog::critical("event=bad_config error={}",
                         log_quote("admin.listen: \"" + config_.admin.listen + "\" was bound to " +
                                   endpoint_text(*bound_admin) +
                                   ", which is not a loopback address: set admin.token_file"));
        return kExitConfig;
    }
    if (!config_.admin.socket.empty()) {
        if (auto st = admin_->listen_unix(config_.admin.socket); !st) {
            spdlog::critical("event=listen_failed listener=admin_socket error={}",
                             log_quote(st.error().to_string()));
            return kExitOsErr;
        }
    }
    const nlohmann::json listen = {{"public", endpoint_text(*bound_public)},
                                   {"admin", endpoint_text(*bound_admin)},
                                   {"pid", ::getpid()},
                                   {"version", build::version}};
    if (auto st = write_file_atomically(listen_file_, listen.dump(2) + "\n"); !st) {
        spdlog::critical("event=state_dir_failed error={}", log_quote(st.error().to_string()));
        return kExitCantCreate;
    }
    spdlog::info("event=listening public={} admin={} listen_file={} passed_by_systemd={}",
                 endpoint_text(*bound_public), endpoint_text(*bound_admin), log_quote(listen_file_),
                 std::string(passed.public_listener ? "public" : "") +
                     (passed.public_listener && passed.admin_listener ? "," : "") +
                     (passed.admin_listener ? "admin" : (passed.public_listener ? "" : "none")));
    return std::nullopt;
}

std::optional<int> Daemon::take_passed_sockets(const tcp::endpoint& public_configured,
                                               const tcp::endpoint& admin_configured,
                                               systemd::SocketAssignment& out) {
    if (options_.systemd.listen_error) {
        spdlog::critical("event=listen_fds_invalid error={}",
                         log_quote(options_.systemd.listen_error->to_string()));
        return kExitOsErr;
    }
    if (options_.systemd.listen_fds.empty()) return std::nullopt;
    std::vector<systemd::ListeningSocket> sockets;
    for (const auto& passed : options_.systemd.listen_fds) {
        auto socket = systemd::inspect_socket(passed);
        if (!socket) {
            spdlog::critical("event=listen_fds_invalid error={}",
                             log_quote(socket.error().to_string()));
            return kExitOsErr;
        }
        sockets.push_back(*socket);
    }
    auto assigned = systemd::assign_sockets(sockets, public_configured, admin_configured);
    if (!assigned) {
        spdlog::critical("event=bad_config error={}", log_quote(assigned.error().to_string()));
        return kExitConfig;
    }
    for (const auto& s : sockets) {
        spdlog::info("event=socket_passed fd={} name={} address={}", s.fd, log_quote(s.name),
                     endpoint_text(s.endpoint));
    }
    out = *assigned;
    return std::nullopt;
}

void Daemon::start_serving() {
    admin_context_ = std::make_unique<AdminContext>(
        AdminContext{*pool_, *dispatcher_, *control_, *applier_, *log_, *metrics_, started_at_,
                     [this] { return stopping_; }, [this] { return front_->connection_stats(); },
                     [this](const std::string& trigger) { return restart_workers(trigger); },
                     [this] { return front_->cache_stats(); }, [this] { front_->clear_cache(); }});
    register_admin_routes(*admin_, *admin_context_);
    // The pool's starting shape, decided and recorded like every later change.
    const auto [workers, threads] =
        control_->initial_shape([this](unsigned n, unsigned t) { pool_->start(n, t); });
    spdlog::info("event=pool_starting workers={} threads={} command={}", workers, threads,
                 log_quote(config_.workers.command.empty() ? "" : config_.workers.command.front()));
    if (options_.systemd.watchdog) {
        // The control thread shows progress at least four times per ping period (see
        // watchdog_tick).
        control_->set_heartbeat_every(std::max(
            Duration(1), std::chrono::duration_cast<Duration>(*options_.systemd.watchdog / 8)));
    }
    control_->start();
    notify("STATUS=starting " + std::to_string(workers) + " workers");
    const unsigned cores = control_->view().snapshot.cpu.effective_cores;
    const unsigned io_threads = policies::io_threads_for(config_.server.io_threads, cores);
    spdlog::info("event=io_threads threads={} configured={} cores={}", io_threads,
                 config_.server.io_threads == 0 ? std::string("auto")
                                                : std::to_string(config_.server.io_threads),
                 cores);
    front_->start(io_threads);
    admin_->start();
}

int Daemon::finish() {
    front_->stop_threads();
    front_->flush_access_log(std::chrono::seconds(2));
    control_->stop();
    notify("STOPPING=1\nSTATUS=stopped");
    std::error_code fs_ec;
    std::filesystem::remove(listen_file_, fs_ec);
    if (socket_dir_.temporary) std::filesystem::remove_all(socket_dir_.path, fs_ec);
    log_->flush(std::chrono::seconds(2));
    const auto stats = log_->stats();
    spdlog::info("event=stopped exit_code={} decisions_written={} decision_log_errors={}",
                 exit_code_, stats.written_total, stats.errors_total);
    return exit_code_;
}

void Daemon::stop_then_exit(bool immediate) {
    pool_->stop(immediate, [this] {
        admin_->stop();
        ioc_.stop();
    });
}

void Daemon::handle_signals() {
    signals_->async_wait([this](const boost::system::error_code& ec, int sig) {
        if (ec) return;
        if (sig == SIGHUP) {
            reload();
        } else if (sig == SIGUSR2) {
            if (!stopping_) restart_workers("SIGUSR2");
        } else if (sig == SIGUSR1) {
            // logrotate's postrotate: the access log opens its path again.
            spdlog::info("event=signal signal=SIGUSR1 action=\"reopen the access log\"");
            front_->reopen_access_log();
        } else {
            spdlog::info("event=signal signal={} action={}", sig == SIGTERM ? "SIGTERM" : "SIGINT",
                         stopping_ ? "stop now" : "drain and stop");
            begin_shutdown(stopping_);
        }
        handle_signals();
    });
}

void Daemon::begin_shutdown(bool immediate) {
    if (immediate) {
        if (immediate_) return;
        immediate_ = true;
        front_->abort_remaining();
        stop_then_exit(true);
        return;
    }
    if (stopping_) return;
    stopping_ = true;
    notify("STOPPING=1\nSTATUS=stopping: serving " +
           std::to_string(front_->requests_in_progress()) +
           " requests in progress, then draining the workers");
    control_->stop();  // no resizes while we drain
    front_->begin_shutdown();
    const auto deadline = Clock::now() + config_.server.shutdown_timeout;
    // Whatever happens, tunerd is gone after the drain, the workers' drain and kill timeouts.
    hard_stop_timer_ = std::make_unique<asio::steady_timer>(ioc_);
    hard_stop_timer_->expires_at(deadline + config_.workers.drain_timeout +
                                 config_.workers.kill_timeout + std::chrono::seconds(5));
    hard_stop_timer_->async_wait([this](const boost::system::error_code& ec) {
        if (ec) return;
        spdlog::error("event=shutdown_overdue action=exit");
        ioc_.stop();
    });
    finish_shutdown_when_idle(deadline);
}

void Daemon::finish_shutdown_when_idle(Clock::time_point deadline) {
    if (!shutdown_timer_) shutdown_timer_ = std::make_unique<asio::steady_timer>(ioc_);
    const bool idle = front_->requests_in_progress() == 0;
    const bool overdue = Clock::now() >= deadline;
    if (idle || overdue) {
        if (overdue && !idle) {
            spdlog::warn("event=shutdown_timeout requests_cut={} shutdown_timeout={}",
                         front_->requests_in_progress(),
                         format_duration(config_.server.shutdown_timeout));
            front_->abort_remaining();
        }
        spdlog::info("event=stopping_workers");
        stop_then_exit(false);
        return;
    }
    shutdown_timer_->expires_after(std::chrono::milliseconds(20));
    shutdown_timer_->async_wait([this, deadline](const boost::system::error_code& ec) {
        if (!ec) finish_shutdown_when_idle(deadline);
    });
}

Daemon::ReloadOutcome Daemon::reload() {
    // systemd's reload protocol (sd_notify(3)): RELOADING=1 with the time, READY=1 when done,
    // whether the file was taken or rejected (the running config then stays).
    notify("RELOADING=1\n" + systemd::monotonic_usec_field() + "\nSTATUS=reloading " +
           (options_.config_path.empty() ? std::string("(no config file)") : options_.config_path));
    ReloadOutcome outcome = reload_config();
    // Before the first worker was ready, READY=1 is still to come (check_startup sends it).
    if (!stopping_ && ready_sent_) {
        last_status_ = pool_status_text();
        notify("READY=1\nSTATUS=" + last_status_);
    }
    return outcome;
}

Daemon::ReloadOutcome Daemon::reload_config() {
    ReloadOutcome outcome;
    if (options_.config_path.empty()) {
        spdlog::info(
            "event=reload_skipped reason=\"started without a config file: nothing to re-read\"");
        outcome.skipped = true;
        return outcome;
    }
    auto loaded = config::load_config_file(options_.config_path);
    if (!loaded.ok()) {
        for (const auto& issue : loaded.errors)
            spdlog::error("event=reload_rejected error={}", log_quote(issue.to_string()));
        spdlog::error(
            "event=reload_rejected file={} errors={} action=\"keeping the running config\"",
            log_quote(options_.config_path), loaded.errors.size());
        // The running config's token file is still reread: replacing a leaked token must not
        // wait for an unrelated mistake in the file to be fixed.
        reload_admin_token(control_->config().admin.token_file);
        for (const auto& issue : loaded.errors) outcome.errors.push_back(issue.to_string());
        return outcome;
    }
    Config next = loaded.config;
    const Config before = control_->config();
    if (options_.log_level_from_command_line) next.log.level = before.log.level;
    if (options_.dry_run_from_command_line)
        next.policy.dry_run = true;  // --dry-run outlives reloads
    // What the running daemon is built around (its sockets, its I/O threads, where its files
    // are) changes only on restart: keep it, and say which keys were left alone.
    // The running value is resolved ("" became $STATE_DIRECTORY or the default at start): resolve
    // the file's the same way, or an unchanged "" would count as a change.
    next.state.dir = config::resolve_state_dir(next.state);
    const std::vector<std::string> restart_only = config::keep_restart_only(before, next);
    if (!restart_only.empty()) {
        std::string keys;
        for (const auto& key : restart_only) keys += (keys.empty() ? "" : ",") + key;
        spdlog::warn(
            "event=reload_partial keys={} reason=\"these change only on restart; the "
            "running values stay\"",
            keys);
    }
    set_log_level(next.log.level);
    reload_admin_token(next.admin.token_file);
    front_->update_config(next.server);
    dispatcher_->set_window(next.policy.window);
    pool_->update_options(next.workers, next.demo);
    applier_->set_dry_run(next.policy.dry_run);
    const auto plan_id = applier_->next_plan_id();
    if (auto pinned = applier_->manual_target()) {
        Decision d = make_decision(
            knob::workers_manual_target, WallClock::now(), Count{*pinned}, {},
            {policies::rule::config_reload, "a config reload hands control back: manual target " +
                                                std::to_string(*pinned) + " released"});
        d.plan_id = plan_id;
        applier_->release_workers(d);
    }
    // The reload itself carried these out: recorded, so the log says why the pool moves next.
    for (auto& d : bound_changes(before, next)) {
        d.plan_id = plan_id;
        d.outcome = Outcome::applied;
        applier_->record_done(d);
    }
    log_->start_run(build::version, config::config_hash(next), config::format_config(next));
    control_->reload(next);
    spdlog::info("event=config_reloaded file={} hash={}", log_quote(options_.config_path),
                 config::config_hash(next));
    return outcome;
}

std::pair<int, nlohmann::json> Daemon::restart_workers(const std::string& trigger) {
    if (stopping_) return {503, {{"error", "tunerd is stopping"}}};
    const ReloadOutcome reloaded = reload();
    if (!reloaded.errors.empty()) {
        spdlog::error(
            "event=restart_refused trigger=\"{}\" reason=\"the config file has errors; "
            "no worker was replaced\"",
            trigger);
        return {409,
                {{"error", "the config file has errors: nothing was restarted"},
                 {"config", options_.config_path},
                 {"config_errors", reloaded.errors}}};
    }
    const unsigned generation = pool_->restart(trigger);
    const auto status = pool_->status();
    return {202,
            {{"generation", generation},
             {"workers", status.state.ready + status.state.starting},
             {"config", reloaded.skipped ? "no config file: the running config"
                                         : "reloaded from " + options_.config_path},
             {"status", "/workers"}}};
}

void Daemon::reload_admin_token(const std::string& token_file) {
    if (token_file.empty()) {
        if (admin_token_set_) {
            admin_->set_token(std::nullopt);
            admin_token_set_ = false;
            spdlog::warn("event=admin_token_removed reason=\"admin.token_file is no longer set\"");
        }
        return;
    }
    auto token = read_token(token_file);
    if (!token) {
        spdlog::error("event=admin_token_reload_failed file={} error={} action={}",
                      log_quote(token_file), log_quote(token.error().to_string()),
                      log_quote(admin_token_set_ ? "keeping the previous token"
                                                 : "still no token: admin.token_file unreadable"));
        return;
    }
    admin_->set_token(*token);
    admin_token_set_ = true;
    spdlog::info("event=admin_token_reloaded file={}", log_quote(token_file));
}

void Daemon::watch_startup() {
    // A worker must become ready within startup_timeout (plus a little for the first spawn).
    startup_timer_ = std::make_unique<asio::steady_timer>(ioc_);
    startup_deadline_ = Clock::now() + config_.workers.startup_timeout + std::chrono::seconds(2);
    asio::post(ioc_, [this] { check_startup(); });
}

void Daemon::check_startup() {
    const auto status = pool_->status();
    if (status.ever_ready) {
        last_status_ = pool_status_text();
        notify("READY=1\nSTATUS=" + last_status_);
        ready_sent_ = true;
        if (notifier_.enabled()) {
            status_timer_ = std::make_unique<asio::steady_timer>(ioc_);
            schedule_status();
        }
        spdlog::info("event=ready workers_ready={} startup_ms={:.0f}", status.state.ready,
                     std::chrono::duration<double, std::milli>(Clock::now() - started_at_).count());
        return;
    }
    if (stopping_) return;
    if (Clock::now() >= startup_deadline_) {
        spdlog::critical(
            "event=no_worker_ready startup_timeout={} last_exit={} last_stderr={}",
            format_duration(config_.workers.startup_timeout), log_quote(status.health.last_exit),
            log_quote(status.health.last_stderr.empty() ? "" : status.health.last_stderr.back()));
        exit_code_ = kExitUnavailable;
        stopping_ = true;
        control_->stop();
        front_->begin_shutdown();
        front_->abort_remaining();
        stop_then_exit(true);
        return;
    }
    startup_timer_->expires_after(std::chrono::milliseconds(50));
    startup_timer_->async_wait([this](const boost::system::error_code& ec) {
        if (!ec) check_startup();
    });
}

void Daemon::start_watchdog() {
    if (!options_.systemd.watchdog || !notifier_.enabled()) return;
    watchdog_timer_ = std::make_unique<asio::steady_timer>(ioc_);
    watchdog_period_ =
        std::max(Duration(1), std::chrono::duration_cast<Duration>(*options_.systemd.watchdog / 2));
    spdlog::info("event=watchdog_enabled watchdog_usec={} ping_every_ms={}",
                 options_.systemd.watchdog->count(), watchdog_period_.count());
    watchdog_tick();
}

void Daemon::watchdog_tick() {
    // Sent from the I/O thread, and only while the control thread also makes progress: a stuck
    // event loop or a stuck control loop (a probe that hangs, a deadlock) stops the pings, and
    // systemd restarts tunerd after WatchdogSec. While stopping, the control loop is stopped on
    // purpose and the I/O thread alone counts.
    const auto control_idle = Clock::now() - control_->last_heartbeat();
    if (stopping_ || systemd::control_alive(control_idle, watchdog_period_)) {
        notify("WATCHDOG=1");
        if (watchdog_withheld_) {
            spdlog::warn("event=watchdog_resumed control_idle_ms={}",
                         std::chrono::duration_cast<Duration>(control_idle).count());
            watchdog_withheld_ = false;
        }
    } else if (!watchdog_withheld_) {
        spdlog::error(
            "event=watchdog_withheld control_idle_ms={} reason=\"the control thread made "
            "no progress; systemd restarts tunerd if this lasts WatchdogSec\"",
            std::chrono::duration_cast<Duration>(control_idle).count());
        watchdog_withheld_ = true;
    }
    watchdog_timer_->expires_after(watchdog_period_);
    watchdog_timer_->async_wait([this](const boost::system::error_code& ec) {
        if (!ec) watchdog_tick();
    });
}

void Daemon::notify(const std::string& state) {
    (void)notifier_.send(state);
}

std::string Daemon::pool_status_text() const {
    const auto status = pool_->status();
    return "serving: " + std::to_string(status.state.ready) + " of " +
           std::to_string(status.state.target) + " workers ready";
}

void Daemon::status_tick() {
    if (stopping_) return;
    std::string text = pool_status_text();
    if (text != last_status_) {
        notify("STATUS=" + text);
        last_status_ = std::move(text);
    }
    schedule_status();
}

void Daemon::schedule_status() {
    status_timer_->expires_after(std::chrono::seconds(2));
    status_timer_->async_wait([this](const boost::system::error_code& ec) {
        if (!ec) status_tick();
    });
}

}  // namespace

int run_daemon(Config config, const DaemonOptions& options) {
    Daemon daemon(std::move(config), options);
    return daemon.run();
}

}  // namespace tuner
