// tunerctl's commands: each takes the parsed command line and the loaded config, writes to
// `out`/`err` and returns the exit status (args.hpp). main.cpp's table names them.
#pragma once

#include <initializer_list>
#include <ostream>
#include <string>
#include <string_view>
#include <variant>

#include "model/config.hpp"
#include "tuner/ctl/args.hpp"
#include "tuner/ctl/client.hpp"

namespace tuner::ctl {

struct Invocation {
    std::string_view command;  // "status"
    std::string_view usage;    // its arguments, for usage errors
    CtlOptions options;
    Config config;  // --config FILE, else the default file if present, else built-in defaults
    std::ostream& out;
    std::ostream& err;

    // "tunerctl <command>: <message>" and the usage line on err; returns 64.
    int usage_error(const std::string& message) const;
    // "tunerctl <command>: <message>" on err; returns `exit_code`.
    int fail(int exit_code, const std::string& message) const;
    // JSON (with --json) or text on out; returns 0.
    int print(const nlohmann::json& json, const std::string& text) const;
};

// The config tunerctl works with: --config FILE, else the default path when it exists, else
// the built-in defaults. On errors prints every one on `err` and returns 78.
std::variant<Config, int> load_ctl_config(const CtlOptions& options, std::ostream& err);

// The admin API client of an invocation: --admin URL or the config's admin.listen, the token of
// admin.token_file. On failure prints why and returns the exit status (64, 69 or 78).
std::variant<AdminClient, int> admin_client(const Invocation& inv);

// One admin API request: the answer when its status is one of `accepted`, else the printed
// failure's exit status: 69 unreachable or 503, 77 refused token, 64 a 400 (the daemon rejected
// an argument), 1 anything else.
std::variant<AdminAnswer, int> admin_call(const Invocation& inv, const AdminClient& client,
                                          std::string_view method, std::string_view target,
                                          const std::string& body = {},
                                          std::initializer_list<int> accepted = {200});

// Through the daemon's admin API.
int run_status(const Invocation& inv);
int run_decisions(const Invocation& inv);  // or, with --db FILE, the SQLite file itself
int run_workers(const Invocation& inv);
int run_target(const Invocation& inv);
int run_optimize(const Invocation& inv);
// A rolling restart of the workers (the daemon rereads its config file first); --wait follows
// it to the end: 0 when every worker is new, 1 when it halted.
int run_restart(const Invocation& inv);
int run_cache(const Invocation& inv);  // stats | clear

// On this machine, no daemon needed.
int run_probe(const Invocation& inv);
int run_recommend(const Invocation& inv);
int run_rollback(const Invocation& inv);

}  // namespace tuner::ctl
