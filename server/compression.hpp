// Response compression of the front ([compression]): which coding a client accepts
// (Accept-Encoding, RFC 9110 §12.5.3), whether a response may be compressed at all, and the
// streaming encoders (zlib's gzip, brotli) with the bytes and CPU time they cost. Pure functions
// and a small encoder class; the session's use of them is in compression_relay.hpp.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/config.hpp"

namespace tuner::server {

enum class Coding { identity, gzip, br };
const char* to_string(Coding coding);

// The compressors of all responses in progress hold at most about this much memory: beyond it a
// response goes uncompressed (a brotli stream at quality 4 holds 2 MB, a gzip one 262 KB, so
// this is some 16 brotli or 120 gzip responses at once; docs/configuration.md).
inline constexpr std::int64_t kMaxCompressionMemoryBytes = 32 * 1024 * 1024;

// At most this many list elements of Accept-Encoding are looked at (a browser sends 3 or 4):
// the work per request is bounded whatever a client sends.
inline constexpr std::size_t kMaxAcceptEncodingElements = 32;

// The coding for a response to a request whose Accept-Encoding lines, joined with ",", are
// `accept_encoding` (nullopt: no such field, which tunerd answers uncompressed). RFC 9110
// §12.5.3: a coding is acceptable with q > 0, listed by name or through "*"; "x-gzip" is gzip
// (§8.4.1.3); names are case-insensitive; a malformed element is ignored. The acceptable coding
// of highest q wins, br before gzip at equal q; identity when the client weighs it higher (by
// name or through "*") or accepts neither.
Coding negotiate_coding(std::optional<std::string_view> accept_encoding);

// A media type pattern of compression.types: "type/subtype", "type/*" or "type/*+suffix".
// The problem with `pattern`, or nullopt when it is one of those.
std::optional<std::string> type_pattern_problem(std::string_view pattern);
// Does the response's Content-Type (parameters ignored, case-insensitive) match a pattern?
bool type_matches(const std::vector<std::string>& patterns, std::string_view content_type);

// What the front knows of a response when it decides (its header is read, its body not).
struct ResponseFacts {
    int status = 200;
    bool head = false;                            // the request was HEAD
    std::optional<std::uint64_t> content_length;  // unset: chunked or close-delimited
    std::string_view content_type;
    std::string_view content_encoding;  // the worker's own coding, if any
    bool content_range = false;         // a Content-Range field is present
    std::string_view cache_control;     // every Cache-Control line, joined with ","
};

struct CompressionPlan {
    // The response's representation depends on Accept-Encoding: it gets Vary: Accept-Encoding
    // (also when this client gets it uncompressed).
    bool vary = false;
    Coding coding = Coding::identity;  // what this client gets
};

// The rules of docs/configuration.md "[compression]": a 2xx with content (not 204, not 206), not
// encoded by the worker already, no Content-Range, no Cache-Control: no-transform (RFC 9111
// §5.2.2.6), a type in compression.types and, when its length is known, at least min_size.
CompressionPlan plan_compression(const CompressionConfig& config, const ResponseFacts& response,
                                 Coding accepted);

// The levels in use: gzip at `tuned` (the policy's knob, nullopt: none yet) capped by the
// configured level, and brotli lowered by as many steps as gzip is below its ceiling (at least 1,
// or 0 when configured 0).
struct CompressionLevels {
    unsigned gzip = 6;
    unsigned brotli = 4;
};
CompressionLevels effective_levels(const CompressionConfig& config, std::optional<unsigned> tuned);

// ---- counters -------------------------------------------------------------------------------

// Cumulative, shared by every session of a front (relaxed atomics: reporting only).
struct CompressionCounters {
    struct PerCoding {
        std::atomic<std::uint64_t> responses{0};
        std::atomic<std::uint64_t> bytes_in{0};
        std::atomic<std::uint64_t> bytes_out{0};
        std::atomic<std::uint64_t> cpu_ns{0};
    };
    std::array<PerCoding, 2> by_coding;         // [0] gzip, [1] br
    std::atomic<std::int64_t> memory_bytes{0};  // held by the encoders alive now
    std::atomic<std::int64_t> encoders{0};      // encoders alive now
    std::atomic<std::uint64_t> over_memory{0};  // sent plain: kMaxCompressionMemoryBytes held

    PerCoding& of(Coding coding) { return by_coding[coding == Coding::br ? 1 : 0]; }
};

// A copy of the counters for the admin API.
struct CompressionStats {
    struct PerCoding {
        std::uint64_t responses = 0;
        std::uint64_t bytes_in = 0;
        std::uint64_t bytes_out = 0;
        double cpu_seconds = 0;
    };
    bool enabled = true;
    CompressionLevels levels;       // in use now
    unsigned configured_level = 6;  // the ceiling (compression.level)
    std::uint64_t min_size_bytes = 0;
    PerCoding gzip;
    PerCoding br;
    std::int64_t memory_bytes = 0;
    std::int64_t encoders = 0;
    std::uint64_t over_memory = 0;

    [[nodiscard]] double cpu_seconds() const { return gzip.cpu_seconds + br.cpu_seconds; }
};
CompressionStats read_counters(const CompressionCounters& counters);

// ---- the encoder ------------------------------------------------------------------------------

enum class Flush {
    none,    // more input follows: the encoder may keep what it has
    sync,    // everything so far must be decodable by the client now (a pause in the stream)
    finish,  // the last input: the stream ends
};

// One response's compressor: a zlib deflate stream in gzip framing, or a brotli encoder. Its
// memory exists only while a response is compressed, and is counted in the counters. Not
// thread-safe; each call's CPU time (CLOCK_THREAD_CPUTIME_ID) and bytes are counted.
class Encoder {
public:
    // `size_hint`: the body's length when known; a smaller one gets a smaller window (as nginx
    // sizes gzip's window to the response). Null when the library cannot set up (no memory).
    // Counts one response of `coding`.
    static std::unique_ptr<Encoder> make(Coding coding, unsigned level,
                                         std::optional<std::uint64_t> size_hint,
                                         CompressionCounters& counters);
    virtual ~Encoder() { counters_.encoders.fetch_sub(1, std::memory_order_relaxed); }
    Encoder(const Encoder&) = delete;
    Encoder& operator=(const Encoder&) = delete;
    // Compresses `in` and appends what comes out to `out`; false when the library fails (the
    // response is then cut). The output of one call is bounded by about the input plus a small
    // overhead (both libraries' bound), so a caller that bounds the input bounds the output.
    bool encode(std::span<const char> in, Flush flush, std::string& out);
    [[nodiscard]] Coding coding() const { return coding_; }
    [[nodiscard]] bool finished() const { return finished_; }

protected:
    Encoder(Coding coding, CompressionCounters& counters) : coding_(coding), counters_(counters) {
        counters_.encoders.fetch_add(1, std::memory_order_relaxed);
    }
    virtual bool run(std::span<const char> in, Flush flush, std::string& out) = 0;

    Coding coding_;
    CompressionCounters& counters_;
    bool finished_ = false;
};

// The memory one encoder holds at this level and size hint (measured through the libraries'
// allocators; docs/configuration.md quotes it).
std::int64_t encoder_memory_bytes(Coding coding, unsigned level,
                                  std::optional<std::uint64_t> size_hint);

}  // namespace tuner::server
