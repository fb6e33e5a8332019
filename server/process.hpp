// Starting and signalling worker processes: fork/exec in a new process group with
// PR_SET_PDEATHSIG, the parent's environment plus overrides, stdout/stderr on pipes, and a
// clear error when the exec fails (the errno travels back over a close-on-exec pipe).
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "model/result.hpp"

namespace tuner::server {

struct SpawnSpec {
    std::vector<std::string> argv;           // argv[0] is searched in PATH if it has no '/'
    std::map<std::string, std::string> env;  // set on top of the parent's environment
    std::string dir;                         // working directory; "" = the parent's
    // The child closes every descriptor it inherited but stdio with close_range(2); where the
    // kernel lacks it (before Linux 5.9: ENOSYS; some seccomp filters: EINVAL or EPERM), from
    // the list in /proc/self/fd. false skips close_range, so tests take that second way.
    bool use_close_range = true;
    // The child's stdin; -1 = /dev/null. The preloader's control socket (server/preloader.hpp).
    int stdin_fd = -1;
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
// Only for a leader that has not been reaped: once waitpid() took it, its pid (and, when the
// group is empty, the group id) may be handed to an unrelated process. An exited leader's group
// is signalled from reap_exited_children's callback, while the zombie still holds the number.
void signal_process_group(pid_t pgid, int signal);

// For each child that has exited: `on_exit(pid, wait status)` while the child is still a zombie
// (waitid with WNOWAIT: its pid and process-group id cannot have been reused), then reaps it.
// Returns when no exited child is left.
void reap_exited_children(const std::function<void(pid_t, int)>& on_exit);

// "exited with status 3", "killed by signal 9 (SIGKILL)".
std::string describe_wait_status(int status);

// Is this pid still alive (not exiting, and not a zombie we have yet to reap)?
bool process_alive(pid_t pid);

}  // namespace tuner::server
