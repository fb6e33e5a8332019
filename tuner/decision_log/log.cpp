// The decision log's bounded queue, in-memory recent decisions and writer thread (see
// log.hpp); SQL lives in store.cpp, the schema in schema.cpp.
#include "tuner/decision_log/log.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_set>
#include <utility>
#include <variant>

#include <spdlog/spdlog.h>

#include "model/log_throttle.hpp"
#include "tuner/decision_log/schema.hpp"
#include "tuner/decision_log/sqlite.hpp"
#include "tuner/decision_log/store.hpp"
#include "tuner/decision_log/timestamps.hpp"

namespace tuner {
namespace {

using SteadyClock = std::chrono::steady_clock;
using decision_log::store::RunRow;

constexpr std::size_t kBatchSize = 500;                  // entries per transaction
constexpr auto kWarnEvery = std::chrono::minutes(1);     // rate limit of the failure warning
constexpr auto kRetentionEvery = std::chrono::hours(1);  // besides at every open
constexpr auto kIdleWake = std::chrono::seconds(30);     // idle writer: retention, file checks
constexpr auto kReaderBusyTimeout = std::chrono::milliseconds(1000);

struct DecisionRow {
    std::int64_t run_id = 0;
    Decision decision;
};
struct OutcomeRow {
    std::uint64_t id = 0;
    Outcome outcome = Outcome::pending;
    std::string error;
};
struct SampleRow {
    std::int64_t run_id = 0;
    Sample sample;
};
using Entry = std::variant<RunRow, DecisionRow, OutcomeRow, SampleRow>;

// Which file a path names: a log deleted or replaced while open is noticed by its inode.
struct FileIdentity {
    dev_t device = 0;
    ino_t inode = 0;
    friend bool operator==(const FileIdentity&, const FileIdentity&) = default;
};

std::optional<FileIdentity> identity_of(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return std::nullopt;
    return FileIdentity{st.st_dev, st.st_ino};
}

// Newest first: by time, then by id (the order of record()).
bool newer_first(const Decision& a, const Decision& b) {
    if (a.time != b.time) return a.time > b.time;
    return a.id > b.id;
}

bool at_or_after(const Decision& d, std::optional<WallClock::time_point> since) {
    return !since || d.time >= floor_to_ms(*since);
}

// The first id of this process: after the largest stored one when the file could be read;
// else the wall clock in milliseconds, above every id a previous run can have handed out
// unless it made more than 1000 decisions a second.
std::int64_t first_id(std::optional<std::int64_t> stored_max, WallClock::time_point now) {
    if (stored_max) return *stored_max + 1;
    const auto unix_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
    return std::max<std::int64_t>(1, unix_ms);
}

}  // namespace

struct DecisionLog::Impl {
    explicit Impl(Options opts) : options(std::move(opts)) {
        options.queue_capacity = std::max<std::size_t>(1, options.queue_capacity);
        if (!options.now) options.now = [] { return WallClock::now(); };
    }

    Options options;

    // Shared with callers; every member below `mutex` until the writer's section.
    mutable std::mutex mutex;
    std::condition_variable wake_writer;
    std::condition_variable written;  // flush() waits here
    std::deque<Entry> records;        // runs, decisions and outcomes in the order they happened
    std::deque<SampleRow> samples;
    std::size_t in_flight = 0;       // entries the writer has taken and not yet committed
    std::deque<DecisionRow> memory;  // the last memory_keep decisions, oldest first
    RunInfo run;
    std::vector<RunRow> runs_started;  // this process's runs, re-written after a recovery
    std::uint64_t next_decision_id = 1;
    std::int64_t next_run_id = 1;
    DecisionLogStats counters;
    bool stopping = false;

    // The writer thread's own (the constructor's before the thread starts).
    sqlite::Connection db;
    std::optional<FileIdentity> db_identity;
    SteadyClock::time_point next_open_attempt{};
    std::optional<WallClock::time_point> last_retention;
    LogThrottle warnings{kWarnEvery};
    std::uint64_t errors_since_warning = 0;
    std::thread writer;

    // query()'s connection, beside the writer's (WAL lets it read while the writer writes).
    mutable std::mutex read_mutex;
    mutable sqlite::Connection read_db;
    mutable std::optional<FileIdentity> read_identity;

    bool has_queued() const { return !records.empty() || !samples.empty(); }
    std::size_t queued() const { return records.size() + samples.size() + in_flight; }

    // ---- caller side (mutex held) ----

    // Makes room for one entry: the oldest sample goes first; a decision or an outcome only when
    // nothing else is left. Runs are never dropped (decisions refer to them).
    void make_room() {
        while (records.size() + samples.size() >= options.queue_capacity) {
            if (!samples.empty()) {
                samples.pop_front();
            } else {
                auto victim = std::find_if(records.begin(), records.end(), [](const Entry& e) {
                    return !std::holds_alternative<RunRow>(e);
                });
                if (victim == records.end()) return;
                records.erase(victim);
            }
            ++counters.dropped_total;
        }
    }

    void enqueue(Entry entry) {
        if (options.path.empty()) return;
        make_room();
        records.push_back(std::move(entry));
        wake_writer.notify_one();
    }

    std::vector<Decision> from_memory(std::optional<WallClock::time_point> since,
                                      std::size_t limit) const {
        std::vector<Decision> out;
        for (const auto& row : memory) {
            if (at_or_after(row.decision, since)) out.push_back(row.decision);
        }
        std::sort(out.begin(), out.end(), newer_first);
        if (out.size() > limit) out.resize(limit);
        return out;
    }

    // ---- writer side ----

    // Opens and migrates the file, then re-writes this process's runs and the decisions in
    // memory: if the file was deleted or the directory replaced, they would be lost otherwise.
    Status open_database() {
        auto opened = decision_log::schema::open_for_writing(options.path, options.busy_timeout);
        if (!opened.ok()) return opened.error();
        db = std::move(*opened);
        db_identity = identity_of(options.path);
        std::vector<RunRow> runs;
        std::vector<DecisionRow> remembered;
        const auto cutoff = options.now() - options.retention;
        {
            std::lock_guard lock(mutex);
            runs = runs_started;
            for (const auto& row : memory) {
                if (row.decision.time >= cutoff) remembered.push_back(row);
            }
        }
        std::vector<Entry> rewrite(runs.begin(), runs.end());
        for (auto& row : remembered) rewrite.emplace_back(std::move(row));
        if (!rewrite.empty()) {
            if (auto done = write_batch(rewrite); !done.ok()) return done;
        }
        last_retention.reset();  // enforce retention at every open, hourly after that
        return {};
    }

    Status ensure_open() {
        if (db) {
            if (identity_of(options.path) == db_identity) return {};
            note_failure(
                Error{"the database file was deleted or replaced while open; "
                      "reopening it",
                      options.path});
            close_database();
        }
        return open_database();
    }

    // The reader goes first: the writer's connection must be the file's last one so that its
    // close checkpoints and removes the -wal and -shm, which a new file at the same path must
    // not inherit.
    void close_database() {
        {
            std::lock_guard lock(read_mutex);
            read_db.reset();
            read_identity.reset();
        }
        db.reset();
        db_identity.reset();
    }

    Status maybe_enforce_retention() {
        const auto now = options.now();
        if (last_retention && now - *last_retention < kRetentionEvery) return {};
        std::int64_t keep_run_id = 0;
        {
            std::lock_guard lock(mutex);
            keep_run_id = run.run_id;
        }
        auto done =
            decision_log::store::delete_older_than(db.get(), now - options.retention, keep_run_id);
        if (done.ok()) last_retention = now;
        return done;
    }

    Status write_entry(const Entry& entry) {
        namespace store = decision_log::store;
        return std::visit(
            [&](const auto& e) -> Status {
                using T = std::decay_t<decltype(e)>;
                if constexpr (std::is_same_v<T, RunRow>) {
                    return store::insert_run(db.get(), e);
                } else if constexpr (std::is_same_v<T, DecisionRow>) {
                    return store::upsert_decision(db.get(), e.run_id, e.decision);
                } else if constexpr (std::is_same_v<T, OutcomeRow>) {
                    return store::update_outcome(db.get(), e.id, e.outcome, e.error);
                } else {
                    return store::insert_sample(db.get(), e.run_id, e.sample);
                }
            },
            entry);
    }

    // One transaction for the whole batch: all of it is written, or none.
    Status write_batch(const std::vector<Entry>& batch) {
        const std::string doing = "writing " + std::to_string(batch.size()) + " entries";
        if (auto begun = sqlite::exec(db.get(), "BEGIN IMMEDIATE", doing); !begun.ok()) {
            return begun;
        }
        Status status;
        for (const Entry& entry : batch) {
            status = write_entry(entry);
            if (!status.ok()) break;
        }
        if (status.ok()) status = sqlite::exec(db.get(), "COMMIT", doing);
        if (!status.ok()) (void)sqlite::exec(db.get(), "ROLLBACK", "");
        return status;
    }

    void take_batch(std::vector<Entry>& batch) {
        while (batch.size() < kBatchSize && !records.empty()) {
            batch.push_back(std::move(records.front()));
            records.pop_front();
        }
        while (batch.size() < kBatchSize && !samples.empty()) {
            batch.emplace_back(std::move(samples.front()));
            samples.pop_front();
        }
        in_flight = batch.size();
    }

    void note_success(std::size_t written_entries) {
        bool recovered = false;
        std::uint64_t errors = 0;
        {
            std::lock_guard lock(mutex);
            counters.written_total += written_entries;
            in_flight = 0;
            recovered = !counters.healthy;
            counters.healthy = true;
            errors = counters.errors_total;
        }
        written.notify_all();
        if (recovered) {
            spdlog::info("decision log recovered: path={} errors_total={}", options.path, errors);
            warnings.reset();
            errors_since_warning = 0;
        }
    }

    // Counts every failure; warns at most once a minute so a dead disk does not flood the log.
    void note_failure(const Error& error) {
        DecisionLogStats now_stats;
        {
            std::lock_guard lock(mutex);
            ++counters.errors_total;
            counters.healthy = false;
            counters.last_error = error.to_string();
            counters.last_error_time = options.now();
            now_stats = counters;
            now_stats.queued = queued();
        }
        ++errors_since_warning;
        if (!warnings.due()) return;
        spdlog::warn(
            "decision log failing: error=\"{}\" errors={} queued={} dropped_total={} "
            "(decisions stay in memory; retrying every {})",
            now_stats.last_error, errors_since_warning, now_stats.queued, now_stats.dropped_total,
            format_duration(options.retry_interval));
        errors_since_warning = 0;
    }

    // The constructor's synchronous first open: it also seeds the ids past the stored ones.
    void open_at_start() {
        std::optional<std::int64_t> max_decision;
        std::optional<std::int64_t> max_run;
        Status status = open_database();
        if (status.ok()) {
            auto d = decision_log::store::max_decision_id(db.get());
            auto r = decision_log::store::max_run_id(db.get());
            if (d.ok() && r.ok()) {
                max_decision = *d;
                max_run = *r;
            } else {
                status = d.ok() ? r.error() : d.error();
            }
        }
        const auto now = options.now();
        next_decision_id = static_cast<std::uint64_t>(first_id(max_decision, now));
        next_run_id = first_id(max_run, now);
        if (!status.ok()) {
            note_failure(status.error());
            close_database();
            next_open_attempt = SteadyClock::now() + options.retry_interval;
        }
    }

    // One pass of the writer; an exception (a JSON text SQLite chokes on, an allocation) counts
    // as a failed write, retried later like a full disk: the writer thread never dies of it.
    Status write_pass(const std::vector<Entry>& batch) {
        try {
            Status status = ensure_open();
            if (status.ok()) status = maybe_enforce_retention();
            if (status.ok() && !batch.empty()) status = write_batch(batch);
            return status;
        } catch (const std::exception& e) {
            return make_error(options.path, std::string("internal error: ") + e.what());
        }
    }

    void run_writer() {
        std::vector<Entry> batch;  // taken from the queue, kept until committed
        std::optional<SteadyClock::time_point> drain_deadline;
        bool first_pass = true;
        for (;;) {
            {
                std::unique_lock lock(mutex);
                // An open database gets its retention at start, without waiting for work.
                const bool start_now = std::exchange(first_pass, false) && db;
                if (!stopping && !start_now) {
                    if (!db) {
                        wake_writer.wait_until(lock, next_open_attempt, [&] { return stopping; });
                    } else {
                        wake_writer.wait_for(lock, kIdleWake, [&] {
                            return stopping || !batch.empty() || has_queued();
                        });
                    }
                }
                if (stopping) {
                    if (!drain_deadline)
                        drain_deadline = SteadyClock::now() + options.drain_timeout;
                    if ((batch.empty() && !has_queued()) || SteadyClock::now() >= *drain_deadline) {
                        break;
                    }
                }
                if (batch.empty()) take_batch(batch);
            }
            Status status = write_pass(batch);
            if (status.ok()) {
                note_success(batch.size());
                batch.clear();
                continue;
            }
            note_failure(status.error());
            close_database();
            next_open_attempt = SteadyClock::now() + options.retry_interval;
            if (stopping) break;
        }
        std::size_t unwritten = 0;
        {
            std::lock_guard lock(mutex);
            unwritten = queued();
        }
        if (unwritten > 0) {
            spdlog::warn("decision log stopped with entries unwritten: path={} unwritten={}",
                         options.path, unwritten);
        }
        close_database();
    }
};

DecisionLog::DecisionLog(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {
    if (impl_->options.path.empty()) return;
    impl_->open_at_start();
    impl_->writer = std::thread([impl = impl_.get()] { impl->run_writer(); });
}

DecisionLog::~DecisionLog() {
    if (!impl_->writer.joinable()) return;
    {
        std::lock_guard lock(impl_->mutex);
        impl_->stopping = true;
    }
    impl_->wake_writer.notify_all();
    impl_->writer.join();
}

void DecisionLog::start_run(std::string version, std::string config_hash, std::string config_text) {
    Impl& s = *impl_;
    std::lock_guard lock(s.mutex);
    s.run = RunInfo{s.next_run_id++, floor_to_ms(s.options.now()), std::move(version),
                    std::move(config_hash)};
    s.runs_started.push_back(RunRow{s.run, std::move(config_text)});
    s.enqueue(s.runs_started.back());
}

RunInfo DecisionLog::current_run() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->run;
}

std::uint64_t DecisionLog::record(Decision decision) {
    Impl& s = *impl_;
    std::lock_guard lock(s.mutex);
    decision.id = s.next_decision_id++;
    if (decision.time == WallClock::time_point{}) decision.time = s.options.now();
    decision.time = floor_to_ms(decision.time);
    if (s.options.memory_keep > 0) {
        s.memory.push_back(DecisionRow{s.run.run_id, decision});
        if (s.memory.size() > s.options.memory_keep) s.memory.pop_front();
    }
    const std::uint64_t id = decision.id;
    s.enqueue(DecisionRow{s.run.run_id, std::move(decision)});
    return id;
}

void DecisionLog::record_outcome(std::uint64_t id, Outcome outcome, std::string error) {
    Impl& s = *impl_;
    std::lock_guard lock(s.mutex);
    auto kept = std::lower_bound(
        s.memory.begin(), s.memory.end(), id,
        [](const DecisionRow& row, std::uint64_t wanted) { return row.decision.id < wanted; });
    if (kept != s.memory.end() && kept->decision.id == id) {
        kept->decision.outcome = outcome;
        kept->decision.error = error;
    }
    if (s.options.path.empty()) return;
    // Still queued: the insert carries the outcome, no separate update needed.
    for (auto entry = s.records.rbegin(); entry != s.records.rend(); ++entry) {
        auto* row = std::get_if<DecisionRow>(&*entry);
        if (row && row->decision.id == id) {
            row->decision.outcome = outcome;
            row->decision.error = std::move(error);
            return;
        }
    }
    s.enqueue(OutcomeRow{id, outcome, std::move(error)});
}

void DecisionLog::record_sample(const Sample& sample) {
    Impl& s = *impl_;
    if (s.options.path.empty()) return;
    std::lock_guard lock(s.mutex);
    SampleRow row{s.run.run_id, sample};
    if (row.sample.time == WallClock::time_point{}) row.sample.time = s.options.now();
    row.sample.time = floor_to_ms(row.sample.time);
    s.make_room();
    s.samples.push_back(std::move(row));
    s.wake_writer.notify_one();
}

std::vector<Decision> DecisionLog::recent(std::size_t limit) const {
    std::lock_guard lock(impl_->mutex);
    std::vector<Decision> out;
    for (auto row = impl_->memory.rbegin(); row != impl_->memory.rend() && out.size() < limit;
         ++row) {
        out.push_back(row->decision);
    }
    return out;
}

Result<std::vector<Decision>> DecisionLog::query(std::optional<WallClock::time_point> since,
                                                 std::size_t limit) const {
    const Impl& s = *impl_;
    if (s.options.path.empty() || !stats().healthy) {
        std::lock_guard lock(s.mutex);
        return s.from_memory(since, limit);
    }
    Result<std::vector<Decision>> stored = std::vector<Decision>{};
    {
        std::lock_guard lock(s.read_mutex);
        const auto identity = identity_of(s.options.path);
        if (s.read_db && identity != s.read_identity) s.read_db.reset();
        if (!s.read_db) {
            auto opened =
                decision_log::schema::open_for_reading(s.options.path, s.options.busy_timeout);
            if (opened.ok()) {
                s.read_db = std::move(*opened);
                s.read_identity = identity;
            } else {
                stored = opened.error();
            }
        }
        if (s.read_db)
            stored = decision_log::store::select_decisions(s.read_db.get(), since, limit);
        if (!stored.ok()) s.read_db.reset();
    }
    std::lock_guard lock(s.mutex);
    if (!stored.ok()) {
        spdlog::debug("decision log query answered from memory: error=\"{}\"",
                      stored.error().to_string());
        return s.from_memory(since, limit);
    }
    // Memory holds what may not be written yet, and the newest outcomes: it wins over the file.
    std::vector<Decision> merged = s.from_memory(since, limit);
    std::unordered_set<std::uint64_t> in_memory;
    for (const auto& d : merged) in_memory.insert(d.id);
    for (auto& d : *stored) {
        if (!in_memory.contains(d.id)) merged.push_back(std::move(d));
    }
    std::sort(merged.begin(), merged.end(), newer_first);
    if (merged.size() > limit) merged.resize(limit);
    return merged;
}

DecisionLogStats DecisionLog::stats() const {
    std::lock_guard lock(impl_->mutex);
    DecisionLogStats out = impl_->counters;
    out.queued = impl_->queued();
    return out;
}

void DecisionLog::flush(Duration timeout) {
    Impl& s = *impl_;
    if (s.options.path.empty()) return;
    std::unique_lock lock(s.mutex);
    s.wake_writer.notify_one();
    s.written.wait_for(lock, timeout, [&] { return !s.has_queued() && s.in_flight == 0; });
}

Result<std::vector<Decision>> read_decisions(const std::string& path,
                                             std::optional<WallClock::time_point> since,
                                             std::size_t limit) {
    auto db = decision_log::schema::open_for_reading(path, kReaderBusyTimeout);
    if (!db.ok()) return db.error();
    return decision_log::store::select_decisions(db->get(), since, limit);
}

}  // namespace tuner
