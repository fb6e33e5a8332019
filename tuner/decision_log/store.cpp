// Rows of the decision log (see store.hpp and the schema in schema.cpp).
#include "tuner/decision_log/store.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <limits>

#include "tuner/decision_log/timestamps.hpp"

namespace tuner::decision_log::store {
namespace {

constexpr auto kMaxInt64 = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());

// SQLite integers are signed 64-bit; ids and plan ids stay far below 2^63.
std::int64_t as_int64(std::uint64_t value) {
    return static_cast<std::int64_t>(value);
}

void bind_value(sqlite::Statement& stmt, int index, const KnobValue& value) {
    if (const auto* c = std::get_if<Count>(&value)) {
        stmt.bind(index, c->value);
    } else if (const auto* b = std::get_if<ByteSize>(&value)) {
        // Sizes above 2^63 − 1 (rare "unlimited" sentinels) do not fit an INTEGER: keep digits.
        if (b->bytes <= kMaxInt64)
            stmt.bind(index, as_int64(b->bytes));
        else
            stmt.bind(index, std::string_view(std::to_string(b->bytes)));
    } else if (const auto* s = std::get_if<Seconds>(&value)) {
        stmt.bind(index, s->value);
    } else if (const auto* t = std::get_if<Text>(&value)) {
        stmt.bind(index, std::string_view(t->value));
    } else {
        stmt.bind_null(index);
    }
}

// One type for the pair, or "old,new" when both are set and differ.
std::string value_type_of(const KnobValue& old_value, const KnobValue& new_value) {
    const std::string old_type = value_type(old_value);
    const std::string new_type = value_type(new_value);
    if (old_type == new_type || old_type == "none") return new_type;
    if (new_type == "none") return old_type;
    return old_type + "," + new_type;
}

Result<KnobValue> read_value(const sqlite::Statement& row, int column, std::string_view type) {
    if (row.is_null(column) || type == "none") return KnobValue{};
    if (type == "count") return KnobValue{Count{row.int64(column)}};
    if (type == "seconds") return KnobValue{Seconds{row.real(column)}};
    if (type == "text") return KnobValue{Text{row.text(column)}};
    if (type == "bytes") {
        if (!row.is_text(column)) {
            return KnobValue{ByteSize{static_cast<std::uint64_t>(row.int64(column))}};
        }
        const std::string digits = row.text(column);
        char* end = nullptr;
        errno = 0;
        const unsigned long long bytes = std::strtoull(digits.c_str(), &end, 10);
        if (errno != 0 || end == digits.c_str() || *end != '\0') {
            return Error{"not a byte count: \"" + digits + "\"", ""};
        }
        return KnobValue{ByteSize{bytes}};
    }
    return Error{"unknown value_type \"" + std::string(type) + "\"", ""};
}

Result<Outcome> parse_outcome(const std::string& text) {
    for (const Outcome o : {Outcome::pending, Outcome::applied, Outcome::dry_run,
                            Outcome::overridden, Outcome::failed, Outcome::unchanged}) {
        if (text == to_string(o)) return o;
    }
    return Error{"unknown outcome \"" + text + "\"", ""};
}

void bind_run_id(sqlite::Statement& stmt, int index, std::int64_t run_id) {
    if (run_id == 0)
        stmt.bind_null(index);
    else
        stmt.bind(index, run_id);
}

Result<std::int64_t> max_id(sqlite3* db, const char* sql, const char* doing) {
    auto value = sqlite::query_int(db, sql, doing);
    if (!value.ok()) return value.error();
    return value->value_or(0);
}

// Reads the row SELECT_DECISION's columns describe.
Result<Decision> decision_from_row(const sqlite::Statement& row) {
    Decision d;
    d.id = static_cast<std::uint64_t>(row.int64(0));
    const auto where = [&](Error e) {
        e.what = "decision " + std::to_string(d.id) + ": " + e.what;
        return e;
    };
    auto time = parse_rfc3339(row.text(1));
    if (!time.ok()) return where(time.error());
    d.time = *time;
    d.plan_id = static_cast<std::uint64_t>(row.int64(2));
    d.subsystem = row.text(3);
    d.knob = row.text(4);
    const std::string type = row.text(5);
    const auto comma = type.find(',');
    const std::string old_type = comma == std::string::npos ? type : type.substr(0, comma);
    const std::string new_type = comma == std::string::npos ? type : type.substr(comma + 1);
    auto old_value = read_value(row, 6, old_type);
    if (!old_value.ok()) return where(old_value.error());
    auto new_value = read_value(row, 7, new_type);
    if (!new_value.ok()) return where(new_value.error());
    d.old_value = std::move(*old_value);
    d.new_value = std::move(*new_value);
    d.rule = row.text(8);
    d.reason = row.text(9);
    d.inputs_json = row.text(10);
    auto outcome = parse_outcome(row.text(11));
    if (!outcome.ok()) return where(outcome.error());
    d.outcome = *outcome;
    d.error = row.text(12);
    return d;
}

}  // namespace

Status insert_run(sqlite3* db, const RunRow& run) {
    auto stmt = sqlite::Statement::prepare(
        db,
        "INSERT INTO runs (id, started, version, config_hash, config_text) "
        "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(id) DO NOTHING");
    if (!stmt.ok()) return stmt.error();
    stmt->bind(1, run.info.run_id)
        .bind(2, std::string_view(format_rfc3339_ms(run.info.started)))
        .bind(3, std::string_view(run.info.version))
        .bind(4, std::string_view(run.info.config_hash))
        .bind(5, std::string_view(run.config_text));
    return stmt->run("inserting run " + std::to_string(run.info.run_id));
}

Status upsert_decision(sqlite3* db, std::int64_t run_id, const Decision& d) {
    auto stmt = sqlite::Statement::prepare(
        db,
        "INSERT INTO decisions (id, run_id, time, plan_id, subsystem, knob, value_type, "
        "old_value, new_value, rule, reason, inputs_json, outcome, error) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) "
        "ON CONFLICT(id) DO UPDATE SET outcome = excluded.outcome, error = excluded.error "
        "WHERE excluded.outcome != 'pending'");
    if (!stmt.ok()) return stmt.error();
    stmt->bind(1, as_int64(d.id));
    bind_run_id(*stmt, 2, run_id);
    stmt->bind(3, std::string_view(format_rfc3339_ms(d.time)))
        .bind(4, as_int64(d.plan_id))
        .bind(5, std::string_view(d.subsystem))
        .bind(6, std::string_view(d.knob))
        .bind(7, std::string_view(value_type_of(d.old_value, d.new_value)));
    bind_value(*stmt, 8, d.old_value);
    bind_value(*stmt, 9, d.new_value);
    stmt->bind(10, std::string_view(d.rule))
        .bind(11, std::string_view(d.reason))
        .bind(12, std::string_view(d.inputs_json))
        .bind(13, std::string_view(to_string(d.outcome)))
        .bind(14, std::string_view(d.error));
    return stmt->run("inserting decision " + std::to_string(d.id));
}

Status update_outcome(sqlite3* db, std::uint64_t id, Outcome outcome, const std::string& error) {
    auto stmt = sqlite::Statement::prepare(
        db, "UPDATE decisions SET outcome = ?2, error = ?3 WHERE id = ?1");
    if (!stmt.ok()) return stmt.error();
    stmt->bind(1, as_int64(id))
        .bind(2, std::string_view(to_string(outcome)))
        .bind(3, std::string_view(error));
    return stmt->run("recording the outcome of decision " + std::to_string(id));
}

Status insert_sample(sqlite3* db, std::int64_t run_id, const Sample& s) {
    auto stmt = sqlite::Statement::prepare(
        db,
        "INSERT INTO samples (run_id, time, workers_target, workers_ready, threads, rps, p95_ms, "
        "queue_wait_p95_ms, memory_usage_bytes, working_set_bytes, memory_limit_bytes, "
        "cpu_utilisation, psi_cpu_some_avg10, psi_memory_some_avg10) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)");
    if (!stmt.ok()) return stmt.error();
    bind_run_id(*stmt, 1, run_id);
    stmt->bind(2, std::string_view(format_rfc3339_ms(s.time)))
        .bind(3, static_cast<std::int64_t>(s.workers_target))
        .bind(4, static_cast<std::int64_t>(s.workers_ready))
        .bind(5, static_cast<std::int64_t>(s.threads))
        .bind(6, s.rps)
        .bind(7, s.p95_ms)
        .bind(8, s.queue_wait_p95_ms)
        .bind(9, as_int64(s.memory_usage_bytes))
        .bind(10, as_int64(s.working_set_bytes))
        .bind(11, as_int64(s.memory_limit_bytes))
        .bind(12, s.cpu_utilisation)
        .bind(13, s.psi_cpu_some_avg10)
        .bind(14, s.psi_memory_some_avg10);
    return stmt->run("inserting a sample");
}

Status delete_older_than(sqlite3* db, WallClock::time_point cutoff, std::int64_t keep_run_id) {
    const std::string cutoff_text = format_rfc3339_ms(cutoff);
    const std::string doing = "deleting entries older than " + cutoff_text + " (retention)";
    // NOT IN over the run ids present: SQLite builds each list once, so this stays linear.
    constexpr const char* statements[] = {
        "DELETE FROM decisions WHERE time < ?1",
        "DELETE FROM samples WHERE time < ?1",
        "DELETE FROM runs WHERE started < ?1 AND id != ?2"
        " AND id NOT IN (SELECT run_id FROM decisions WHERE run_id IS NOT NULL)"
        " AND id NOT IN (SELECT run_id FROM samples WHERE run_id IS NOT NULL)",
    };
    for (const char* sql : statements) {
        auto stmt = sqlite::Statement::prepare(db, sql);
        if (!stmt.ok()) return stmt.error();
        stmt->bind(1, std::string_view(cutoff_text));
        if (std::string_view(sql).find("?2") != std::string_view::npos) stmt->bind(2, keep_run_id);
        if (auto done = stmt->run(doing); !done.ok()) return done;
    }
    return {};
}

Result<std::vector<Decision>> select_decisions(sqlite3* db,
                                               std::optional<WallClock::time_point> since,
                                               std::size_t limit) {
    std::vector<Decision> out;
    if (limit == 0) return out;
    std::string sql =
        "SELECT id, time, plan_id, subsystem, knob, value_type, old_value, new_value, rule, "
        "reason, inputs_json, outcome, error FROM decisions";
    if (since) sql += " WHERE time >= ?2";
    sql += " ORDER BY time DESC, id DESC LIMIT ?1";
    auto stmt = sqlite::Statement::prepare(db, sql);
    if (!stmt.ok()) return stmt.error();
    stmt->bind(1, static_cast<std::int64_t>(
                      std::min<std::size_t>(limit, std::numeric_limits<std::int64_t>::max())));
    if (since) stmt->bind(2, std::string_view(format_rfc3339_ms(*since)));
    for (;;) {
        auto row = stmt->step("reading decisions");
        if (!row.ok()) return row.error();
        if (!*row) break;
        auto decision = decision_from_row(*stmt);
        if (!decision.ok()) {
            Error e = decision.error();
            e.where = sqlite::database_file(db);
            return e;
        }
        out.push_back(std::move(*decision));
    }
    return out;
}

Result<std::int64_t> max_run_id(sqlite3* db) {
    return max_id(db, "SELECT max(id) FROM runs", "reading the last run id");
}

Result<std::int64_t> max_decision_id(sqlite3* db) {
    return max_id(db, "SELECT max(id) FROM decisions", "reading the last decision id");
}

}  // namespace tuner::decision_log::store
