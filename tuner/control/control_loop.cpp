// The control thread (see control_loop.hpp).
#include "tuner/control/control_loop.hpp"

#include <algorithm>
#include <thread>

#include <spdlog/spdlog.h>

#include "model/log_text.hpp"
#include "policies/registry.hpp"

namespace tuner {

namespace {

constexpr auto kSampleEvery = std::chrono::seconds(10);

double psi_some_avg10(const std::optional<PressureResource>& r) {
    return r && r->some ? r->some->avg10 : 0.0;
}

}  // namespace

ControlLoop::ControlLoop(Config config, server::WorkerPool& pool, server::Dispatcher& dispatcher,
                         Applier& applier, DecisionLog& log, probes::ProbeRoots roots)
    : config_(std::move(config)),
      pool_(pool),
      dispatcher_(dispatcher),
      applier_(applier),
      log_(log),
      prober_(std::move(roots), ::getpid(), config_.policy.pss_every),
      controller_(config_),
      database_(DatabaseTuner::create(config_, applier_, pool_)) {}

ControlLoop::~ControlLoop() {
    stop();
}

Config ControlLoop::config() const {
    std::lock_guard lock(config_mutex_);
    return config_;
}

Snapshot ControlLoop::take_snapshot() {
    Snapshot s;
    prober_.sample(s, pool_.worker_pids());
    const auto status = pool_.status();
    s.pool = status.state;
    s.pool.manual_target = applier_.manual_target();
    s.window = dispatcher_.window(s.taken_at);
    if (cache_source_) s.cache = cache_source_();
    return s;
}

std::pair<unsigned, unsigned> ControlLoop::initial_shape(
    const std::function<void(unsigned, unsigned)>& start_pool) {
    Snapshot s = take_snapshot();
    const Config cfg = config();
    s.pool.target = 0;
    s.pool.threads = cfg.workers.threads;
    for (const auto& problem : s.problems)
        spdlog::warn("event=probe_problem problem={}", log_quote(problem));
    spdlog::info(
        "event=limits cgroup={} cgroup_path={} cores={} cores_source={} quota_cores={} "
        "memory_limit={} "
        "memory_source={} memory_usage={} working_set={} psi={}",
        to_string(s.cgroup.version), log_quote(s.cgroup.path), s.cpu.effective_cores, s.cpu.source,
        s.cpu.quota_cores ? std::to_string(*s.cpu.quota_cores) : "none",
        format_size_approx(s.memory.limit_bytes), log_quote(s.memory.source),
        format_size_approx(s.memory.usage_bytes), format_size_approx(s.memory.working_set_bytes),
        s.pressure.source.empty() ? "absent" : log_quote(s.pressure.source));

    if (database_) {
        // Before the first worker starts, so it already gets the pool sizes and DATABASE_URL.
        database_->cycle(s, policies::seed_formula(controller_.ceiling_inputs(s)));
        controller_.set_max_processes_by_db(database_->max_processes_by_db());
    }
    Plan plan = controller_.decide(s);
    unsigned workers = 0;
    unsigned threads = cfg.workers.threads;
    plan.plan_id = applier_.next_plan_id();
    for (auto& d : plan.decisions) {
        d.plan_id = plan.plan_id;
        if (moves(d, knob::workers_count)) workers = new_count(d).value_or(workers);
        if (moves(d, knob::workers_threads)) threads = new_count(d).value_or(threads);
    }
    if (workers == 0) {  // the controller always seeds; never start an empty pool
        workers =
            std::max(1u, cfg.workers.mode == PoolMode::fixed ? cfg.workers.count : cfg.workers.min);
    }
    // The starting shape is acted on even in dry-run mode (a pool must exist to be observed),
    // by the pool's start rather than by the resize actuators: recorded as carried out.
    start_pool(workers, threads);
    for (auto& d : plan.decisions) {
        d.outcome = Outcome::applied;
        d = applier_.record_done(d);
    }
    {
        std::lock_guard lock(view_mutex_);
        view_.snapshot = s;
        view_.seed_inputs = controller_.ceiling_inputs(s);
        view_.seed = policies::seed_formula(view_.seed_inputs);
        view_.controller = controller_.explain();
        view_.saturation = controller_.saturation();
        view_.last_plan = plan;
    }
    return {workers, threads};
}

void ControlLoop::set_heartbeat_every(Duration every) {
    heartbeat_every_ = every;
}

void ControlLoop::set_test_stall(Duration stall) {
    test_stall_ = stall;
}

Clock::time_point ControlLoop::last_heartbeat() const {
    return Clock::time_point(Clock::duration(heartbeat_.load(std::memory_order_relaxed)));
}

void ControlLoop::start() {
    std::lock_guard lock(wake_mutex_);
    if (thread_.joinable()) return;
    stopping_ = false;
    heartbeat_.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
    thread_ = std::thread([this] { run(); });
}

void ControlLoop::stop() {
    {
        std::lock_guard lock(wake_mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
    std::vector<std::function<void(nlohmann::json)>> pending;
    {
        std::lock_guard lock(wake_mutex_);
        pending.swap(optimize_requests_);
        optimize_requested_ = false;
    }
    for (auto& done : pending) {
        if (done) done({{"error", "tunerd is stopping"}});
    }
}

void ControlLoop::optimize_now(std::function<void(nlohmann::json)> done) {
    {
        std::lock_guard lock(wake_mutex_);
        if (stopping_ || !thread_.joinable()) {
            if (done) done({{"error", "the control loop is not running"}});
            return;
        }
        optimize_requests_.push_back(std::move(done));
        optimize_requested_ = true;
    }
    wake_.notify_all();
}

void ControlLoop::reload(const Config& config) {
    {
        std::lock_guard lock(wake_mutex_);
        pending_reload_ = config;
    }
    wake_.notify_all();
}

void ControlLoop::rollback_postgres(std::function<void(nlohmann::json, int)> done) {
    if (!database_) {
        done({{"error", "no database configured (database.url_file, database.postgres)"}}, 409);
        return;
    }
    database_->rollback(std::move(done));
}

void ControlLoop::set_compression_source(std::function<policies::CompressionState()> source) {
    compression_source_ = std::move(source);
}

void ControlLoop::set_cache_source(std::function<CacheMemory()> source) {
    cache_source_ = std::move(source);
}

ControlView ControlLoop::view() const {
    std::lock_guard lock(view_mutex_);
    return view_;
}

void ControlLoop::run() {
    auto next = Clock::now();
    for (;;) {
        std::vector<std::function<void(nlohmann::json)>> requests;
        std::optional<Config> reload;
        bool on_demand = false;
        {
            std::unique_lock lock(wake_mutex_);
            const auto woken = [&] { return stopping_ || optimize_requested_ || pending_reload_; };
            for (;;) {
                heartbeat_.store(Clock::now().time_since_epoch().count(),
                                 std::memory_order_relaxed);
                auto until = next;
                if (heartbeat_every_.count() > 0)
                    until = std::min(until, Clock::now() + heartbeat_every_);
                if (wake_.wait_until(lock, until, woken) || Clock::now() >= next) break;
            }
            if (stopping_) return;
            requests.swap(optimize_requests_);
            on_demand = optimize_requested_;
            optimize_requested_ = false;
            reload.swap(pending_reload_);
        }
        if (reload) {
            {
                std::lock_guard lock(config_mutex_);
                config_ = *reload;
            }
            controller_.reconfigure(*reload);
            prober_.set_pss_every(reload->policy.pss_every);
            if (database_) database_->reload(*reload);
        }
        const bool scheduled = !on_demand && !reload;
        if (on_demand && test_stall_.count() > 0) {
            spdlog::warn(
                "event=test_stall_control ms={} (TUNERD_TEST_HOOKS)",
                std::chrono::duration_cast<std::chrono::milliseconds>(test_stall_).count());
            std::this_thread::sleep_for(test_stall_);
        }
        nlohmann::json result;
        try {
            result = cycle();
        } catch (const std::exception& e) {
            // The control thread's exception barrier: one failed cycle, not a dead daemon.
            spdlog::error("event=control_cycle_failed error=\"{}\"", e.what());
            result = {{"error", std::string("control cycle failed: ") + e.what()}};
        }
        for (auto& done : requests) {
            if (done) done(result);
        }
        if (scheduled || Clock::now() >= next) {
            next += config().policy.interval;
            // After a stall (a suspended VM), do not run a burst of catch-up cycles.
            if (next < Clock::now()) next = Clock::now() + config().policy.interval;
        }
    }
}

nlohmann::json ControlLoop::cycle() {
    const auto started = Clock::now();
    Snapshot s = take_snapshot();

    // Memory facts for the pool: per-worker trees for max_worker_rss and /workers, and whether
    // the pool sits at the memory ceiling (replacements then drain the old worker first).
    std::map<unsigned, std::uint64_t> rss;
    for (const auto& [id, tree] : s.worker_trees) rss[id] = tree.pss_bytes.value_or(tree.rss_bytes);
    pool_.set_worker_rss(rss);

    // One memory ceiling everywhere: the one the controller enforces (its per-process estimate
    // at the pool's thread count, held at its highest, under memory.high when set). The database
    // policy sizes with it, /performance and /metrics report it.
    nlohmann::json database_json = nullptr;
    if (database_) {
        database_->cycle(s, policies::seed_formula(controller_.ceiling_inputs(s)));
        controller_.set_max_processes_by_db(database_->max_processes_by_db());
        database_json = database_->explain();
    }

    Plan plan = controller_.decide(s);
    if (compression_source_) {
        if (auto d = compression_.decide(s, compression_source_()))
            plan.decisions.push_back(std::move(*d));
    }
    if (auto d = cache_capacity_.decide(s)) plan.decisions.push_back(std::move(*d));
    nlohmann::json explained = controller_.explain();
    const auto seed_in = controller_.ceiling_inputs(s);  // with this cycle's measurements
    const auto seed = policies::seed_formula(seed_in);
    // The most processes memory holds at once, at the thread count the pool has and the one
    // this plan moves it to: a rolling change never has more alive than that.
    unsigned planned_threads = s.pool.threads;
    for (const auto& d : plan.decisions) {
        if (moves(d, knob::workers_threads))
            planned_threads = new_count(d).value_or(planned_threads);
    }
    auto max_live = controller_.max_processes(s, s.pool.threads);
    if (const auto at_planned = controller_.max_processes(s, planned_threads);
        at_planned && (!max_live || *at_planned < *max_live)) {
        max_live = at_planned;
    }
    pool_.set_max_processes(max_live);
    act_on_plan(plan);

    if (s.taken_at - last_sample_ >= kSampleEvery) {
        last_sample_ = s.taken_at;
        record_sample(s);
    }
    const double took_ms =
        std::chrono::duration<double, std::milli>(Clock::now() - started).count();
    std::lock_guard lock(view_mutex_);
    view_.snapshot = std::move(s);
    view_.seed_inputs = seed_in;
    view_.seed = seed;
    view_.controller = std::move(explained);
    view_.saturation = controller_.saturation();
    view_.database = std::move(database_json);
    if (!plan.decisions.empty()) view_.last_plan = plan;
    ++view_.cycles;
    view_.last_cycle_ms = took_ms;
    view_.valid = true;
    return plan_json(plan);
}

void ControlLoop::act_on_plan(Plan& plan) {
    // What the policies saw but did not act on (a cap, a hold, a knee kept): said once per kind
    // of note (the controller repeats a note only when its kind changes).
    for (const auto& note : plan.notes) spdlog::info("event=policy_note note={}", log_quote(note));
    if (plan.decisions.empty()) return;
    plan.plan_id = applier_.next_plan_id();
    for (auto& d : plan.decisions) {
        d.plan_id = plan.plan_id;
        d = applier_.apply(d);
    }
}

void ControlLoop::record_sample(const Snapshot& s) {
    Sample sample;
    sample.workers_target = s.pool.target;
    sample.workers_ready = s.pool.ready;
    sample.threads = s.pool.threads;
    sample.rps = s.window.rate_rps;
    sample.p95_ms = s.window.total.p95_ms;
    sample.queue_wait_p95_ms = s.window.queue_wait.p95_ms;
    sample.memory_usage_bytes = s.memory.usage_bytes;
    sample.working_set_bytes = s.memory.working_set_bytes;
    sample.memory_limit_bytes = s.memory.limit_bytes;
    sample.cpu_utilisation = s.cpu.utilisation.value_or(0);
    sample.psi_cpu_some_avg10 = s.pressure.cpu ? psi_some_avg10(s.pressure.cpu) : 0;
    sample.psi_memory_some_avg10 = s.pressure.memory ? psi_some_avg10(s.pressure.memory) : 0;
    log_.record_sample(sample);
}

}  // namespace tuner
