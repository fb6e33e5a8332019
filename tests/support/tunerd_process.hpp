// Starts the real tunerd binary for integration tests: a config in a temporary directory with
// port-0 listeners, a unique environment marker every worker inherits, the bound addresses read
// from listen.json, and helpers to signal it, read its log, query the admin API and find any
// process the test left behind.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/result.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/temp_dir.hpp"

namespace tuner::test {

struct TunerdOptions {
    // TOML appended after the test defaults (listeners on port 0, state in the temp dir,
    // log level debug); a section given here must not repeat [server] listen etc. keys already
    // set — use `server`/`admin` extra lines below for those sections.
    std::string config;
    std::map<std::string, std::string> env;
    std::vector<std::string> extra_args;
    bool wait_ready = true;  // wait until /health says ok (or a worker is ready)
    std::chrono::seconds ready_timeout{30};
    // Run it inside this cgroup (a directory under the cgroup fs whose cgroup.procs takes it).
    std::string cgroup_procs_file;
    // Sent as "Authorization: Bearer <token>" with every admin request of the harness (readiness
    // included), for a config that sets admin.token_file.
    std::string admin_token;
    // Descriptors handed to tunerd as fds 3, 4, ... (in this order), as systemd's socket
    // activation passes them: the test keeps its own copies open. With `env` setting
    // LISTEN_FDS/LISTEN_FDNAMES and `pid_env` naming LISTEN_PID, tunerd adopts them.
    std::vector<int> passed_fds;
    // Variables set to tunerd's own pid, known only after the fork (LISTEN_PID, WATCHDOG_PID):
    // systemd sets them so in the child between fork and exec, and so does the harness.
    std::vector<std::string> pid_env;
};

class TunerdProcess {
public:
    explicit TunerdProcess(TunerdOptions options = {});
    ~TunerdProcess();  // SIGKILL if still running, then the leftover check's cleanup
    TunerdProcess(const TunerdProcess&) = delete;
    TunerdProcess& operator=(const TunerdProcess&) = delete;

    // Starts it and waits for listen.json (and readiness when asked). Fails the calling test
    // with the daemon's log when it does not come up.
    Status start();

    [[nodiscard]] pid_t pid() const { return pid_; }
    [[nodiscard]] const std::string& public_address() const { return public_; }
    [[nodiscard]] const std::string& admin_address() const { return admin_; }
    [[nodiscard]] const std::string& state_dir() const { return state_dir_; }
    [[nodiscard]] const std::string& config_path() const { return config_path_; }
    [[nodiscard]] const std::string& marker() const { return marker_; }
    [[nodiscard]] std::string log() const;

    // Admin API helpers: parsed JSON of a GET, or an error.
    Result<nlohmann::json> admin_json(const std::string& target) const;
    // The admin answer pretty-printed, or why there is none: for failure messages.
    std::string admin_dump(const std::string& target) const;
    Result<HttpResponse> admin_request(const HttpRequest& req) const;
    Result<HttpResponse> get(const std::string& target) const;

    // Waits until `predicate(/workers JSON)` holds; false on timeout.
    bool wait_workers(const std::function<bool(const nlohmann::json&)>& predicate,
                      std::chrono::milliseconds timeout) const;
    // Polls /health until its "status" is `status`; returns the last answer either way (null
    // when none came), so a failing test can show it.
    nlohmann::json wait_health(const std::string& status, std::chrono::milliseconds timeout) const;
    // Pids of workers that /workers reports as ready.
    std::vector<pid_t> ready_worker_pids() const;
    // POST /workers/target {"workers": n} (pins the pool) and DELETE /workers/target.
    Result<HttpResponse> set_worker_target(long long workers) const;
    Result<HttpResponse> release_worker_target() const;
    // Waits until /workers shows this target with exactly that many workers ready.
    bool wait_ready_at_target(unsigned target, std::chrono::milliseconds timeout) const;
    // One sample's value from /metrics (the first series of that name), nullopt if absent.
    std::optional<double> metric(const std::string& name) const;

    void signal(int sig) const;
    // Waits for exit; returns the exit status (or 128+signal), nullopt on timeout.
    std::optional<int> wait_exit(std::chrono::milliseconds timeout);
    [[nodiscard]] bool running() const { return pid_ > 0 && !exited_; }

private:
    TunerdOptions options_;
    TempDir dir_;
    std::string config_path_, state_dir_, log_path_;
    std::string marker_;
    std::string public_, admin_;
    pid_t pid_ = -1;
    bool exited_ = false;
    int exit_status_ = -1;
};

// Processes whose environment carries TUNER_TEST_MARKER=<marker> (scans /proc/*/environ).
std::vector<pid_t> processes_with_marker(const std::string& marker);
// Waits until none remain; returns those still alive at the timeout.
std::vector<pid_t> wait_no_marker_processes(const std::string& marker,
                                            std::chrono::milliseconds timeout);

// The children of a process (/proc/<pid>/task/<pid>/children): a gunicorn master's worker.
std::vector<pid_t> child_pids(pid_t pid);

// Runs a command to completion: exit status and its stdout+stderr.
struct CommandResult {
    int exit_status = -1;
    std::string output;
};
CommandResult run_command(const std::vector<std::string>& argv,
                          const std::map<std::string, std::string>& env = {},
                          std::chrono::seconds timeout = std::chrono::seconds(60));

bool is_root();

}  // namespace tuner::test
