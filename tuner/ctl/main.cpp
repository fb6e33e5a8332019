// tunerctl: the command-line companion of tunerd. Each command is one row of kCommands (name,
// usage, summary, the options it takes, handler; handlers in ctl_*_commands.cpp); exit codes
// follow sysexits (tuner/ctl/args.hpp): 0 ok, 64 usage, 69 daemon unreachable, 78 bad config.
#include <cstdio>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "tuner/build_info.hpp"
#include "tuner/ctl/commands.hpp"

namespace {

using namespace tuner::ctl;

struct Command {
    std::string_view name;
    std::string_view usage;  // the arguments after the command's name
    std::string_view summary;
    ArgSpec spec;
    int (*run)(const Invocation& inv);
};

// Every command also takes --config FILE; the ones that ask the daemon take --admin URL and
// --timeout DURATION.
const std::vector<Command>& commands() {
    static const std::vector<Command> table = {
        {"status",
         "[--json] [--admin URL] [--timeout 10s]",
         "the daemon's health, workers, limits, latency and last decisions",
         {.admin = true},
         run_status},
        {"decisions",
         "[--since T] [--limit N] [--db FILE] [--json] [--admin URL]",
         "the decision log, newest first (T: RFC 3339 or Unix seconds); --db reads the SQLite "
         "file without a daemon",
         {.value_options = {"--since", "--limit", "--db"}, .admin = true},
         run_decisions},
        {"workers",
         "[--json] [--admin URL]",
         "the worker processes and their state",
         {.admin = true},
         run_workers},
        {"target",
         "N | --release [--json] [--admin URL]",
         "pin the pool at N workers, or hand control back to the policy",
         {.flag_options = {"--release"}, .max_positional = 1, .admin = true},
         run_target},
        {"optimize",
         "[--json] [--admin URL]",
         "run a control cycle now and print its plan",
         {.admin = true},
         run_optimize},
        {"restart",
         "[--wait] [--json] [--admin URL]",
         "replace every worker, one at a time, with one running the current config and code "
         "(the config file is reread first); --wait follows it to the end",
         {.flag_options = {"--wait"}, .admin = true},
         run_restart},
        {"cache",
         "[stats | clear] [--json] [--admin URL]",
         "the front's micro-cache: its counters, or empty it",
         {.max_positional = 1, .admin = true},
         run_cache},
        {"probe",
         "[--json] [--pid N]",
         "the CPU, memory and pressure this machine really offers (cgroup-aware) and the seed "
         "formula's worker count",
         {.value_options = {"--pid"}},
         run_probe},
        {"recommend",
         "[--json]",
         "a dry run on this machine, no daemon needed: workers, memory ceiling, database pools "
         "and PostgreSQL settings beside their current values, each with its reason",
         {},
         run_recommend},
        {"rollback",
         "--postgres",
         "restore the PostgreSQL settings tunerd changed (database.admin_url_file)",
         {.flag_options = {"--postgres"}, .json = false},
         run_rollback},
    };
    return table;
}

void print_usage(std::FILE* to) {
    std::fprintf(to,
                 "usage: tunerctl <command> [arguments] [--config FILE]\n"
                 "       tunerctl <command> --help | tunerctl --version\n\ncommands:\n");
    for (const auto& c : commands()) {
        std::fprintf(to, "  %.*s %.*s\n      %.*s\n", static_cast<int>(c.name.size()),
                     c.name.data(), static_cast<int>(c.usage.size()), c.usage.data(),
                     static_cast<int>(c.summary.size()), c.summary.data());
    }
    std::fprintf(to,
                 "\n--config FILE: default /etc/tunerd/tunerd.toml if present, else built-in "
                 "defaults.\n--admin URL: default from the config's admin.listen (port 0: "
                 "state_dir/listen.json).\nExit status: 0 ok, 1 the daemon answered with an error, "
                 "64 usage, 66 --db file unreadable,\n69 daemon (or PostgreSQL) unreachable, 77 "
                 "token refused, 78 bad config.\n");
}

int run_command(const Command& command, Args args) {
    for (const auto arg : args) {
        if (arg == "--help" || arg == "-h") {
            std::printf("usage: tunerctl %.*s %.*s [--config FILE]\n  %.*s\n",
                        static_cast<int>(command.name.size()), command.name.data(),
                        static_cast<int>(command.usage.size()), command.usage.data(),
                        static_cast<int>(command.summary.size()), command.summary.data());
            return kExitOk;
        }
    }
    auto parsed = parse_args(args, command.spec);
    Invocation inv{command.name, command.usage, {}, {}, std::cout, std::cerr};
    if (!parsed) return inv.usage_error(parsed.error().to_string());
    inv.options = std::move(*parsed);
    auto config = load_ctl_config(inv.options, std::cerr);
    if (const int* code = std::get_if<int>(&config)) return *code;
    inv.config = std::move(std::get<tuner::Config>(config));
    return command.run(inv);
}

}  // namespace

int main(int argc, char** argv) {
    const std::vector<std::string_view> args(argv + 1, argv + argc);
    if (args.empty()) {
        print_usage(stderr);
        return kExitUsage;
    }
    if (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
        print_usage(stdout);
        return kExitOk;
    }
    if (args[0] == "--version") {
        std::printf("tunerctl %s (%s, %s)\n", tuner::build::version, tuner::build::revision(),
                    tuner::build::build_type);
        return kExitOk;
    }
    for (const auto& command : commands()) {
        if (command.name == args[0]) return run_command(command, Args(args).subspan(1));
    }
    std::fprintf(stderr, "tunerctl: unknown command \"%.*s\"\n\n", static_cast<int>(args[0].size()),
                 args[0].data());
    print_usage(stderr);
    return kExitUsage;
}
