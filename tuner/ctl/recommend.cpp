// `tunerctl recommend` (see recommend.hpp): the worker policy's first cycle on a fresh
// snapshot, exactly as the daemon starts its pool (tuner/control/control_loop.cpp initial_shape),
// plus the database section of tuner/postgres/actuator.hpp.
#include "tuner/ctl/recommend.hpp"

#include "model/knobs.hpp"
#include "policies/seed_formula.hpp"
#include "policies/worker_controller.hpp"
#include "tuner/ctl/format.hpp"
#include "tuner/postgres/actuator.hpp"
#include "tuner/report/probe_report.hpp"

namespace tuner::ctl {
namespace {

using nlohmann::json;

// "  workers.threads" is the longest label of the Machine and Workers sections.
constexpr std::size_t kLabelWidth = 18;

// The daemon sizes database pools only when the config names a database (tuner/database_tuner).
bool database_configured(const Config& config) {
    return !config.database.url_file.empty() || config.database.postgres != PostgresMode::off;
}

std::string value_text(const KnobValue& value) {
    return std::holds_alternative<std::monostate>(value) ? "-" : to_string(value);
}

}  // namespace

Recommendation recommend(const Snapshot& snapshot, const Config& config) {
    const auto seed_in = policies::seed_inputs(snapshot, config);
    const auto seed = policies::seed_formula(seed_in);
    const auto database = postgres::recommend_database(config, snapshot);

    // The pool's first cycle: no workers yet, the configured threads (initial_shape does the same).
    policies::WorkerController controller(config);
    const bool with_database = database_configured(config);
    std::optional<unsigned> max_processes_by_db;
    if (const auto& cap = database.json["db_pool"]["max_processes_by_db"];
        with_database && cap.is_number_unsigned()) {
        max_processes_by_db = cap.get<unsigned>();
        controller.set_max_processes_by_db(max_processes_by_db);
    }
    Snapshot fresh = snapshot;
    fresh.pool = PoolState{};
    fresh.pool.threads = config.workers.threads;
    const Plan plan = controller.decide(fresh);
    const json explained = controller.explain();

    unsigned workers = 0;
    unsigned threads = config.workers.threads;
    json decisions = json::array();
    std::string decision_text;
    bool threads_decided = false;
    for (const auto& d : plan.decisions) {
        if (moves(d, knob::workers_count)) workers = new_count(d).value_or(workers);
        if (moves(d, knob::workers_threads)) {
            threads = new_count(d).value_or(threads);
            threads_decided = true;
        }
        decisions.push_back({{"knob", d.knob},
                             {"value", value_text(d.new_value)},
                             {"rule", d.rule},
                             {"reason", d.reason}});
        decision_text += labelled_line(
            "  " + d.knob, value_text(d.new_value) + "  (" + d.rule + ") " + d.reason, kLabelWidth);
    }
    if (!threads_decided) {
        decision_text += labelled_line(
            "  workers.threads", std::to_string(threads) + "  (workers.threads in the config)",
            kLabelWidth);
    }
    // The seed formula's ceiling: what the budget holds at the configured memory per worker,
    // before any worker was measured (the controller learns the real size as workers run).
    const unsigned ceiling = seed.memory_ceiling;
    const std::string ceiling_reason =
        std::to_string(ceiling) + " workers fit in memory: budget " +
        format_size_approx(seed.budget_bytes) + " / " +
        format_size_approx(seed_in.per_worker_bytes) + " per worker (" +
        (seed_in.per_worker_measured ? "measured" : "workers.memory_per_worker") + ")";

    Recommendation r;
    const json cpu = report::cpu_json(snapshot.cpu);
    const json mem = report::memory_json(snapshot.memory);
    r.json = {
        {"machine",
         {{"cgroup", report::cgroup_json(snapshot.cgroup)},
          {"cpu", cpu},
          {"memory", mem},
          {"problems", snapshot.problems}}},
        {"workers",
         {{"mode", to_string(config.workers.mode)},
          {"workers", workers},
          {"threads", threads},
          {"memory_ceiling", ceiling},
          {"max_processes_by_db", max_processes_by_db ? json(*max_processes_by_db) : json(nullptr)},
          {"decisions", decisions},
          {"notes", plan.notes},
          {"seed_formula", report::seed_formula_json(seed_in, seed)},
          {"controller", explained}}},
        {"db_pool", database.json["db_pool"]},
        {"postgres", database.json["postgres"]}};

    std::string& t = r.text;
    t += "Machine (cgroup " + std::string(to_string(snapshot.cgroup.version)) +
         (snapshot.cgroup.path.empty() ? "" : " " + snapshot.cgroup.path) + ")\n";
    t += labelled_line("  cpu", format_cpu(cpu), kLabelWidth);
    t += labelled_line("  memory", format_memory(mem), kLabelWidth);
    t += "Workers (mode " + std::string(to_string(config.workers.mode)) + ": tunerd starts with " +
         std::to_string(workers) + " × " + std::to_string(threads) + " thread" +
         (threads == 1 ? "" : "s") +
         (config.workers.mode == PoolMode::adaptive ? ", then follows the traffic" : "") + ")\n";
    t += decision_text;
    t += labelled_line("  memory ceiling", ceiling_reason, kLabelWidth);
    if (max_processes_by_db) {
        t += labelled_line("  database cap",
                           std::to_string(*max_processes_by_db) +
                               " worker processes at most: the database's connection budget "
                               "(see Database)",
                           kLabelWidth);
    }
    for (const auto& note : plan.notes) t += labelled_line("  note", note, kLabelWidth);
    std::string database_text = database.text;
    if (!with_database) {
        // After the section's heading line.
        const auto heading_end = database_text.find('\n') + 1;
        database_text.insert(heading_end,
                             "  (no database in the config: what tunerd would set for a "
                             "PostgreSQL with its default settings)\n");
    }
    t += database_text;
    if (!snapshot.problems.empty()) {
        t += "Problems\n";
        for (const auto& p : snapshot.problems) t += "  " + p + "\n";
    }
    return r;
}

}  // namespace tuner::ctl
