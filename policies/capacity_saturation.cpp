// The capacity saturation ratio (see capacity_saturation.hpp).
#include "policies/capacity_saturation.hpp"

#include <algorithm>

namespace tuner::policies {

CapacitySaturation capacity_saturation(unsigned wanted, unsigned memory_cap, unsigned workers_max) {
    CapacitySaturation s;
    s.wanted = wanted;
    // A node always runs one worker (the memory ceiling is at least 1 too): never divide by 0.
    s.allowed = std::max(1u, std::min(memory_cap, workers_max));
    s.ratio = static_cast<double>(s.wanted) / static_cast<double>(s.allowed);
    return s;
}

unsigned wanted_workers(PoolMode mode, unsigned need_workers, unsigned cpu_workers,
                        unsigned fixed_count) {
    switch (mode) {
        case PoolMode::fixed:
            return fixed_count;
        case PoolMode::formula:
            return cpu_workers;
        case PoolMode::adaptive:
            return need_workers;
    }
    return need_workers;
}

nlohmann::json to_json(const CapacitySaturation& s) {
    return {{"wanted_workers", s.wanted}, {"allowed_workers", s.allowed}, {"ratio", s.ratio}};
}

}  // namespace tuner::policies
