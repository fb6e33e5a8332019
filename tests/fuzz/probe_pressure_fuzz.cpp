// Fuzz target: the PSI readers (probes/pressure.hpp). The input is up to six pressure files,
// separated by NUL bytes: the cgroup's cpu.pressure, memory.pressure, io.pressure, then
// /proc/pressure/cpu, memory, io (a part not in the input: no such file). Each part goes to
// parse_pressure; probe_pressure reads them with and without the cgroup. What must hold: no
// crash; a parsed file has its "some" line; the source says where the values came from.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "probes/pressure.hpp"
#include "tests/fuzz/fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace tuner::probes;
    static const char* const kFiles[] = {"cg/cpu.pressure",      "cg/memory.pressure",
                                         "cg/io.pressure",       "proc/pressure/cpu",
                                         "proc/pressure/memory", "proc/pressure/io"};
    constexpr std::size_t kCount = sizeof kFiles / sizeof kFiles[0];
    auto& scratch = tuner::fuzz::Scratch::get();
    const auto parts = tuner::fuzz::split_parts(tuner::fuzz::as_text(data, size), kCount);
    for (const auto part : parts) {
        if (const auto parsed = parse_pressure(part, "fuzz")) {
            FUZZ_CHECK(parsed->some.has_value(), "a pressure file without its some line");
        }
    }
    for (std::size_t i = 0; i < kCount; ++i) scratch.put_part(kFiles[i], parts, i);

    ControllerDir unified;
    unified.version = 2;
    unified.cgroup_path = "/fuzz";
    unified.dir = scratch.path() + "/cg";
    unified.mount_dir = unified.dir;
    unified.mount_root = "/";
    const std::string proc = scratch.path() + "/proc";
    for (const auto& cgroup :
         {std::optional<ControllerDir>(unified), std::optional<ControllerDir>()}) {
        std::vector<std::string> problems;
        const auto info = probe_pressure(proc, cgroup, problems);
        const bool any = info.cpu || info.memory || info.io;
        FUZZ_CHECK(!any || !info.source.empty(), "pressure values without a source");
    }
    return 0;
}
