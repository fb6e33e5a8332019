// A memory-limited cgroup for the root integration suites (tuner_root_test, threads_test), made as
// a service manager would make it, and removed with every process left in it on destruction.
#pragma once

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "probes/cgroup_discovery.hpp"
#include "probes/memory_probe.hpp"
#include "tests/integration/tuner_test_support.hpp"

namespace tuner::test {

// A memory limit (v2 where the unified hierarchy has the memory controller, else the v1 memory
// hierarchy), and on request, on v1, a cpuacct group of its own so that the CPU utilisation tunerd
// measures is its own and its workers', not every other tenant's of the box. No CPU limit and no
// CPU scheduling group: the app competes for the CPU as it would without the test (a co-mounted
// cpu,cpuacct hierarchy would add a scheduling group, so there the CPU stays accounted
// machine-wide, and describe() says so). On v2, cpu.stat is in every group: the CPU is accounted
// there anyway.
class MemoryCgroup {
public:
    // Builds /<name>, or says why it cannot be done here (the test then skips).
    std::optional<std::string> make(const std::string& name, std::uint64_t limit_bytes,
                                    bool own_cpuacct = false) {
        if (::geteuid() != 0) return "needs root to create cgroups; not root here";
        auto mounts = probes::read_cgroup_mounts("/proc/self/mountinfo");
        if (!mounts) return "cannot read mountinfo: " + mounts.error().to_string();
        name_ = name;
        limit_bytes_ = limit_bytes;
        const probes::CgroupMount* memory_v1 = nullptr;
        const probes::CgroupMount* cpuacct_v1 = nullptr;
        for (const auto& m : *mounts) {
            auto has = [&](const char* controller) {
                return std::find(m.controllers.begin(), m.controllers.end(), controller) !=
                       m.controllers.end();
            };
            if (m.v2 && read_text(m.mount_point + "/cgroup.controllers").find("memory") !=
                            std::string::npos) {
                return make_v2(m.mount_point);
            }
            if (!m.v2 && has("memory") && !memory_v1) memory_v1 = &m;
            if (!m.v2 && has("cpuacct") && !cpuacct_v1) cpuacct_v1 = &m;
        }
        if (!memory_v1) return "no cgroup v2 with the memory controller and no v1 memory hierarchy";
        if (auto why = make_v1(memory_v1->mount_point)) return why;
        if (!own_cpuacct) return std::nullopt;
        if (!cpuacct_v1) {
            cpu_note_ = "no v1 cpuacct hierarchy: CPU accounted machine-wide";
        } else if (std::find(cpuacct_v1->controllers.begin(), cpuacct_v1->controllers.end(),
                             "cpu") != cpuacct_v1->controllers.end()) {
            cpu_note_ = "cpuacct is co-mounted with cpu: CPU accounted machine-wide";
        } else if (auto why = create(cpuacct_v1->mount_point, cpuacct_dir_)) {
            cpu_note_ = *why + ": CPU accounted machine-wide";
        }
        return std::nullopt;
    }

    ~MemoryCgroup() {
        // The cpuacct group holds the same processes: the memory group's removal kills them.
        for (const auto* dir : {&dir_, &cpuacct_dir_}) {
            if (!dir->empty()) remove(*dir);
        }
        if (!enabled_in_.empty()) write_text(enabled_in_, "-memory");
    }

    [[nodiscard]] std::string procs_file() const { return dir_ + "/cgroup.procs"; }
    [[nodiscard]] const std::string& name() const { return name_; }
    [[nodiscard]] int version() const { return version_; }

    // The kernel's OOM kills in the memory group (v2 memory.events, v1 memory.oom_control).
    [[nodiscard]] Result<std::uint64_t> oom_kills() const {
        return probes::read_oom_kills(
            probes::ControllerDir{version_, "/" + name_, dir_, dir_, "/"});
    }

    // Moves tunerd and the workers it started so far into the CPU accounting group (workers
    // started later inherit it from tunerd); nothing without one.
    void account_cpu_of(const TunerdProcess& tunerd) const {
        if (cpuacct_dir_.empty()) return;
        write_text(cpuacct_dir_ + "/cgroup.procs", std::to_string(tunerd.pid()));
        for (const pid_t pid : processes_with_marker(tunerd.marker()))
            write_text(cpuacct_dir_ + "/cgroup.procs", std::to_string(pid));
    }

    // "cgroup v1 /name, memory 512MB, CPU accounted in its own group".
    [[nodiscard]] std::string describe() const {
        std::string out = "cgroup v" + std::to_string(version_) + " /" + name_ + ", memory " +
                          format_size(limit_bytes_);
        if (!cpu_note_.empty()) return out + "; " + cpu_note_;
        if (!cpuacct_dir_.empty() || version_ == 2) out += ", CPU accounted in its own group";
        return out;
    }

private:
    std::optional<std::string> create(const std::string& mount, std::string& dir) {
        const std::string path = mount + "/" + name_;
        if (::mkdir(path.c_str(), 0755) != 0)
            return "cgroup fs not writable: mkdir " + path + ": " + std::strerror(errno);
        dir = path;
        return std::nullopt;
    }

    std::optional<std::string> make_v2(const std::string& mount) {
        version_ = 2;
        const std::string control = mount + "/cgroup.subtree_control";
        if (read_text(control).find("memory") == std::string::npos) {
            // The parent must hand the controller down (cgroup-v2.rst, "Enabling and Disabling").
            if (!write_text(control, "+memory")) return "cannot enable memory in " + control;
            enabled_in_ = control;
        }
        if (auto why = create(mount, dir_)) return why;
        if (!write_text(dir_ + "/memory.max", std::to_string(limit_bytes_)))
            return "cannot set memory.max in " + dir_;
        write_text(dir_ + "/memory.swap.max", "0");  // absent without swap accounting: fine
        return std::nullopt;
    }

    std::optional<std::string> make_v1(const std::string& memory_mount) {
        version_ = 1;
        if (auto why = create(memory_mount, dir_)) return why;
        if (!write_text(dir_ + "/memory.limit_in_bytes", std::to_string(limit_bytes_)))
            return "cannot set memory.limit_in_bytes in " + dir_;
        // Without swap accounting or swap these may fail; they only keep swap out of the test.
        write_text(dir_ + "/memory.memsw.limit_in_bytes", std::to_string(limit_bytes_));
        write_text(dir_ + "/memory.swappiness", "0");
        return std::nullopt;
    }

    static void remove(const std::string& dir) {
        for (int attempt = 0; attempt < 400; ++attempt) {
            std::istringstream procs(read_text(dir + "/cgroup.procs"));
            for (pid_t pid = 0; procs >> pid;) ::kill(pid, SIGKILL);
            if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return;
            std::this_thread::sleep_for(std::chrono::milliseconds(25));
        }
        ADD_FAILURE() << "could not remove cgroup " << dir << ": " << std::strerror(errno);
    }

    int version_ = 0;
    std::string name_;
    std::uint64_t limit_bytes_ = 0;
    std::string dir_;          // the memory group
    std::string cpuacct_dir_;  // v1, own_cpuacct: the CPU accounting group
    std::string enabled_in_;   // subtree_control we changed, to change back
    std::string cpu_note_;     // why the CPU is accounted machine-wide, when it is
};

}  // namespace tuner::test
