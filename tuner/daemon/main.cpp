// tunerd's entry point: command line, config, logging, then the daemon. The same binary serves
// as the built-in demo app's worker (`tunerd demo-worker ...`, started by tunerd itself).
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

#include "server/demo/demo_worker.hpp"
#include "tuner/build_info.hpp"
#include "tuner/config/load.hpp"
#include "tuner/daemon/logging.hpp"
#include "tuner/daemon/tunerd.hpp"

namespace {

constexpr std::string_view kUsage =
    "usage: tunerd [--config FILE] [--check-config] [--dry-run] [--log-level LEVEL] [--version]\n"
    "\n"
    "  --config FILE      TOML config (default /etc/tunerd/tunerd.toml if present, else built-in "
    "defaults)\n"
    "  --check-config     validate the config, print the effective config (or every error) and "
    "exit\n"
    "  --dry-run          decide and log, never resize (policy.dry_run = true)\n"
    "  --log-level LEVEL  trace, debug, info, warn, error, critical or off (overrides log.level)\n"
    "  --version          print the version and exit\n"
    "\n"
    "Exit status: 0 stopped cleanly, 64 bad command line, 69 no worker became ready,\n"
    "71 cannot bind a listener, 73 cannot create the state directory, 78 bad config.\n";

std::string self_executable(const char* argv0) {
    char buf[PATH_MAX];
    const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n > 0) return std::string(buf, static_cast<std::size_t>(n));
    return std::filesystem::absolute(argv0).string();
}

// The test-only hook of docs/operations.md ("Test hooks"): read only when TUNERD_TEST_HOOKS=1
// is also set, so a stray TUNERD_TEST_STALL_CONTROL_MS alone does nothing. At most 60 s.
tuner::Duration test_stall_control() {
    const char* hooks = std::getenv("TUNERD_TEST_HOOKS");
    const char* stall = std::getenv("TUNERD_TEST_STALL_CONTROL_MS");
    const bool on = hooks && std::string_view(hooks) == "1" && stall;
    const long ms = on ? std::strtol(stall, nullptr, 10) : 0;
    ::unsetenv("TUNERD_TEST_HOOKS");  // not for the workers
    ::unsetenv("TUNERD_TEST_STALL_CONTROL_MS");
    return tuner::Duration(std::clamp(ms, 0L, 60'000L));
}

int usage_error(const std::string& message) {
    std::fprintf(stderr, "tunerd: %s\n%.*s", message.c_str(), static_cast<int>(kUsage.size()),
                 kUsage.data());
    return tuner::kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc >= 2 && std::string_view(argv[1]) == "demo-worker") {
        auto options = tuner::demo::parse_demo_args(argc - 1, argv + 1);
        if (!options) {
            std::fprintf(stderr, "tunerd demo-worker: %s\n", options.error().to_string().c_str());
            return tuner::kExitUsage;
        }
        return tuner::demo::run_demo_worker(*options);
    }

    std::string config_path;
    bool check_only = false;
    bool dry_run = false;
    std::string log_level;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        auto value = [&](std::string_view flag) -> const char* {
            if (arg.size() > flag.size() && arg.substr(0, flag.size()) == flag &&
                arg[flag.size()] == '=') {
                return argv[i] + flag.size() + 1;
            }
            if (i + 1 < argc) return argv[++i];
            return nullptr;
        };
        if (arg == "--help" || arg == "-h") {
            std::fwrite(kUsage.data(), 1, kUsage.size(), stdout);
            return tuner::kExitOk;
        } else if (arg == "--version") {
            std::printf("tunerd %s (%s, %s)\n", tuner::build::version, tuner::build::revision(),
                        tuner::build::build_type);
            return tuner::kExitOk;
        } else if (arg == "--check-config") {
            check_only = true;
        } else if (arg == "--dry-run") {
            dry_run = true;
        } else if (arg == "--config" || arg.rfind("--config=", 0) == 0) {
            const char* v = value("--config");
            if (!v || !*v) return usage_error("--config needs a file");
            config_path = v;
        } else if (arg == "--log-level" || arg.rfind("--log-level=", 0) == 0) {
            const char* v = value("--log-level");
            if (!v || !*v) return usage_error("--log-level needs a level");
            log_level = v;
        } else {
            return usage_error("unknown argument \"" + std::string(arg) + "\"");
        }
    }

    tuner::config::LoadedConfig loaded;
    if (config_path.empty() && std::filesystem::exists(tuner::config::default_config_path())) {
        config_path = tuner::config::default_config_path();
    }
    if (config_path.empty()) {
        loaded.config = tuner::Config{};
    } else {
        loaded = tuner::config::load_config_file(config_path);
    }
    if (!log_level.empty()) {
        loaded.config.log.level = log_level;
        static const std::string_view kLevels[] = {"trace", "debug",    "info", "warn",
                                                   "error", "critical", "off"};
        if (std::find(std::begin(kLevels), std::end(kLevels), log_level) == std::end(kLevels)) {
            return usage_error(
                "--log-level must be one of trace, debug, info, warn, error, critical, off; not "
                "\"" +
                log_level + "\"");
        }
    }
    if (dry_run) loaded.config.policy.dry_run = true;
    if (!loaded.ok()) {
        for (const auto& issue : loaded.errors)
            std::fprintf(stderr, "tunerd: %s\n", issue.to_string().c_str());
        std::fprintf(stderr, "tunerd: %zu error%s in the config; nothing started (exit %d)\n",
                     loaded.errors.size(), loaded.errors.size() == 1 ? "" : "s",
                     tuner::kExitConfig);
        return tuner::kExitConfig;
    }
    if (check_only) {
        std::string restart_only;
        for (const auto& key : tuner::config::restart_only_keys())
            restart_only += (restart_only.empty() ? "" : ", ") + key;
        std::printf(
            "# %s: valid\n# changes only on restart (a reload keeps the running value): %s\n%s",
            loaded.config.source.c_str(), restart_only.c_str(),
            tuner::config::format_config(loaded.config).c_str());
        return tuner::kExitOk;
    }

    tuner::DaemonOptions options;
    // Before any thread exists: the variables are removed from the environment here.
    options.systemd = tuner::systemd::take_environment();
    options.test_stall_control = test_stall_control();
    tuner::setup_logging(loaded.config.log.level);
    options.config_path = config_path;
    options.self_exe = self_executable(argv[0]);
    options.log_level_from_command_line = !log_level.empty();
    options.dry_run_from_command_line = dry_run;
    return tuner::run_daemon(std::move(loaded.config), options);
}
