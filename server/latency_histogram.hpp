// A fixed-size log-linear histogram of latencies (microseconds) for percentiles over a window:
// 32 buckets per power of two, so a percentile is within half a bucket, 1/64 ≈ 1.6 %, of the
// true value (the idea of HdrHistogram, Gil Tene, without its dependency). Adding one value is
// an array increment.
#pragma once

#include <array>
#include <bit>
#include <cmath>
#include <cstdint>

namespace tuner::server {

class LatencyHistogram {
public:
    static constexpr unsigned kSubBuckets = 32;  // per power of two
    // Values below 32 µs exactly, then octaves 2^5 .. 2^40 µs (~12 days); larger ones clamp.
    static constexpr unsigned kOctaves = 36;
    static constexpr unsigned kBuckets = kSubBuckets * kOctaves;

    void add(std::uint64_t usec) {
        ++counts_[index(usec)];
        ++count_;
        sum_usec_ += usec;
    }

    void merge(const LatencyHistogram& other) {
        for (unsigned i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
        count_ += other.count_;
        sum_usec_ += other.sum_usec_;
    }

    void clear() { *this = LatencyHistogram{}; }

    [[nodiscard]] std::uint64_t count() const { return count_; }
    [[nodiscard]] double mean_usec() const {
        return count_ ? static_cast<double>(sum_usec_) / static_cast<double>(count_) : 0.0;
    }

    // Nearest-rank percentile (q in 0..1), the middle of its bucket.
    [[nodiscard]] double percentile_usec(double q) const {
        if (count_ == 0) return 0;
        auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_)));
        if (rank < 1) rank = 1;
        std::uint64_t seen = 0;
        for (unsigned i = 0; i < kBuckets; ++i) {
            seen += counts_[i];
            if (seen >= rank) return value_of(i);
        }
        return value_of(kBuckets - 1);
    }

    static unsigned index(std::uint64_t usec) {
        if (usec < kSubBuckets) return static_cast<unsigned>(usec);  // exact below 32 µs
        const unsigned octave = 63u - static_cast<unsigned>(std::countl_zero(usec));  // floor(log2)
        // Within [2^octave, 2^(octave+1)): 32 linear sub-buckets.
        const unsigned shift = octave - 5;  // 2^octave / 32 per sub-bucket
        const unsigned sub = static_cast<unsigned>((usec >> shift) - kSubBuckets);
        const unsigned i = (octave - 4) * kSubBuckets + sub;
        return i < kBuckets ? i : kBuckets - 1;
    }

    static double value_of(unsigned i) {
        if (i < kSubBuckets) return static_cast<double>(i);
        const unsigned octave = i / kSubBuckets + 4;
        const unsigned sub = i % kSubBuckets;
        const double width = std::ldexp(1.0, static_cast<int>(octave) - 5);
        const double low = std::ldexp(1.0, static_cast<int>(octave)) + sub * width;
        return low + width / 2;
    }

private:
    std::array<std::uint32_t, kBuckets> counts_{};
    std::uint64_t count_ = 0;
    std::uint64_t sum_usec_ = 0;
};

}  // namespace tuner::server
