// tunerctl: the command-line companion of tunerd. Each command is one row of kCommands (name,
// usage, summary, handler); exit codes follow sysexits: 0 ok, 64 usage, 69 daemon unreachable.
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/config.hpp"
#include "policies/seed_formula.hpp"
#include "probes/prober.hpp"
#include "tuner/probe_report.hpp"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitUsage = 64;  // EX_USAGE

using Args = std::span<const std::string_view>;

struct Command {
    std::string_view name;
    std::string_view usage;  // the arguments after the command's name
    std::string_view summary;
    int (*run)(Args args);
};

int usage_error(std::string_view command, std::string_view usage, const std::string& message) {
    std::fprintf(stderr, "tunerctl %.*s: %s\nusage: tunerctl %.*s %.*s\n",
                 static_cast<int>(command.size()), command.data(), message.c_str(),
                 static_cast<int>(command.size()), command.data(), static_cast<int>(usage.size()),
                 usage.data());
    return kExitUsage;
}

constexpr std::string_view kProbeUsage = "[--json] [--pid N]";

// `tunerctl probe`: what the probes see for a process (default: tunerctl itself, i.e. the
// cgroup it was started in) and what the seed formula makes of it with the default config.
int run_probe(Args args) {
    bool json = false;
    pid_t pid = ::getpid();
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string_view arg = args[i];
        std::string_view pid_text;
        if (arg == "--json") {
            json = true;
            continue;
        }
        if (arg == "--pid") {
            if (i + 1 == args.size())
                return usage_error("probe", kProbeUsage, "--pid needs a number");
            pid_text = args[++i];
        } else if (arg.starts_with("--pid=")) {
            pid_text = arg.substr(6);
        } else {
            return usage_error("probe", kProbeUsage,
                               "unknown argument \"" + std::string(arg) + "\"");
        }
        int value = 0;
        const auto [end, ec] =
            std::from_chars(pid_text.data(), pid_text.data() + pid_text.size(), value);
        if (ec != std::errc{} || end != pid_text.data() + pid_text.size() || value <= 0) {
            return usage_error(
                "probe", kProbeUsage,
                "--pid needs a positive number, not \"" + std::string(pid_text) + "\"");
        }
        if (::kill(value, 0) != 0 && errno == ESRCH) {
            return usage_error("probe", kProbeUsage,
                               "no process with pid " + std::to_string(value));
        }
        pid = value;
    }

    // One sample, so PSS is read now rather than on a later cycle.
    tuner::probes::Prober prober(tuner::probes::ProbeRoots{}, pid, /*pss_every=*/1);
    tuner::Snapshot snapshot;
    prober.sample(snapshot, {});
    const tuner::Config config;  // the lead adds --config FILE; until then the built-in defaults
    const auto inputs = tuner::policies::seed_inputs(snapshot, config);
    const auto seed = tuner::policies::seed_formula(inputs);
    const std::string out = json ? tuner::report::probe_json(snapshot, inputs, seed).dump(2) + "\n"
                                 : tuner::report::probe_text(snapshot, seed);
    std::fwrite(out.data(), 1, out.size(), stdout);
    return kExitOk;
}

constexpr Command kCommands[] = {
    {"probe", kProbeUsage,
     "the CPU, memory and pressure this machine really offers (cgroup-aware) and the seed "
     "formula's worker count",
     run_probe},
};

void print_usage(std::FILE* to) {
    std::fprintf(to, "usage: tunerctl <command> [arguments]\n\ncommands:\n");
    for (const auto& c : kCommands) {
        std::fprintf(to, "  %.*s %.*s\n      %.*s\n", static_cast<int>(c.name.size()),
                     c.name.data(), static_cast<int>(c.usage.size()), c.usage.data(),
                     static_cast<int>(c.summary.size()), c.summary.data());
    }
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
    for (const auto& command : kCommands) {
        if (command.name == args[0]) return command.run(Args(args).subspan(1));
    }
    std::fprintf(stderr, "tunerctl: unknown command \"%.*s\"\n\n", static_cast<int>(args[0].size()),
                 args[0].data());
    print_usage(stderr);
    return kExitUsage;
}
