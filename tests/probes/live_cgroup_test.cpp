// Live tests: `tunerctl probe` as a program (exit codes, JSON), and, as root on a writable
// cgroup fs (v2, or v1/hybrid), a real cgroup of 256 MB and half a core: tunerctl started inside
// reports those limits, and an allocation beyond them is OOM-killed and counted by our reader.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "probes/cgroup_discovery.hpp"
#include "probes/kernel_file.hpp"
#include "probes/memory_probe.hpp"

namespace tuner::probes {
namespace {

constexpr std::uint64_t kLimitBytes = 256 * MiB;  // 268435456

struct RunResult {
    int exit_code = -1;
    std::string out;
    std::string err;
};

// Runs tunerctl with `args`, first joining the cgroups whose cgroup.procs files are given.
RunResult run_tunerctl(const std::vector<std::string>& args,
                       const std::vector<std::string>& enter_procs_files = {}) {
    int out_pipe[2];
    int err_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) return {};
    std::vector<std::string> argv_strings{TUNERCTL_BINARY};
    argv_strings.insert(argv_strings.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_strings) argv.push_back(a.data());
    argv.push_back(nullptr);

    const pid_t child = ::fork();
    if (child == 0) {
        // Join the cgroup before exec: tunerctl must start inside it. "0" means "this process".
        for (const auto& file : enter_procs_files) {
            const int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
            if (fd < 0 || ::write(fd, "0", 1) != 1) ::_exit(120);
            ::close(fd);
        }
        ::dup2(out_pipe[1], STDOUT_FILENO);
        ::dup2(err_pipe[1], STDERR_FILENO);
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    RunResult result;
    pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    std::string* sinks[2] = {&result.out, &result.err};
    int open_fds = 2;
    while (open_fds > 0 && ::poll(fds, 2, -1) > 0) {
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
            char buf[4096];
            const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
            if (n > 0) {
                sinks[i]->append(buf, static_cast<std::size_t>(n));
            } else {
                ::close(fds[i].fd);
                fds[i].fd = -1;
                --open_fds;
            }
        }
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return result;
}

// ---- tunerctl probe as a program ------------------------------------------------------------

TEST(TunerctlProbe, JsonHasTheKeysOfTheApiSketch) {
    const auto r = run_tunerctl({"probe", "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_TRUE(j["cgroup"]["version"].is_string());
    EXPECT_TRUE(j["cgroup"]["path"].is_string());
    EXPECT_GE(j["cpu"]["effective_cores"].get<int>(), 1);
    EXPECT_TRUE(j["cpu"]["source"].is_string());
    EXPECT_GT(j["memory"]["limit_bytes"].get<std::uint64_t>(), 0u);
    EXPECT_TRUE(j["memory"]["source"].is_string());
    EXPECT_TRUE(j["memory"]["usage_bytes"].is_number());
    EXPECT_TRUE(j["memory"]["working_set_bytes"].is_number());
    EXPECT_TRUE(j["pressure"].is_object());
    EXPECT_GE(j["seed_formula"]["workers"].get<int>(), 1);
    EXPECT_GT(j["process"]["rss_bytes"].get<std::uint64_t>(), 0u);
}

TEST(TunerctlProbe, TextIsTheDefault) {
    const auto r = run_tunerctl({"probe"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out.rfind("cgroup ", 0), 0u) << r.out;
    EXPECT_NE(r.out.find("\nseed "), std::string::npos) << r.out;
}

TEST(TunerctlProbe, PidSelectsTheProcess) {
    const auto r = run_tunerctl({"probe", "--json", "--pid", std::to_string(::getpid())});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["process"]["pid"].get<int>(), ::getpid());
    EXPECT_GT(j["process"]["rss_bytes"].get<std::uint64_t>(), 0u);
}

TEST(TunerctlProbe, BadArgumentsAreUsageErrors) {
    for (const auto& args :
         std::vector<std::vector<std::string>>{{},
                                               {"frobnicate"},
                                               {"probe", "--bogus"},
                                               {"probe", "--pid"},
                                               {"probe", "--pid", "abc"},
                                               {"probe", "--pid", "-3"},
                                               {"probe", "--pid", "999999999"}}) {
        const auto r = run_tunerctl(args);
        EXPECT_EQ(r.exit_code, 64) << testing::PrintToString(args) << ": " << r.err;
        EXPECT_NE(r.err.find("usage: tunerctl"), std::string::npos) << r.err;
    }
}

TEST(TunerctlProbe, HelpListsProbe) {
    const auto r = run_tunerctl({"--help"});
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_NE(r.out.find("probe [--json] [--pid N]"), std::string::npos) << r.out;
}

// ---- a real cgroup ----------------------------------------------------------------------------

bool write_file(const std::string& path, const std::string& content) {
    std::ofstream f(path);
    f << content;
    f.flush();
    return static_cast<bool>(f);
}

std::string read_text(const std::string& path) {
    auto content = read_optional_file(path);
    return content && content->has_value() ? **content : "";
}

// A cgroup with 256 MB and half a core, removed again (with any process left in it) on
// destruction. On v1 it is two directories, one in the memory and one in the cpu hierarchy.
class LiveCgroup {
public:
    // Builds it, or returns why it cannot be done here (the test then skips).
    static std::optional<std::string> make(LiveCgroup& out) {
        if (::geteuid() != 0) return "needs root to create cgroups";
        auto mounts = read_cgroup_mounts("/proc/self/mountinfo");
        if (!mounts) return "cannot read mountinfo: " + mounts.error().to_string();
        out.name_ = "tunerd-probe-test-" + std::to_string(::getpid());
        const CgroupMount* memory_v1 = nullptr;
        const CgroupMount* cpu_v1 = nullptr;
        for (const auto& m : *mounts) {
            const auto has = [&](const char* c) {
                return std::find(m.controllers.begin(), m.controllers.end(), c) !=
                       m.controllers.end();
            };
            if (m.v2) {
                const std::string controllers = read_text(m.mount_point + "/cgroup.controllers");
                if (controllers.find("memory") != std::string::npos &&
                    controllers.find("cpu") != std::string::npos) {
                    return out.make_v2(m.mount_point);
                }
            } else if (has("memory") && !memory_v1) {
                memory_v1 = &m;
            } else if (has("cpu") && !cpu_v1) {
                cpu_v1 = &m;
            }
        }
        if (memory_v1 && cpu_v1) return out.make_v1(memory_v1->mount_point, cpu_v1->mount_point);
        return "no cgroup v2 with cpu and memory controllers and no v1 memory and cpu hierarchies";
    }

    ~LiveCgroup() {
        for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) remove_cgroup(*it);
        if (!enabled_in_.empty()) write_file(enabled_in_, "-cpu -memory");
    }

    [[nodiscard]] int version() const { return version_; }
    [[nodiscard]] const std::string& name() const { return name_; }
    [[nodiscard]] const std::string& memory_dir() const { return dirs_.front(); }
    // The cgroup.procs files a process writes itself into to join.
    [[nodiscard]] std::vector<std::string> procs_files() const {
        std::vector<std::string> files;
        for (const auto& d : dirs_) files.push_back(d + "/cgroup.procs");
        return files;
    }
    [[nodiscard]] std::uint64_t oom_kills() const {
        auto kills =
            read_oom_kills(ControllerDir{version_, "/" + name_, memory_dir(), memory_dir(), "/"});
        EXPECT_TRUE(kills.ok()) << kills.error().to_string();
        return kills.ok() ? *kills : 0;
    }

private:
    std::optional<std::string> create(const std::string& dir) {
        if (::mkdir(dir.c_str(), 0755) != 0) {
            return "cgroup fs not writable: mkdir " + dir + ": " + std::strerror(errno);
        }
        dirs_.push_back(dir);
        return std::nullopt;
    }

    std::optional<std::string> make_v2(const std::string& mount) {
        version_ = 2;
        const std::string control = mount + "/cgroup.subtree_control";
        const std::string enabled = read_text(control);
        if (enabled.find("memory") == std::string::npos ||
            enabled.find("cpu") == std::string::npos) {
            // The parent must hand the controllers down (cgroup-v2.rst, "Enabling and
            // Disabling"); a non-root parent holding processes refuses (EBUSY).
            if (!write_file(control, "+cpu +memory")) {
                return "cannot enable cpu and memory in " + control;
            }
            enabled_in_ = control;
        }
        if (auto why = create(mount + "/" + name_)) return why;
        const std::string d = dirs_.front();
        if (!write_file(d + "/memory.max", std::to_string(kLimitBytes)) ||
            !write_file(d + "/cpu.max", "50000 100000")) {
            return "cannot set memory.max / cpu.max in " + d;
        }
        write_file(d + "/memory.swap.max", "0");  // absent without swap accounting: fine
        return std::nullopt;
    }

    std::optional<std::string> make_v1(const std::string& memory_mount,
                                       const std::string& cpu_mount) {
        version_ = 1;
        if (auto why = create(memory_mount + "/" + name_)) return why;
        if (auto why = create(cpu_mount + "/" + name_)) return why;
        const std::string m = dirs_[0];
        const std::string c = dirs_[1];
        if (!write_file(m + "/memory.limit_in_bytes", std::to_string(kLimitBytes)) ||
            !write_file(c + "/cpu.cfs_period_us", "100000") ||
            !write_file(c + "/cpu.cfs_quota_us", "50000")) {
            return "cannot set the v1 limits in " + m + " and " + c;
        }
        // Without swap accounting or swap these may fail; they only keep swap out of the test.
        write_file(m + "/memory.memsw.limit_in_bytes", std::to_string(kLimitBytes));
        write_file(m + "/memory.swappiness", "0");
        return std::nullopt;
    }

    static void remove_cgroup(const std::string& dir) {
        for (int attempt = 0; attempt < 200; ++attempt) {
            std::string procs = read_text(dir + "/cgroup.procs");
            for (std::size_t at = 0; at < procs.size();) {
                const std::size_t nl = procs.find('\n', at);
                const pid_t pid = std::atoi(procs.substr(at, nl - at).c_str());
                if (pid > 0) ::kill(pid, SIGKILL);
                at = nl == std::string::npos ? procs.size() : nl + 1;
            }
            if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return;
            std::this_thread::sleep_for(std::chrono::milliseconds(25));
        }
        ADD_FAILURE() << "could not remove cgroup " << dir << ": " << std::strerror(errno);
    }

    int version_ = 0;
    std::string name_;
    std::vector<std::string> dirs_;  // memory (v2: the one cgroup) first
    std::string enabled_in_;         // subtree_control we changed, to change back
};

#define SKIP_WITHOUT_CGROUP(cg)                               \
    LiveCgroup cg;                                            \
    if (auto why = LiveCgroup::make(cg)) {                    \
        GTEST_SKIP() << "live cgroup test skipped: " << *why; \
    }

TEST(LiveCgroup, TunerctlInsideReportsTheLimits) {
    SKIP_WITHOUT_CGROUP(cg);
    const auto r = run_tunerctl({"probe", "--json"}, cg.procs_files());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    SCOPED_TRACE(r.out);
    EXPECT_EQ(j["memory"]["limit_bytes"].get<std::uint64_t>(), 268435456u);
    EXPECT_TRUE(j["memory"]["limited"].get<bool>());
    EXPECT_NE(j["memory"]["source"].get<std::string>().find(cg.name()), std::string::npos);
    EXPECT_EQ(j["cpu"]["effective_cores"].get<int>(), 1);
    EXPECT_EQ(j["cpu"]["source"], "quota");
    EXPECT_DOUBLE_EQ(j["cpu"]["quota_cores"].get<double>(), 0.5);
    EXPECT_EQ(j["seed_formula"]["cpu_workers"].get<int>(), 3);
    EXPECT_TRUE(j["problems"].empty()) << j["problems"].dump();
}

TEST(LiveCgroup, AllocationBeyondTheLimitIsCountedAsOomKill) {
    SKIP_WITHOUT_CGROUP(cg);
    const std::uint64_t before = cg.oom_kills();
    const std::vector<std::string> procs = cg.procs_files();
    const pid_t child = ::fork();
    if (child == 0) {
        for (const auto& file : procs) {
            const int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
            if (fd < 0 || ::write(fd, "0", 1) != 1) ::_exit(120);
            ::close(fd);
        }
        constexpr std::size_t kBytes = 400 * MiB;  // well past the 256 MB limit
        void* p =
            ::mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) ::_exit(121);
        auto* bytes = static_cast<volatile char*>(p);
        for (std::size_t i = 0; i < kBytes; i += 4096) bytes[i] = 1;  // touch: make it resident
        ::_exit(0);  // not reached when the limit holds
    }
    ASSERT_GT(child, 0);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status))
        << "child was not killed; exit status " << (WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    EXPECT_EQ(WTERMSIG(status), SIGKILL);
    EXPECT_GT(cg.oom_kills(), before);
}

}  // namespace
}  // namespace tuner::probes
