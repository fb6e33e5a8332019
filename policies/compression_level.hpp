// The compression level as a tuned knob (compression.level): compressing takes CPU from the
// workers. While the CPU quota is saturated (mean ≥ 90 % over the last cycles) and compression
// spent CPU in that time, the gzip level steps down by one (brotli's quality with it, see
// CompressionConfig::brotli_at), to a floor of 1; with headroom (≤ 60 %) it steps back up towards
// the configured level, its ceiling. Between the two the level holds (hysteresis), and it moves at
// most once per kCompressionCooldown. Sources: nginx gzip_comp_level (1-9, default 1; 1-6 is what
// sites run: past 6 the ratio gains ~1 % for much more CPU), zlib's deflate levels and brotli's
// qualities as speed-for-ratio trades (docs/policies.md, docs/benchmarks.md).
#pragma once

#include <deque>
#include <optional>

#include "model/config.hpp"
#include "model/decision.hpp"
#include "model/snapshot.hpp"

namespace tuner::policies {

inline constexpr double kCompressionSaturated = 0.90;
inline constexpr double kCompressionHeadroom = 0.60;
inline constexpr unsigned kCompressionFloor = 1;
// The utilisation is the mean of this many cycles (one noisy interval decides nothing), and at
// least kCompressionMinSamples of them must be there.
inline constexpr std::size_t kCompressionSamples = 5;
inline constexpr std::size_t kCompressionMinSamples = 3;
inline constexpr Duration kCompressionCooldown = std::chrono::seconds(10);

// The front's compression as the policy sees it (Front::connection_stats().compression).
struct CompressionState {
    CompressionConfig config;  // the ceiling (config.level) and brotli's mapping
    unsigned level = 6;        // the gzip level in use now: the knob's value
    double cpu_seconds = 0;    // compress CPU since start (cumulative)
};

class CompressionLevelPolicy {
public:
    // One control cycle: a decision on compression.level when one is due.
    std::optional<Decision> decide(const Snapshot& snapshot, const CompressionState& state);

private:
    struct Sample {
        double cpu_utilisation = 0;
        double compression_cpu_seconds = 0;  // spent since the previous sample
    };
    std::deque<Sample> samples_;  // at most kCompressionSamples
    std::optional<double> last_cpu_seconds_;
    std::optional<Clock::time_point> last_change_;
};

}  // namespace tuner::policies
