// Memory pressure detection (see memory_pressure.hpp).
#include "policies/memory_pressure.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "policies/reason_text.hpp"

namespace tuner::policies {

MemoryPressure memory_pressure(const Snapshot& snapshot, const WorkerSignals& signals,
                               std::uint64_t per_process_bytes) {
    MemoryPressure p;
    const MemoryInfo& m = snapshot.memory;
    p.working_set_bytes = m.working_set_bytes;
    p.line_bytes = m.line_bytes();
    const std::string line_name = m.high_is_the_line() ? "memory.high" : "memory.max";

    std::vector<std::string> causes;
    if (signals.new_oom_kills > 0) {
        causes.push_back(
            fmt::format("{} OOM kill(s) counted (total {})", signals.new_oom_kills, m.oom_kills));
    }
    // The active page cache is in the working set but the kernel reclaims it before an OOM kill:
    // only what it cannot reclaim counts against the line.
    p.held_bytes = m.unreclaimable_bytes();
    const double fraction =
        p.line_bytes ? static_cast<double>(p.held_bytes) / static_cast<double>(p.line_bytes) : 0;
    if (p.line_bytes && fraction >= kMemoryPressureFraction) {
        const std::string held =
            m.active_file_bytes == 0
                ? "working set " + format_size_approx(p.working_set_bytes)
                : "working set " + format_size_approx(p.working_set_bytes) + " less " +
                      format_size_approx(m.active_file_bytes) +
                      " active page cache = " + format_size_approx(p.held_bytes);
        causes.push_back(held + " = " + text::percent(fraction) + " of " + line_name + " " +
                         format_size_approx(p.line_bytes) + " (≥ " +
                         text::percent(kMemoryPressureFraction) + ")");
    }
    if (signals.memory_psi_some_avg10 >= kMemoryPsiThreshold && signals.memory_psi_rise > 0) {
        causes.push_back("memory PSI some avg10 " + text::number(signals.memory_psi_some_avg10, 1) +
                         " % and rising (+" + text::number(signals.memory_psi_rise, 1) + ")");
    }
    if (!p.line_bytes && m.host_total_bytes > 0 && m.host_available_bytes > 0 &&
        static_cast<double>(m.host_available_bytes) <
            (1 - kMemoryPressureFraction) * static_cast<double>(m.host_total_bytes)) {
        causes.push_back("host MemAvailable " + format_size_approx(m.host_available_bytes) + " < " +
                         text::percent(1 - kMemoryPressureFraction) + " of " +
                         format_size_approx(m.host_total_bytes));
    }
    if (causes.empty()) return p;

    p.pressing = true;
    for (std::size_t i = 0; i < causes.size(); ++i) p.cause += (i ? "; " : "") + causes[i];
    p.release_workers = 1;
    if (p.line_bytes && per_process_bytes > 0) {
        const double target = kMemoryTargetFraction * static_cast<double>(p.line_bytes);
        const double excess = static_cast<double>(p.held_bytes) - target;
        if (excess > 0) {
            p.release_workers = std::max(
                1u,
                static_cast<unsigned>(std::ceil(excess / static_cast<double>(per_process_bytes))));
        }
    }
    return p;
}

nlohmann::json to_json(const MemoryPressure& p) {
    return {{"pressing", p.pressing},     {"cause", p.cause},
            {"line_bytes", p.line_bytes}, {"working_set_bytes", p.working_set_bytes},
            {"held_bytes", p.held_bytes}, {"release_workers", p.release_workers}};
}

}  // namespace tuner::policies
