// Fuzz target: the memory readers (probes/memory_probe.hpp) and their assembly, probe_memory.
// The input is the files of one cgroup directory and the host's meminfo, separated by NUL
// bytes, in this order (a part not in the input: no such file):
//   memory.max, memory.high, memory.current, memory.stat, memory.events,
//   memory.limit_in_bytes, memory.usage_in_bytes, memory.oom_control, /proc/meminfo
// probe_memory runs as v2, as v1 and without a cgroup. What must hold: no crash; the working
// set is at most the usage; a limit that applies is below the host's memory (when known), and
// without one the limit is the host's memory.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "probes/memory_probe.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace {

using namespace tuner::probes;

void check(const tuner::MemoryInfo& info) {
    FUZZ_CHECK(info.working_set_bytes <= info.usage_bytes, "a working set above the usage");
    if (info.limited) {
        FUZZ_CHECK(info.host_total_bytes == 0 || info.limit_bytes < info.host_total_bytes,
                   "a cgroup limit at or above the host's memory counted as the limit");
    } else {
        FUZZ_CHECK(info.limit_bytes == info.host_total_bytes,
                   "no cgroup limit, yet the limit is not the host's memory");
    }
    (void)info.unreclaimable_bytes();
    (void)info.high_is_the_line();
    (void)info.line_bytes();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const char* const kFiles[] = {"cg/memory.max",
                                         "cg/memory.high",
                                         "cg/memory.current",
                                         "cg/memory.stat",
                                         "cg/memory.events",
                                         "cg/memory.limit_in_bytes",
                                         "cg/memory.usage_in_bytes",
                                         "cg/memory.oom_control",
                                         "proc/meminfo"};
    constexpr std::size_t kCount = sizeof kFiles / sizeof kFiles[0];
    auto& scratch = tuner::fuzz::Scratch::get();
    const auto parts = tuner::fuzz::split_parts(tuner::fuzz::as_text(data, size), kCount);
    for (std::size_t i = 0; i < kCount; ++i) scratch.put_part(kFiles[i], parts, i);

    const std::string dir = scratch.path() + "/cg";
    const std::string proc = scratch.path() + "/proc";
    for (int version : {1, 2}) {
        ControllerDir controller;
        controller.version = version;
        controller.cgroup_path = "/";
        controller.dir = dir;
        controller.mount_dir = dir;
        controller.mount_root = "/";
        std::vector<std::string> problems;
        check(probe_memory(controller, proc, problems));
    }
    std::vector<std::string> problems;
    check(probe_memory(std::nullopt, proc, problems));
    return 0;
}
