// The PostgreSQL actuator's thread: target, jobs, retries with backoff (see actuator.hpp).
#include "tuner/postgres/actuator.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

namespace tuner::postgres {
namespace {

bool same_target(PostgresMode mode_a, const policies::PostgresSettingsResult& a,
                 PostgresMode mode_b, const policies::PostgresSettingsResult& b) {
    if (mode_a != mode_b || a.settings.size() != b.settings.size()) return false;
    for (std::size_t i = 0; i < a.settings.size(); ++i) {
        if (a.settings[i].name != b.settings[i].name || a.settings[i].value != b.settings[i].value)
            return false;
    }
    return true;
}

ActionOptions action_options(const ActuatorOptions& o, WallClock::time_point config_loaded_at) {
    ActionOptions a;
    a.state_dir = o.state_dir;
    a.settle_timeout = o.settle_timeout;
    a.poll_interval = o.poll_interval;
    a.config_loaded_at = config_loaded_at;
    return a;
}

void log_report(const PostgresReport& report) {
    if (report.error) {
        spdlog::warn("postgres action={} error=\"{}\" retry={}", report.action,
                     report.error->to_string(), report.retry_later);
    }
    for (const auto& d : report.decisions) {
        if (d.outcome == Outcome::unchanged) continue;
        spdlog::info("postgres action={} setting={} old={} new={} outcome={}", report.action,
                     d.knob, to_string(d.old_value), to_string(d.new_value), to_string(d.outcome));
    }
    for (const auto& n : report.notes)
        spdlog::info("postgres action={} note=\"{}\"", report.action, n);
}

}  // namespace

ActuatorOptions actuator_options(const Config& config, std::string state_dir) {
    ActuatorOptions o;
    o.state_dir = std::move(state_dir);
    const auto& db = config.database;
    if (!db.admin_url_file.empty()) {
        o.conninfo_file = db.admin_url_file;
        o.conninfo_key = "database.admin_url_file";
    } else if (db.postgres != PostgresMode::apply && !db.url_file.empty()) {
        o.conninfo_file = db.url_file;
        o.conninfo_key = "database.url_file";
    }
    o.connect_timeout = db.connect_timeout;
    return o;
}

PostgresActuator::PostgresActuator(ActuatorOptions options, ReportCallback on_report)
    : on_report_(std::move(on_report)),
      options_(std::move(options)),
      config_loaded_at_(WallClock::now()),
      thread_([this] { run(); }) {}

PostgresActuator::~PostgresActuator() {
    {
        std::lock_guard lock(mutex_);
        stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
}

void PostgresActuator::set_target(PostgresMode mode, policies::PostgresSettingsResult settings) {
    {
        std::lock_guard lock(mutex_);
        if (target_ && same_target(target_->mode, target_->settings, mode, settings)) return;
        target_ = Target{mode, std::move(settings)};
        target_pending_ = mode != PostgresMode::off;
        // A new target starts at once, unless the server is failing: then at the next retry.
        if (failures_ == 0) retry_at_ = Clock::now();
    }
    wake_.notify_all();
}

void PostgresActuator::reconfigure(ActuatorOptions options) {
    {
        std::lock_guard lock(mutex_);
        options_ = std::move(options);
        config_loaded_at_ = WallClock::now();
        reconnect_ = true;
        failures_ = 0;
        retry_at_ = refresh_at_ = Clock::now();
        target_pending_ = target_ && target_->mode != PostgresMode::off;
    }
    wake_.notify_all();
}

std::future<PostgresReport> PostgresActuator::rollback() {
    return enqueue("rollback");
}

std::future<PostgresReport> PostgresActuator::refresh() {
    return enqueue("refresh");
}

void PostgresActuator::rollback(std::function<void(const PostgresReport&)> done) {
    (void)enqueue("rollback", std::move(done));
}

std::future<PostgresReport> PostgresActuator::enqueue(
    std::string action, std::function<void(const PostgresReport&)> done) {
    Job job{std::move(action), {}, std::move(done)};
    auto future = job.promise.get_future();
    {
        std::lock_guard lock(mutex_);
        jobs_.push_back(std::move(job));
    }
    wake_.notify_all();
    return future;
}

std::optional<LiveState> PostgresActuator::live() const {
    std::lock_guard lock(mutex_);
    return live_;
}

std::optional<policies::PostgresServerFacts> PostgresActuator::server_facts() const {
    std::lock_guard lock(mutex_);
    if (!live_) return std::nullopt;
    return live_->facts();
}

ActuatorStatus PostgresActuator::status() const {
    std::lock_guard lock(mutex_);
    return status_;
}

Result<Session*> PostgresActuator::session_for(const ActuatorOptions& options, bool reconnect) {
    if (reconnect || !session_ || !session_->healthy()) {
        session_.reset();
        if (options.conninfo_file.empty())
            return make_error("database",
                              "no connection string file configured "
                              "(database.admin_url_file or database.url_file)");
        auto conninfo = read_conninfo_file(options.conninfo_file);
        if (!conninfo) return conninfo.error();
        auto session = Session::connect(*conninfo, options.connect_timeout,
                                        options.conninfo_key + " (" + options.conninfo_file + ")");
        if (!session) return session.error();
        session_.emplace(std::move(*session));
    }
    return &*session_;
}

PostgresReport PostgresActuator::run_target(const Target& target, const ActuatorOptions& options,
                                            WallClock::time_point loaded_at, bool reconnect) {
    const ActionOptions action = action_options(options, loaded_at);
    if (target.mode == PostgresMode::recommend) {
        std::optional<LiveState> live;
        std::string unread;
        if (!options.conninfo_file.empty()) {
            auto session = session_for(options, reconnect);
            auto read = session ? read_live_state(**session, policies::postgres_setting_names())
                                : Result<LiveState>(session.error());
            if (read)
                live = std::move(*read);
            else
                unread = read.error().to_string();
        }
        auto report = recommend_settings(target.settings, live, action);
        if (!unread.empty()) report.notes.push_back("current values unknown: " + unread);
        return report;
    }
    auto session = session_for(options, reconnect);
    if (!session) return failed_report("apply", target.settings, session.error(), true);
    auto report = apply_settings(**session, target.settings, action);
    if (!(*session)->healthy()) session_.reset();
    return report;
}

PostgresReport PostgresActuator::run_job(const std::string& action, const ActuatorOptions& options,
                                         WallClock::time_point loaded_at, bool reconnect) {
    auto session = session_for(options, reconnect);
    if (!session) {
        PostgresReport report;
        report.action = action;
        report.error = session.error();
        report.retry_later = true;
        return report;
    }
    PostgresReport report;
    if (action == "rollback") {
        report = rollback_settings(**session, action_options(options, loaded_at));
    } else {
        report.action = action;
        auto live = read_live_state(**session, policies::postgres_setting_names());
        if (live)
            report.live = std::move(*live);
        else {
            report.error = live.error();
            report.retry_later = !(*session)->healthy();
        }
    }
    if (!(*session)->healthy()) session_.reset();
    return report;
}

Duration PostgresActuator::backoff_locked() const {
    Duration delay = options_.retry_initial;
    for (unsigned i = 1; i < failures_ && delay < options_.retry_max; ++i) delay *= 2;
    return std::min(delay, options_.retry_max);
}

void PostgresActuator::record_locked(const PostgresReport& report) {
    if (report.live) live_ = report.live;
    status_.connected = session_.has_value() && session_->healthy();
    if (report.error && report.retry_later) {
        ++failures_;
        status_.last_error = report.error->to_string();
        const Duration delay = backoff_locked();
        retry_at_ = Clock::now() + delay;
        status_.next_retry = WallClock::now() + delay;
    } else if (report.ok()) {
        failures_ = 0;
        status_.last_error.clear();
        status_.next_retry.reset();
    } else {
        status_.last_error = report.error->to_string();
    }
    status_.consecutive_failures = failures_;
    if (report.action == "rollback" && report.ok()) status_.rolled_back_at = WallClock::now();
}

namespace {

// The database thread's exception barrier: a job that throws (libpq text that is not UTF-8
// reaching a JSON dump, say) becomes a failed report, and the thread lives on.
template <class Job>
PostgresReport guarded(const std::string& action, Job&& job) {
    try {
        return job();
    } catch (const std::exception& e) {
        spdlog::error("event=postgres_job_failed action={} error=\"{}\"", action, e.what());
        PostgresReport failed;
        failed.action = action;
        failed.error = make_error("database", std::string("internal error: ") + e.what());
        failed.retry_later = true;
        return failed;
    }
}

}  // namespace

void PostgresActuator::run() {
    std::unique_lock lock(mutex_);
    while (!stop_) {
        const auto now = Clock::now();
        const ActuatorOptions options = options_;
        const auto loaded_at = config_loaded_at_;
        const bool reconnect = std::exchange(reconnect_, false);
        const bool can_connect = !options.conninfo_file.empty();
        PostgresReport report;
        std::optional<Job> job;

        if (!jobs_.empty()) {
            job.emplace(std::move(jobs_.front()));
            jobs_.pop_front();
            lock.unlock();
            report = guarded(job->action,
                             [&] { return run_job(job->action, options, loaded_at, reconnect); });
        } else if (target_pending_ && target_ && now >= retry_at_) {
            const Target target = *target_;
            target_pending_ = false;
            lock.unlock();
            report =
                guarded("apply", [&] { return run_target(target, options, loaded_at, reconnect); });
            lock.lock();
            // Retry the same target later, unless a newer one arrived meanwhile.
            if (report.retry_later && !target_pending_) target_pending_ = true;
            lock.unlock();
        } else if (can_connect && now >= refresh_at_) {
            lock.unlock();
            report = guarded("refresh",
                             [&] { return run_job("refresh", options, loaded_at, reconnect); });
        } else {
            reconnect_ = reconnect_ || reconnect;
            auto wake_at = Clock::time_point::max();
            if (can_connect) wake_at = refresh_at_;
            if (target_pending_) wake_at = std::min(wake_at, retry_at_);
            if (wake_at == Clock::time_point::max())
                wake_.wait(lock);
            else
                wake_.wait_until(lock, wake_at);
            continue;
        }

        log_report(report);
        lock.lock();
        record_locked(report);
        if (report.action == "refresh")
            refresh_at_ =
                Clock::now() + (report.ok() ? options.refresh_interval : backoff_locked());
        lock.unlock();
        try {
            if (on_report_) on_report_(report);
        } catch (const std::exception& e) {
            spdlog::error("postgres: report callback threw: {}", e.what());
        } catch (...) {
            spdlog::error("postgres: report callback threw");
        }
        if (job) {
            if (job->done) job->done(report);
            job->promise.set_value(std::move(report));
        }
        lock.lock();
    }
    for (auto& pending : jobs_) {
        PostgresReport stopped;
        stopped.action = pending.action;
        stopped.error = make_error("database", "PostgreSQL actuator stopped");
        if (pending.done) pending.done(stopped);
        pending.promise.set_value(std::move(stopped));
    }
    jobs_.clear();
}

}  // namespace tuner::postgres
