// The tunerd daemon: wires the parts together and runs them (DESIGN "Threads of the daemon"):
// the I/O thread (front, admin listener, pool supervisor, signals) is the main thread; the
// control loop, the decision-log writer and the database actuator have their own threads.
#pragma once

#include <string>

#include "model/config.hpp"
#include "tuner/daemon/systemd.hpp"

namespace tuner {

// Exit statuses (sysexits.h), as DESIGN "Interfaces" lists them.
inline constexpr int kExitOk = 0;
inline constexpr int kExitUsage = 64;
inline constexpr int kExitUnavailable = 69;  // no worker became ready at start
inline constexpr int kExitSoftware = 70;
inline constexpr int kExitOsErr = 71;       // cannot bind a listener
inline constexpr int kExitCantCreate = 73;  // cannot create the state directory
inline constexpr int kExitConfig = 78;

struct DaemonOptions {
    std::string config_path;  // the file SIGHUP re-reads; "" = built-in defaults only
    std::string self_exe;     // this binary, for builtin:demo workers
    bool log_level_from_command_line = false;  // --log-level wins over reloads
    bool dry_run_from_command_line = false;    // --dry-run too
    // What systemd passed: listening sockets, NOTIFY_SOCKET, WATCHDOG_USEC (taken in main).
    systemd::Environment systemd;
    // Test-only (TUNERD_TEST_HOOKS=1 with TUNERD_TEST_STALL_CONTROL_MS): each on-demand control
    // cycle first holds the control thread this long. Zero in every real run.
    Duration test_stall_control{0};
};

// Runs until SIGTERM/SIGINT; returns the process exit status.
int run_daemon(Config config, const DaemonOptions& options);

}  // namespace tuner
