// tunerctl's commands that need no daemon: probe (what this machine offers), recommend (what
// tunerd would set on it) and rollback --postgres (see ctl_commands.hpp).
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "policies/seed_formula.hpp"
#include "probes/prober.hpp"
#include "tuner/config.hpp"
#include "tuner/ctl_commands.hpp"
#include "tuner/ctl_recommend.hpp"
#include "tuner/postgres.hpp"
#include "tuner/probe_report.hpp"

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
    return postgres::run_rollback_cli(config, inv.out, inv.err);
}

}  // namespace tuner::ctl
