// tunerctl's commands that need no daemon: probe (what this machine offers), recommend (what
// tunerd would set on it) and rollback --postgres (see commands.hpp).
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "policies/seed_formula.hpp"
#include "probes/prober.hpp"
#include "tuner/build_info.hpp"
#include "tuner/config/load.hpp"
#include "tuner/ctl/commands.hpp"
#include "tuner/ctl/format.hpp"
#include "tuner/ctl/recommend.hpp"
#include "tuner/decision_log/log.hpp"
#include "tuner/postgres/actuator.hpp"
#include "tuner/report/probe_report.hpp"

namespace tuner::ctl {
namespace {

// One probe sample of `pid`'s cgroup; PSS is read now rather than on a later cycle.
Snapshot probe_once(pid_t pid) {
    probes::Prober prober(probes::ProbeRoots{}, pid, /*pss_every=*/1);
    Snapshot snapshot;
    prober.sample(snapshot, {});
    return snapshot;
}

// The config with state.dir resolved as the daemon resolves it (where PostgreSQL's originals and
// the decision log live).
Config with_state_dir(Config config) {
    config.state.dir = config::resolve_state_dir(config.state);
    return config;
}

}  // namespace

int run_probe(const Invocation& inv) {
    pid_t pid = ::getpid();
    if (const auto text = inv.options.value("--pid")) {
        auto parsed = parse_count(*text, "--pid", 1, 4'194'304);  // PID_MAX_LIMIT
        if (!parsed) return inv.usage_error(parsed.error().to_string());
        const auto candidate = static_cast<pid_t>(*parsed);
        if (::kill(candidate, 0) != 0 && errno == ESRCH)
            return inv.usage_error("no process with pid " + std::to_string(candidate));
        pid = candidate;
    }
    const Snapshot snapshot = probe_once(pid);
    const auto inputs = policies::seed_inputs(snapshot, inv.config);
    const auto seed = policies::seed_formula(inputs);
    return inv.print(report::probe_json(snapshot, inputs, seed),
                     report::probe_text(snapshot, seed));
}

int run_recommend(const Invocation& inv) {
    const Recommendation r = recommend(probe_once(::getpid()), with_state_dir(inv.config));
    return inv.print(r.json, r.text);
}

int run_rollback(const Invocation& inv) {
    if (!inv.options.has("--postgres"))
        return inv.usage_error("say what to roll back: --postgres (PostgreSQL's settings)");
    const Config config = with_state_dir(inv.config);
    // The originals live in the state dir; without it the lock file cannot even be opened, and
    // the likely cause is a config (or a user) other than the daemon's.
    if (!std::filesystem::is_directory(config.state.dir)) {
        return inv.fail(kExitConfig, "state.dir \"" + config.state.dir +
                                         "\" does not exist: tunerd never ran with this config "
                                         "(give the daemon's --config, or set state.dir)");
    }
    // A running daemon does it itself: its decision log records the rollback, and it knows to
    // hold off re-applying. Only when no daemon answers does tunerctl act alone.
    if (auto endpoint = admin_endpoint_from_config(config, config.state.dir);
        endpoint || inv.options.admin_url) {
        auto client_or = admin_client(inv);
        if (const int* code = std::get_if<int>(&client_or)) return *code;
        auto result = std::get<AdminClient>(client_or).call("POST", "/postgres/rollback", {});
        if (auto* answer = std::get_if<AdminAnswer>(&result)) {
            if (answer->status == 409) {
                return inv.fail(
                    kExitConfig,
                    answer->body.value("error", "the daemon has no PostgreSQL configured"));
            }
            const auto& decisions = answer->body.contains("decisions") ? answer->body["decisions"]
                                                                       : nlohmann::json::array();
            inv.print(answer->body, format_decisions(decisions));
            if (answer->status == 200) return kExitOk;
            inv.err << "tunerctl rollback --postgres: "
                    << answer->body.value("error", "a setting failed") << "\n";
            return answer->status == 503 ? kExitUnavailable : 1;
        }
        if (!std::get<AdminFailure>(result).unreachable) {
            return inv.fail(1, std::get<AdminFailure>(result).error.to_string());
        }
    }
    // No daemon: this process is the only writer of the decision log, so it records there.
    return postgres::run_rollback_cli(
        config, inv.out, inv.err, [&](const postgres::PostgresReport& report) {
            if (report.decisions.empty()) return;
            DecisionLog::Options options;
            options.path = config.state.dir + "/tunerd.db";
            DecisionLog log(options);
            log.start_run(std::string("tunerctl ") + build::version, "",
                          "tunerctl rollback --postgres");
            for (auto d : report.decisions) log.record(d);
            log.flush(std::chrono::seconds(5));
            if (!log.stats().healthy) {
                inv.err << "tunerctl rollback --postgres: the decision log could not record it: "
                        << log.stats().last_error << "\n";
            }
        });
}

}  // namespace tuner::ctl
