// The config rules that involve more than one key (docs/configuration.md "Rules between keys").
// Each is checked on the effective config, after every key has been read.
#include <initializer_list>
#include <set>
#include <string>
#include <tuple>

#include "model/knobs.hpp"
#include "tuner/config/keys.hpp"

namespace tuner::config::detail {
namespace {

class Rules {
public:
    // Taken before any rule runs: the keys whose values were refused, not those a rule flagged.
    Rules(const KeyPositions& positions, IssueSink& sink)
        : positions_(positions), sink_(sink), refused_(sink.keys_with_issues()) {}

    // Reports `message` unless `holds`. The issue points at whichever of `keys` the file set
    // last (the key that broke the rule, reading top to bottom). A rule over a key whose value
    // was already refused is skipped: it would only repeat that error with a default value.
    void require(std::initializer_list<std::string_view> keys, bool holds,
                 const std::string& message) {
        if (holds) return;
        for (const auto key : keys) {
            if (refused_.find(key) != refused_.end()) return;
        }
        std::string_view at = *keys.begin();
        KeyPosition where;
        for (const auto key : keys) {
            const auto it = positions_.find(key);
            if (it == positions_.end()) continue;
            if (std::tie(it->second.line, it->second.column) >=
                std::tie(where.line, where.column)) {
                where = it->second;
                at = key;
            }
        }
        sink_.add(std::string(at), where.line, where.column, message);
    }

    [[nodiscard]] bool file_sets(std::string_view key) const {
        return positions_.find(key) != positions_.end();
    }

private:
    const KeyPositions& positions_;
    IssueSink& sink_;
    const std::set<std::string, std::less<>> refused_;
};

std::string text(Duration d) {
    return quoted(format_duration(d));
}

}  // namespace

void check_cross_key_rules(const Config& config, const KeyPositions& positions, IssueSink& sink) {
    Rules rules(positions, sink);
    const auto& workers = config.workers;
    const auto& database = config.database;

    // DESIGN "Interfaces": a non-loopback admin listener needs a bearer token.
    rules.require({"admin.listen", "admin.token_file"},
                  is_loopback_listen(config.admin.listen) || !config.admin.token_file.empty(),
                  "admin.listen " + quoted(config.admin.listen) +
                      " is reachable from other machines: set admin.token_file (a bearer "
                      "token) or listen on 127.0.0.1");

    const bool bounds_ordered = workers.min <= workers.max;
    rules.require({"workers.min", "workers.max"}, bounds_ordered,
                  "workers.min " + std::to_string(workers.min) + " is above workers.max " +
                      std::to_string(workers.max));

    // count only matters in fixed mode; elsewhere it is checked when the file sets it. (The keys
    // workers.count and workers.threads are the knobs of the same names.)
    if (bounds_ordered &&
        (workers.mode == PoolMode::fixed || rules.file_sets(knob::workers_count.name))) {
        rules.require({knob::workers_count.name, "workers.min", "workers.max", "workers.mode"},
                      workers.count >= workers.min && workers.count <= workers.max,
                      "workers.count " + std::to_string(workers.count) +
                          " is outside workers.min..workers.max (" + std::to_string(workers.min) +
                          ".." + std::to_string(workers.max) + ")");
    }

    rules.require({knob::workers_threads.name, "workers.threads_max"},
                  workers.effective_threads_max() >= workers.threads,
                  "workers.threads_max " + std::to_string(workers.effective_threads_max()) +
                      " is below workers.threads " + std::to_string(workers.threads));

    // With a preload tunerd forks the workers itself: a command set beside it would be ignored.
    rules.require({"workers.command", "workers.preload"},
                  workers.preload.empty() || !rules.file_sets("workers.command"),
                  "workers.preload " + quoted(workers.preload) +
                      " starts the workers from tunerd's preloader, so workers.command is not "
                      "used: remove one of the two");

    rules.require({"workers.max_requests", "workers.max_requests_jitter"},
                  workers.max_requests_jitter == 0 || workers.max_requests > 0,
                  "workers.max_requests_jitter " + std::to_string(workers.max_requests_jitter) +
                      " needs workers.max_requests > 0 (with max_requests = 0 no worker is "
                      "recycled, so there is nothing to spread)");

    // The window must hold at least one control cycle's worth of statistics.
    rules.require({"policy.interval", "policy.window"},
                  config.policy.window >= config.policy.interval,
                  "policy.window " + text(config.policy.window) +
                      " is shorter than policy.interval " + text(config.policy.interval));

    rules.require({"database.postgres", "database.admin_url_file"},
                  database.postgres != PostgresMode::apply || !database.admin_url_file.empty(),
                  "database.postgres = \"apply\" needs database.admin_url_file (a connection "
                  "allowed to run ALTER SYSTEM)");

    // A remote server's memory cannot be probed from here; tuning it needs the number.
    rules.require({"database.postgres", "database.location", "database.memory"},
                  database.location != DatabaseLocation::remote ||
                      database.postgres == PostgresMode::off || database.memory_bytes > 0,
                  std::string("database.location = \"remote\" with postgres = \"") +
                      to_string(database.postgres) +
                      "\" needs database.memory (the memory of the PostgreSQL server)");
}

}  // namespace tuner::config::detail
