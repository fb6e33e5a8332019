// Test helpers for probes/: a scratch directory to write kernel-like files into, and the path of
// a checked-in fixture tree.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

#include "probes/prober.hpp"

namespace tuner::probes::testing {

inline std::string fixture(const std::string& name) {
    return std::string(TUNER_FIXTURES_DIR) + "/" + name;
}

// A temporary directory removed with everything in it when the test ends.
class ScratchDir {
public:
    ScratchDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "probes-XXXXXX").string();
        if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
        path_ = pattern;
    }
    ~ScratchDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    ScratchDir(const ScratchDir&) = delete;
    ScratchDir& operator=(const ScratchDir&) = delete;

    [[nodiscard]] const std::string& path() const { return path_; }

    // Writes `content` to <dir>/<relative>, creating the folders on the way.
    void write(const std::string& relative, const std::string& content) const {
        const std::filesystem::path file = std::filesystem::path(path_) / relative;
        std::filesystem::create_directories(file.parent_path());
        std::ofstream(file) << content;
    }
    void remove(const std::string& relative) const {
        std::filesystem::remove(std::filesystem::path(path_) / relative);
    }

private:
    std::string path_;
};

// A /proc/<pid>/stat line (proc(5), 52 fields) with the fields the probes read filled in.
inline std::string stat_line(pid_t pid, const std::string& comm, pid_t ppid,
                             std::uint64_t utime_ticks, std::uint64_t stime_ticks, unsigned threads,
                             std::uint64_t rss_pages) {
    std::string line = std::to_string(pid) + " (" + comm + ") S " + std::to_string(ppid) +
                       " 1 1 0 -1 4194560 100 0 0 0 " + std::to_string(utime_ticks) + " " +
                       std::to_string(stime_ticks) + " 0 0 20 0 " + std::to_string(threads) +
                       " 0 4321 104857600 " + std::to_string(rss_pages);
    for (int field = 25; field <= 52; ++field) line += " 0";
    return line + "\n";
}

// ProbeRoots for a fixture tree laid out as <tree>/proc and <tree>/sys.
inline ProbeRoots fixture_roots(const std::string& tree) {
    ProbeRoots roots;
    roots.proc = tree + "/proc";
    roots.fs_root = tree;
    roots.live_affinity = false;
    roots.ticks_per_second = 100;
    roots.page_size_bytes = 4096;
    return roots;
}

// The pid whose /proc/<pid>/cgroup the cgroup fixture trees hold.
inline constexpr pid_t kFixturePid = 1000;

}  // namespace tuner::probes::testing
