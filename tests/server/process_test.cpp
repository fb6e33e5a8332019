// Spawning worker processes: environment and directory, output pipes, errors as values when
// the command cannot start, process groups, death with the spawning thread, and wait statuses.
#include "server/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "server_test_support.hpp"

namespace tuner::server {
namespace {

using testing::ScratchDir;

struct Finished {
    std::string out, err;
    int status = -1;
};

// Reads the child's output to the end, reaps it and closes the pipes.
Finished run_to_end(const SpawnedProcess& p) {
    Finished f;
    auto output = testing::read_pipes_to_end(p.stdout_fd, p.stderr_fd);
    f.out = std::move(output.out);
    f.err = std::move(output.err);
    ::waitpid(p.pid, &f.status, 0);
    ::close(p.stdout_fd);
    ::close(p.stderr_fd);
    return f;
}

Finished spawn_and_finish(const SpawnSpec& spec) {
    auto spawned = spawn_process(spec);
    EXPECT_TRUE(spawned.ok()) << spawned.error().to_string();
    if (!spawned) return {};
    return run_to_end(*spawned);
}

// Waits (bounded) until `pid` is gone or a zombie; a safety net, not a measurement.
bool eventually_not_alive(pid_t pid) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (process_alive(pid)) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
}

TEST(SpawnProcess, RunsTheCommandWithEnvironmentOverridesInItsDirectory) {
    ScratchDir dir;
    ::setenv("TUNER_TEST_INHERITED", "from-parent", 1);
    ::setenv("TUNER_TEST_OVERRIDDEN", "parent", 1);
    SpawnSpec spec;
    spec.argv = {"/bin/sh", "-c",
                 "printf '%s|%s|%s\\n' \"$TUNER_TEST_INHERITED\" \"$TUNER_TEST_OVERRIDDEN\" "
                 "\"$TUNER_TEST_NEW\"; pwd -P; env | grep -c '^TUNER_TEST_OVERRIDDEN='; "
                 "echo 'to stderr' >&2; exit 3"};
    spec.env = {{"TUNER_TEST_OVERRIDDEN", "child"}, {"TUNER_TEST_NEW", "new"}};
    spec.dir = dir.path();
    const auto f = spawn_and_finish(spec);
    // An override replaces the parent's value rather than adding a second entry.
    EXPECT_EQ(f.out, "from-parent|child|new\n" + dir.path() + "\n1\n");
    EXPECT_EQ(f.err, "to stderr\n");
    EXPECT_EQ(describe_wait_status(f.status), "exited with status 3");
    ::unsetenv("TUNER_TEST_INHERITED");
    ::unsetenv("TUNER_TEST_OVERRIDDEN");
}

TEST(SpawnProcess, SearchesThePathForACommandWithoutASlash) {
    SpawnSpec spec;
    spec.argv = {"sh", "-c", "echo found"};
    const auto f = spawn_and_finish(spec);
    EXPECT_EQ(f.out, "found\n");
    EXPECT_EQ(describe_wait_status(f.status), "exited with status 0");
}

TEST(SpawnProcess, GivesNonBlockingCloseOnExecPipesAndClosesInheritedDescriptors) {
    // A descriptor the parent opened without close-on-exec (like a listening socket would be)
    // must not reach the worker.
    const int leaked = ::open("/dev/null", O_RDONLY);
    ASSERT_GE(leaked, 3);
    SpawnSpec spec;
    const std::string fd = std::to_string(leaked);
    spec.argv = {"/bin/sh", "-c",
                 "if [ -e /proc/$$/fd/" + fd + " ]; then echo open; else echo closed; fi"};
    auto spawned = spawn_process(spec);
    ASSERT_TRUE(spawned.ok()) << spawned.error().to_string();
    for (int pipe_fd : {spawned->stdout_fd, spawned->stderr_fd}) {
        EXPECT_TRUE(::fcntl(pipe_fd, F_GETFL) & O_NONBLOCK);
        EXPECT_TRUE(::fcntl(pipe_fd, F_GETFD) & FD_CLOEXEC);
    }
    const auto f = run_to_end(*spawned);
    ::close(leaked);
    EXPECT_EQ(f.out, "closed\n");
}

TEST(SpawnProcess, WithoutCloseRangeTheChildStillInheritsNoDescriptor) {
    // Kernels before 5.9 have no close_range(2): the child falls back to /proc/self/fd. It used
    // to ignore the failure, and every socket tunerd held without close-on-exec reached the app.
    int pipe_fds[2];
    ASSERT_EQ(::pipe(pipe_fds), 0);  // no O_CLOEXEC, like a descriptor from a library
    const int socket_fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    ASSERT_GE(socket_fd, 3);
    const int high_fd = ::dup2(socket_fd, 900);  // far above the others, below the usual limit
    ASSERT_EQ(high_fd, 900);
    for (const bool use_close_range : {false, true}) {
        SpawnSpec spec;
        // The shell lists its own descriptors ($$: the shell, not ls).
        spec.argv = {"/bin/sh", "-c", "ls /proc/$$/fd"};
        spec.use_close_range = use_close_range;
        const auto f = spawn_and_finish(spec);
        EXPECT_EQ(f.out, "0\n1\n2\n") << "use_close_range=" << use_close_range;
        EXPECT_EQ(describe_wait_status(f.status), "exited with status 0") << f.err;
    }
    for (const int fd : {pipe_fds[0], pipe_fds[1], socket_fd, high_fd}) ::close(fd);
}

TEST(SpawnProcess, AMissingCommandIsAnErrorNamingIt) {
    SpawnSpec spec;
    spec.argv = {"/nonexistent/tunerd-test-app", "--serve"};
    const auto spawned = spawn_process(spec);
    ASSERT_FALSE(spawned.ok());
    EXPECT_EQ(spawned.error().where, "/nonexistent/tunerd-test-app");
    EXPECT_NE(spawned.error().what.find("No such file or directory"), std::string::npos)
        << spawned.error().what;
}

TEST(SpawnProcess, ACommandWithoutExecutePermissionIsAnErrorNamingIt) {
    ScratchDir dir;
    const std::string script = dir.path() + "/app.sh";
    std::ofstream(script) << "#!/bin/sh\necho never\n";
    ::chmod(script.c_str(), 0644);
    SpawnSpec spec;
    spec.argv = {script};
    const auto spawned = spawn_process(spec);
    ASSERT_FALSE(spawned.ok());
    EXPECT_EQ(spawned.error().where, script);
    EXPECT_NE(spawned.error().what.find("Permission denied"), std::string::npos)
        << spawned.error().what;
}

TEST(SpawnProcess, AMissingDirectoryIsAnErrorNamingTheDirectoryNotTheCommand) {
    SpawnSpec spec;
    spec.argv = {"/bin/sh", "-c", "true"};
    spec.dir = "/nonexistent/tunerd-test-dir";
    const auto spawned = spawn_process(spec);
    ASSERT_FALSE(spawned.ok());
    EXPECT_EQ(spawned.error().where, "/nonexistent/tunerd-test-dir");
    EXPECT_NE(spawned.error().what.find("/bin/sh"), std::string::npos) << spawned.error().what;
    EXPECT_NE(spawned.error().what.find("No such file or directory"), std::string::npos)
        << spawned.error().what;
}

TEST(SpawnProcess, AnEmptyCommandIsAnError) {
    SpawnSpec spec;
    EXPECT_FALSE(spawn_process(spec).ok());
    spec.argv = {""};
    const auto spawned = spawn_process(spec);
    ASSERT_FALSE(spawned.ok());
    EXPECT_EQ(spawned.error().where, "workers.command");
}

TEST(SpawnProcess, TheChildLeadsItsOwnProcessGroupAndTakesItsChildrenAlong) {
    SpawnSpec spec;
    spec.argv = {"/bin/sh", "-c", "sleep 60 & echo $!; wait"};
    auto spawned = spawn_process(spec);
    ASSERT_TRUE(spawned.ok()) << spawned.error().to_string();
    const pid_t pid = spawned->pid;
    const pid_t grandchild = std::atoi(testing::read_line(spawned->stdout_fd).c_str());
    ASSERT_GT(grandchild, 0);
    EXPECT_EQ(::getpgid(pid), pid);
    EXPECT_NE(::getpgid(pid), ::getpgrp());
    EXPECT_EQ(::getpgid(grandchild), pid);  // a gunicorn master's workers share its group

    signal_process_group(pid, SIGTERM);
    const auto f = run_to_end(*spawned);
    EXPECT_EQ(describe_wait_status(f.status), "killed by signal 15 (SIGTERM)");
    EXPECT_TRUE(eventually_not_alive(grandchild));
}

TEST(SpawnProcess, TheChildDiesWithTheThreadThatSpawnedIt) {
    // PR_SET_PDEATHSIG follows the spawning thread, which is why tunerd spawns from its
    // long-lived I/O thread.
    Result<SpawnedProcess> spawned = make_error("test", "not spawned");
    std::thread([&] {
        SpawnSpec spec;
        spec.argv = {"/bin/sh", "-c", "exec sleep 60"};
        spawned = spawn_process(spec);
    }).join();
    ASSERT_TRUE(spawned.ok()) << spawned.error().to_string();
    const auto f = run_to_end(*spawned);
    EXPECT_EQ(describe_wait_status(f.status), "killed by signal 9 (SIGKILL)");
}

// The state letter of /proc/<pid>/stat ('Z' for a zombie), 0 when the pid is gone.
char process_state(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat;
    std::getline(in, stat);
    const auto close_paren = stat.rfind(')');
    return close_paren == std::string::npos || close_paren + 2 >= stat.size()
               ? 0
               : stat[close_paren + 2];
}

// Waits (bounded) until the child `pid` has exited and waits to be reaped.
bool eventually_exited(pid_t pid) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (process_state(pid) != 'Z') {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
}

TEST(ReapExitedChildren, CallsBackWhileTheChildIsAZombieSoItsGroupCanStillBeSignalled) {
    // The pool used to reap a worker first and kill its group after: by then the pid, and an
    // emptied group's id, could belong to an unrelated process, and signal_process_group's
    // fallback kill(pid) would hit it.
    SpawnSpec spec;
    spec.argv = {"/bin/sh", "-c", "sleep 60 & echo $!; exit 7"};
    auto spawned = spawn_process(spec);
    ASSERT_TRUE(spawned.ok()) << spawned.error().to_string();
    const pid_t pid = spawned->pid;
    const pid_t orphan = std::atoi(testing::read_line(spawned->stdout_fd).c_str());
    ASSERT_GT(orphan, 0);
    ASSERT_TRUE(eventually_exited(pid));

    bool called = false;
    char state_in_callback = 0;
    int status_in_callback = -1;
    reap_exited_children([&](pid_t exited, int status) {
        if (exited != pid) return;  // another test's leftover child
        called = true;
        state_in_callback = process_state(pid);
        status_in_callback = status;
        signal_process_group(pid, SIGKILL);  // what the pool does: the orphan goes too
    });
    ASSERT_TRUE(called);
    EXPECT_EQ(state_in_callback, 'Z') << "the pid must still be held by the zombie";
    EXPECT_EQ(describe_wait_status(status_in_callback), "exited with status 7");
    errno = 0;
    EXPECT_EQ(::waitpid(pid, nullptr, WNOHANG), -1) << "reaped after the callback";
    EXPECT_EQ(errno, ECHILD);
    EXPECT_TRUE(eventually_not_alive(orphan));
    ::close(spawned->stdout_fd);
    ::close(spawned->stderr_fd);
}

TEST(ReapExitedChildren, GivesTheWaitStatusOfAKilledChild) {
    SpawnSpec spec;
    spec.argv = {"/bin/sh", "-c", "exec sleep 60"};
    auto spawned = spawn_process(spec);
    ASSERT_TRUE(spawned.ok()) << spawned.error().to_string();
    ASSERT_EQ(::kill(spawned->pid, SIGKILL), 0);
    ASSERT_TRUE(eventually_exited(spawned->pid));
    int status = -1;
    reap_exited_children([&](pid_t exited, int s) {
        if (exited == spawned->pid) status = s;
    });
    EXPECT_EQ(describe_wait_status(status), "killed by signal 9 (SIGKILL)");
    EXPECT_EQ(process_state(spawned->pid), 0) << "reaped";
    ::close(spawned->stdout_fd);
    ::close(spawned->stderr_fd);
}

TEST(SignalProcessGroup, IgnoresPidsThatNameNoSingleGroup) {
    // kill(0) or kill(-1) would signal this test's own group or every process: never.
    signal_process_group(0, SIGTERM);
    signal_process_group(-1, SIGTERM);
    SUCCEED() << "still running";
}

TEST(DescribeWaitStatus, NamesTheExitStatusOrTheSignal) {
    EXPECT_EQ(describe_wait_status(0), "exited with status 0");
    EXPECT_EQ(describe_wait_status(3 << 8), "exited with status 3");
    EXPECT_EQ(describe_wait_status(SIGKILL), "killed by signal 9 (SIGKILL)");
    EXPECT_EQ(describe_wait_status(SIGSEGV | 0x80), "killed by signal 11 (SIGSEGV)");  // + core
    EXPECT_EQ(describe_wait_status((SIGSTOP << 8) | 0x7f).rfind("stopped", 0), 0u);
}

TEST(ProcessAlive, IsTrueForARunningChildAndFalseForAZombie) {
    SpawnSpec spec;
    spec.argv = {"/bin/sh", "-c", "exec sleep 60"};
    auto running = spawn_process(spec);
    ASSERT_TRUE(running.ok()) << running.error().to_string();
    EXPECT_TRUE(process_alive(running->pid));
    signal_process_group(running->pid, SIGKILL);
    // Wait for the exit without reaping: the child stays a zombie until waitpid.
    siginfo_t info{};
    ASSERT_EQ(::waitid(P_PID, static_cast<id_t>(running->pid), &info, WEXITED | WNOWAIT), 0);
    EXPECT_FALSE(process_alive(running->pid));
    run_to_end(*running);

    EXPECT_TRUE(process_alive(::getpid()));
    EXPECT_FALSE(process_alive(0));
    EXPECT_FALSE(process_alive(-1));
}

}  // namespace
}  // namespace tuner::server
