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
#include "tests/support/temp_dir.hpp"

namespace tuner::probes::testing {

inline std::string fixture(const std::string& name) {
    return std::string(TUNER_FIXTURES_DIR) + "/" + name;
}

// A temporary directory removed with everything in it when the test ends.
using ScratchDir = tuner::test::TempDir;

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
