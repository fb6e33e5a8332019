// fork/exec of worker processes (see process.hpp).
#include "server/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>

#include <dirent.h>

extern char** environ;

namespace tuner::server {

namespace {

// The open-file soft limit workers get (set_worker_open_file_limit); RLIM_INFINITY: unchanged.
rlim_t g_worker_nofile_soft = RLIM_INFINITY;

// What the child could not do, sent back with its errno over the status pipe, so the error
// names the directory when the directory is what is wrong.
enum class ChildStep : int { setup, enter_dir, exec };
struct ChildFailure {
    ChildStep step = ChildStep::setup;
    int error = 0;
};

// Closes every descriptor numbered `first` or above except `keep`, in the child between fork
// and exec, so async-signal-safe: raw system calls, no allocation. close_range(2) when
// `use_close_range` and the kernel has it; else each descriptor listed in /proc/self/fd (read
// with getdents64 into a buffer on the stack: closing changes the listing, so it is read again
// from the start until a pass closes nothing); without /proc, every number below `max_fd`.
void close_descriptors_from(int first, int keep, bool use_close_range, int max_fd) {
    if (use_close_range) {
        const auto range = [](int low, int high) {
            return low > high || ::syscall(SYS_close_range, static_cast<unsigned>(low),
                                           static_cast<unsigned>(high), 0u) == 0;
        };
        const bool closed = keep < first ? range(first, INT_MAX)
                                         : range(first, keep - 1) && range(keep + 1, INT_MAX);
        if (closed) return;
    }
    const int dir = ::open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) {
        for (int fd = first; fd < max_fd; ++fd) {
            if (fd != keep) ::close(fd);
        }
        return;
    }
    alignas(struct dirent64) char buffer[4096];
    for (;;) {
        const long n = ::syscall(SYS_getdents64, dir, buffer, sizeof buffer);
        if (n <= 0) break;
        bool closed_any = false;
        for (long at = 0; at < n;) {
            const auto* entry = reinterpret_cast<const struct dirent64*>(buffer + at);
            at += entry->d_reclen;
            int fd = 0;
            const char* c = entry->d_name;
            if (*c < '0' || *c > '9') continue;  // "." and ".."
            for (; *c >= '0' && *c <= '9'; ++c) fd = fd * 10 + (*c - '0');
            if (fd < first || fd == keep || fd == dir) continue;
            ::close(fd);
            closed_any = true;
        }
        if (closed_any && ::lseek(dir, 0, SEEK_SET) != 0) break;
    }
    ::close(dir);
}

// Child side, between fork and exec: async-signal-safe calls only.
[[noreturn]] void child_exec(const SpawnSpec& spec, char* const* argv, char* const* envp, int out_w,
                             int err_w, int status_w, pid_t parent, int max_fd) {
    auto fail = [&](ChildStep step, int err) {
        const ChildFailure failure{step, err};
        (void)!::write(status_w, &failure, sizeof failure);
        ::_exit(127);
    };
    // Own process group: a Ctrl-C to the terminal reaches tunerd, which stops workers in order.
    ::setpgid(0, 0);
    // Die with tunerd even on kill -9; close the race where tunerd died before prctl ran.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(0);
    // Exec keeps ignored dispositions and the blocked mask: give the app a clean slate.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGCHLD, SIGQUIT}) ::signal(sig, SIG_DFL);
    if (g_worker_nofile_soft != RLIM_INFINITY) {
        struct rlimit limit;
        if (::getrlimit(RLIMIT_NOFILE, &limit) == 0) {
            limit.rlim_cur = g_worker_nofile_soft;
            ::setrlimit(RLIMIT_NOFILE, &limit);
        }
    }

    if (spec.stdin_fd >= 0) {
        if (::dup2(spec.stdin_fd, 0) < 0) fail(ChildStep::setup, errno);
    } else {
        const int devnull = ::open("/dev/null", O_RDONLY);
        if (devnull < 0 || ::dup2(devnull, 0) < 0) fail(ChildStep::setup, errno);
    }
    if (::dup2(out_w, 1) < 0 || ::dup2(err_w, 2) < 0) fail(ChildStep::setup, errno);
    // Close everything else but the status pipe (close-on-exec), including tunerd's sockets.
    close_descriptors_from(3, status_w, spec.use_close_range, max_fd);
    if (!spec.dir.empty() && ::chdir(spec.dir.c_str()) < 0) fail(ChildStep::enter_dir, errno);
    ::execvpe(argv[0], argv, envp);
    fail(ChildStep::exec, errno);
    ::_exit(127);  // not reached: fail() exits
}

}  // namespace

void set_worker_open_file_limit(rlim_t soft) {
    g_worker_nofile_soft = soft;
}

Result<SpawnedProcess> spawn_process(const SpawnSpec& spec) {
    if (spec.argv.empty() || spec.argv.front().empty()) {
        return make_error("workers.command", "empty command");
    }
    // Everything the child needs is built before fork: after it only async-signal-safe calls.
    std::vector<std::string> env_strings;
    for (char** e = environ; e && *e; ++e) {
        const std::string entry(*e);
        const auto eq = entry.find('=');
        if (eq != std::string::npos && spec.env.count(entry.substr(0, eq))) continue;
        env_strings.push_back(entry);
    }
    for (const auto& [k, v] : spec.env) env_strings.push_back(k + "=" + v);
    std::vector<char*> envp;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<std::string> argv_strings = spec.argv;
    std::vector<char*> argv;
    for (auto& s : argv_strings) argv.push_back(s.data());
    argv.push_back(nullptr);

    int out[2], err[2], status[2];
    if (::pipe2(out, O_CLOEXEC) < 0) return system_error("pipe", "");
    if (::pipe2(err, O_CLOEXEC) < 0) {
        ::close(out[0]), ::close(out[1]);
        return system_error("pipe", "");
    }
    if (::pipe2(status, O_CLOEXEC) < 0) {
        ::close(out[0]), ::close(out[1]), ::close(err[0]), ::close(err[1]);
        return system_error("pipe", "");
    }
    // Where /proc is missing, the child closes every number up to the descriptor limit: read
    // here, before fork (bounded, so a huge limit cannot make that loop take seconds).
    const long open_max = ::sysconf(_SC_OPEN_MAX);
    const int max_fd = open_max > 0 && open_max < 65536 ? static_cast<int>(open_max) : 65536;
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) {
        const int e = errno;
        for (int fd : {out[0], out[1], err[0], err[1], status[0], status[1]}) ::close(fd);
        return make_error(spec.argv.front(), std::string("fork failed: ") + std::strerror(e));
    }
    if (pid == 0)
        child_exec(spec, argv.data(), envp.data(), out[1], err[1], status[1], parent, max_fd);

    ::setpgid(pid, pid);  // also from the parent, so signalling the group never races the child
    ::close(out[1]);
    ::close(err[1]);
    ::close(status[1]);
    ChildFailure failure;
    ssize_t n;
    do {
        n = ::read(status[0], &failure, sizeof failure);
    } while (n < 0 && errno == EINTR);
    ::close(status[0]);
    if (n == static_cast<ssize_t>(sizeof failure)) {
        ::close(out[0]);
        ::close(err[0]);
        int ignored;
        ::waitpid(pid, &ignored, 0);
        const std::string reason = std::strerror(failure.error);
        switch (failure.step) {
            case ChildStep::enter_dir:
                return make_error(spec.dir, "cannot start " + spec.argv.front() +
                                                " in this directory: " + reason);
            case ChildStep::exec:
                return make_error(spec.argv.front(), "cannot start: " + reason);
            case ChildStep::setup:
                break;
        }
        return make_error(spec.argv.front(), "cannot set up the child's stdio: " + reason);
    }
    ::fcntl(out[0], F_SETFL, ::fcntl(out[0], F_GETFL) | O_NONBLOCK);
    ::fcntl(err[0], F_SETFL, ::fcntl(err[0], F_GETFL) | O_NONBLOCK);
    return SpawnedProcess{pid, out[0], err[0]};
}

void signal_process_group(pid_t pgid, int signal) {
    if (pgid <= 0) return;
    if (::kill(-pgid, signal) < 0 && errno == ESRCH) ::kill(pgid, signal);
}

void reap_exited_children(const std::function<void(pid_t, int)>& on_exit) {
    for (;;) {
        siginfo_t info{};
        if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0) return;
        const pid_t pid = info.si_pid;
        // The wait status waitpid() would give (wait(2)'s encoding; 0x80: a core was dumped).
        int status = 0;
        if (info.si_code == CLD_EXITED) {
            status = (info.si_status & 0xff) << 8;
        } else {
            status = info.si_status | (info.si_code == CLD_DUMPED ? 0x80 : 0);
        }
        on_exit(pid, status);
        int reaped_status = 0;
        while (::waitpid(pid, &reaped_status, 0) < 0 && errno == EINTR) {
        }
    }
}

std::string describe_wait_status(int status) {
    if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) {
        const int sig = WTERMSIG(status);
        const char* name = sigabbrev_np(sig);
        return "killed by signal " + std::to_string(sig) +
               (name ? std::string(" (SIG") + name + ")" : "");
    }
    return "stopped (status " + std::to_string(status) + ")";
}

bool process_alive(pid_t pid) {
    if (pid <= 0) return false;
    if (::kill(pid, 0) < 0 && errno == ESRCH) return false;
    // A zombie still answers kill(0); /proc tells.
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    char buf[256];
    const ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n <= 0) return false;
    buf[n] = 0;
    const char* close_paren = std::strrchr(buf, ')');
    if (!close_paren || close_paren[1] != ' ') return true;
    // After the name: state, ppid, pgrp, session, tty_nr, tpgid, flags (proc(5)). A zombie is
    // gone; so is a process in do_exit (PF_EXITING, include/linux/sched.h), which has already
    // closed its sockets while it still looks alive: the front sees its connections fail first.
    constexpr unsigned kPfExiting = 0x00000004;
    char state = 0;
    unsigned flags = 0;
    if (std::sscanf(close_paren + 2, "%c %*d %*d %*d %*d %*d %u", &state, &flags) < 1) return true;
    return state != 'Z' && state != 'X' && (flags & kPfExiting) == 0;
}

}  // namespace tuner::server
