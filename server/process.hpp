// Starting and signalling worker processes: fork/exec in a new process group with
// PR_SET_PDEATHSIG, the parent's environment plus overrides, stdout/stderr on pipes, and a
// clear error when the exec fails (the errno travels back over a close-on-exec pipe).
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "model/result.hpp"

namespace tuner::server {

struct SpawnSpec {
    std::vector<std::string> argv;           // argv[0] is searched in PATH if it has no '/'
    std::map<std::string, std::string> env;  // set on top of the parent's environment
    std::string dir;                         // working directory; "" = the parent's
};

struct SpawnedProcess {
    pid_t pid = -1;      // also the process group id
    int stdout_fd = -1;  // read ends, non-blocking, close-on-exec
    int stderr_fd = -1;
};

// Must be called from a thread that outlives the child (PR_SET_PDEATHSIG fires when the
// spawning thread exits): tunerd spawns from its long-lived I/O thread.
Result<SpawnedProcess> spawn_process(const SpawnSpec& spec);

// The open-file soft limit workers start with: tunerd raises its own for its connections, the
// app gets the limit tunerd was started with (select()-based code breaks above 1024). Call
// before the first spawn.
void set_worker_open_file_limit(rlim_t soft);

// Signal the whole process group (a gunicorn master and its workers); ESRCH is not an error.
void signal_process_group(pid_t pgid, int signal);

// "exited with status 3", "killed by signal 9 (SIGKILL)".
std::string describe_wait_status(int status);

// Is this pid still alive (not exiting, and not a zombie we have yet to reap)?
bool process_alive(pid_t pid);

}  // namespace tuner::server
