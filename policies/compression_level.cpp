// The compression level policy (see compression_level.hpp).
#include "policies/compression_level.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "model/knobs.hpp"
#include "policies/reason_text.hpp"
#include "policies/registry.hpp"

namespace tuner::policies {

std::optional<Decision> CompressionLevelPolicy::decide(const Snapshot& snapshot,
                                                       const CompressionState& state) {
    if (!state.config.enabled || !snapshot.cpu.utilisation) {
        samples_.clear();
        last_cpu_seconds_ = state.cpu_seconds;
        return std::nullopt;
    }
    const double spent =
        last_cpu_seconds_ ? std::max(0.0, state.cpu_seconds - *last_cpu_seconds_) : 0.0;
    last_cpu_seconds_ = state.cpu_seconds;
    samples_.push_back({*snapshot.cpu.utilisation, spent});
    while (samples_.size() > kCompressionSamples) samples_.pop_front();
    if (samples_.size() < kCompressionMinSamples) return std::nullopt;
    if (last_change_ && snapshot.taken_at - *last_change_ < kCompressionCooldown)
        return std::nullopt;

    double utilisation = 0, compression_cpu = 0;
    for (const auto& s : samples_) {
        utilisation += s.cpu_utilisation;
        compression_cpu += s.compression_cpu_seconds;
    }
    utilisation /= static_cast<double>(samples_.size());
    const unsigned ceiling = state.config.level;
    const unsigned level = state.level;

    unsigned to = level;
    std::string_view rule_name;
    std::string why;
    if (utilisation >= kCompressionSaturated && level > kCompressionFloor && compression_cpu > 0) {
        to = level - 1;
        rule_name = rule::compression_cpu_saturated;
        why = "CPU " + text::percent(utilisation) + " of the quota over the last " +
              std::to_string(samples_.size()) + " cycles (≥ " +
              text::percent(kCompressionSaturated) + "), compression took " +
              text::ms(compression_cpu * 1000) + " of it";
    } else if (utilisation <= kCompressionHeadroom && level < ceiling) {
        to = level + 1;
        rule_name = rule::compression_headroom;
        why = "CPU " + text::percent(utilisation) + " of the quota over the last " +
              std::to_string(samples_.size()) + " cycles (≤ " +
              text::percent(kCompressionHeadroom) + "): back towards the configured level " +
              std::to_string(ceiling);
    } else {
        return std::nullopt;
    }
    last_change_ = snapshot.taken_at;
    samples_.clear();  // the next decision judges the new level
    const std::string reason = why + " → gzip level " + std::to_string(level) + " → " +
                               std::to_string(to) + " (brotli " +
                               std::to_string(state.config.brotli_at(level)) + " → " +
                               std::to_string(state.config.brotli_at(to)) + ")";
    const nlohmann::json inputs = {{"cpu_utilisation", utilisation},
                                   {"compression_cpu_seconds", compression_cpu},
                                   {"level", level},
                                   {"ceiling", ceiling},
                                   {"floor", kCompressionFloor}};
    return make_decision(knob::compression_level, snapshot.taken_at_wall,
                         Count{static_cast<std::int64_t>(level)},
                         Count{static_cast<std::int64_t>(to)}, {rule_name, reason, inputs.dump()});
}

}  // namespace tuner::policies
