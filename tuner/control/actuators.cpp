// The worker pool's actuators (see actuators.hpp).
#include "tuner/control/actuators.hpp"

namespace tuner {

namespace {

// A pool operation taking a count, as an actuator: a decision without a count fails.
template <class Operation>
Applier::Actuator count_actuator(Operation operation) {
    return [operation](const Decision& d) -> Status {
        const auto n = new_count(d);
        if (!n) return make_error(d.knob, "needs a count, got " + to_string(d.new_value));
        operation(*n);
        return {};
    };
}

}  // namespace

void register_pool_actuators(Applier& applier, server::WorkerPool& pool) {
    applier.set_actuator(knob::workers_count,
                         count_actuator([&pool](unsigned n) { pool.resize(n); }));
    applier.set_actuator(knob::workers_threads,
                         count_actuator([&pool](unsigned n) { pool.set_threads(n); }));
}

void register_cache_actuator(Applier& applier, std::function<void(std::uint64_t)> set_capacity) {
    applier.set_actuator(
        knob::cache_capacity, [set = std::move(set_capacity)](const Decision& d) -> Status {
            const auto bytes = new_bytes(d);
            if (!bytes)
                return make_error(d.knob, "needs a byte size, got " + to_string(d.new_value));
            set(*bytes);
            return {};
        });
}

}  // namespace tuner
