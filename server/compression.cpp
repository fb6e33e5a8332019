// Response compression (see compression.hpp).
#include "server/compression.hpp"

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <new>

#include <brotli/encode.h>
#include <zlib.h>

namespace tuner::server {
namespace {

// Output is produced in pieces of this size (both libraries fill what they are given).
constexpr std::size_t kOutputStep = 16 * 1024;
// gzip: a 32 KB window and hash level 8, nginx's gzip_window and gzip_hash defaults: about
// 256 KB per stream at most, less for a short response (window sized to the length).
constexpr int kGzipWindowBits = 15;
constexpr int kGzipMemLevel = 8;
// brotli: a 256 KB window (lgwin 18) rather than the library's 4 MB (22): the ratio of a web
// response gains little beyond it, and the window is most of the encoder's memory.
constexpr int kBrotliMaxWindowBits = 18;

char lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (lower(a[i]) != lower(b[i])) return false;
    }
    return true;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// RFC 9110 §5.6.2 tchar.
bool is_token(std::string_view s) {
    if (s.empty()) return false;
    for (const char c : s) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') ||
                        std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
        if (!ok) return false;
    }
    return true;
}

// RFC 9110 §12.4.2 qvalue: "0" [ "." 0*3DIGIT ] / "1" [ "." 0*3("0") ], in thousandths.
std::optional<int> parse_qvalue(std::string_view text) {
    if (text.empty() || (text[0] != '0' && text[0] != '1')) return std::nullopt;
    int value = (text[0] - '0') * 1000;
    if (text.size() == 1) return value;
    if (text[1] != '.' || text.size() > 5) return std::nullopt;
    int scale = 100;
    for (std::size_t i = 2; i < text.size(); ++i, scale /= 10) {
        const char c = text[i];
        if (c < '0' || c > '9') return std::nullopt;
        if (value == 1000 && c != '0') return std::nullopt;
        value += (c - '0') * scale;
    }
    return value;
}

// Splits `list` at commas, calling `each` with every trimmed, non-empty element, at most
// `limit` of them.
template <class Each>
void for_each_element(std::string_view list, std::size_t limit, Each each) {
    std::size_t seen = 0;
    while (!list.empty() && seen < limit) {
        const auto comma = list.find(',');
        const auto element = trim(list.substr(0, comma));
        list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
        if (element.empty()) continue;
        ++seen;
        each(element);
    }
}

bool has_no_transform(std::string_view cache_control) {
    bool found = false;
    for_each_element(cache_control, 64, [&](std::string_view directive) {
        const auto name = trim(directive.substr(0, directive.find('=')));
        if (iequal(name, "no-transform")) found = true;
    });
    return found;
}

std::uint64_t thread_cpu_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL +
           static_cast<std::uint64_t>(ts.tv_nsec);
}

// The libraries allocate through this, so that the memory of every encoder is counted (it is
// tunerd's own memory, in the memory budget). Each block carries its size in front.
class CountedMemory {
public:
    explicit CountedMemory(CompressionCounters& counters) : counters_(counters) {}
    ~CountedMemory() { counters_.memory_bytes -= held_; }
    CountedMemory(const CountedMemory&) = delete;
    CountedMemory& operator=(const CountedMemory&) = delete;

    void* allocate(std::size_t size) {
        auto* block = static_cast<unsigned char*>(std::malloc(size + kHeader));
        if (!block) return nullptr;
        *reinterpret_cast<std::size_t*>(block) = size;
        add(static_cast<std::int64_t>(size));
        return block + kHeader;
    }
    void release(void* p) {
        if (!p) return;
        auto* block = static_cast<unsigned char*>(p) - kHeader;
        add(-static_cast<std::int64_t>(*reinterpret_cast<std::size_t*>(block)));
        std::free(block);
    }
    [[nodiscard]] std::int64_t peak() const { return peak_; }

    static void* zlib_alloc(void* self, unsigned items, unsigned size) {
        return static_cast<CountedMemory*>(self)->allocate(static_cast<std::size_t>(items) * size);
    }
    static void zlib_free(void* self, void* p) { static_cast<CountedMemory*>(self)->release(p); }
    static void* brotli_alloc(void* self, std::size_t size) {
        return static_cast<CountedMemory*>(self)->allocate(size);
    }
    static void brotli_free(void* self, void* p) { static_cast<CountedMemory*>(self)->release(p); }

private:
    static constexpr std::size_t kHeader = alignof(std::max_align_t);
    void add(std::int64_t bytes) {
        held_ += bytes;
        peak_ = std::max(peak_, held_);
        counters_.memory_bytes += bytes;
    }
    CompressionCounters& counters_;
    std::int64_t held_ = 0;
    std::int64_t peak_ = 0;
};

class GzipEncoder final : public Encoder {
public:
    GzipEncoder(CompressionCounters& counters)
        : Encoder(Coding::gzip, counters), memory_(counters) {}
    ~GzipEncoder() override {
        if (ready_) deflateEnd(&stream_);
    }
    bool init(unsigned level, std::optional<std::uint64_t> size_hint) {
        int window_bits = kGzipWindowBits;
        int mem_level = kGzipMemLevel;
        if (size_hint && *size_hint > 0) {
            // nginx's ngx_http_gzip_filter_memory: zlib's real window is 262 bytes short.
            while (window_bits > 9 && *size_hint < (1ULL << (window_bits - 1)) - 262) {
                --window_bits;
                --mem_level;
            }
            mem_level = std::max(mem_level, 1);
        }
        stream_.zalloc = &CountedMemory::zlib_alloc;
        stream_.zfree = &CountedMemory::zlib_free;
        stream_.opaque = &memory_;
        // + 16: the gzip wrapper (RFC 1952) rather than zlib's (RFC 1950).
        ready_ = deflateInit2(&stream_, static_cast<int>(std::clamp(level, 1u, 9u)), Z_DEFLATED,
                              window_bits + 16, mem_level, Z_DEFAULT_STRATEGY) == Z_OK;
        return ready_;
    }
    [[nodiscard]] std::int64_t peak_memory() const { return memory_.peak(); }

private:
    bool run(std::span<const char> in, Flush flush, std::string& out) override {
        const int mode = flush == Flush::none   ? Z_NO_FLUSH
                         : flush == Flush::sync ? Z_SYNC_FLUSH
                                                : Z_FINISH;
        stream_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
        stream_.avail_in = static_cast<uInt>(in.size());
        for (;;) {
            const std::size_t before = out.size();
            out.resize(before + kOutputStep);
            stream_.next_out = reinterpret_cast<Bytef*>(out.data() + before);
            stream_.avail_out = static_cast<uInt>(kOutputStep);
            const int rc = deflate(&stream_, mode);
            const bool full = stream_.avail_out == 0;
            out.resize(before + kOutputStep - stream_.avail_out);
            if (rc == Z_STREAM_ERROR) return false;
            if (rc == Z_STREAM_END) return true;
            // Room left: all input taken and flushed as asked (Z_BUF_ERROR there only says
            // that there was nothing to do). Z_FINISH goes on until Z_STREAM_END.
            if (!full && mode != Z_FINISH) return true;
            if (!full && rc == Z_BUF_ERROR) return false;
        }
    }

    CountedMemory memory_;
    z_stream stream_{};
    bool ready_ = false;
};

class BrotliEncoder final : public Encoder {
public:
    BrotliEncoder(CompressionCounters& counters)
        : Encoder(Coding::br, counters), memory_(counters) {}
    ~BrotliEncoder() override {
        if (state_) BrotliEncoderDestroyInstance(state_);
    }
    bool init(unsigned level, std::optional<std::uint64_t> size_hint) {
        state_ = BrotliEncoderCreateInstance(&CountedMemory::brotli_alloc,
                                             &CountedMemory::brotli_free, &memory_);
        if (!state_) return false;
        int window_bits = kBrotliMaxWindowBits;
        if (size_hint && *size_hint > 0) {
            while (window_bits > BROTLI_MIN_WINDOW_BITS &&
                   *size_hint <= (1ULL << (window_bits - 1)))
                --window_bits;
            BrotliEncoderSetParameter(
                state_, BROTLI_PARAM_SIZE_HINT,
                static_cast<std::uint32_t>(std::min<std::uint64_t>(*size_hint, 1U << 30)));
        }
        BrotliEncoderSetParameter(state_, BROTLI_PARAM_QUALITY, std::min(level, 11u));
        BrotliEncoderSetParameter(state_, BROTLI_PARAM_LGWIN,
                                  static_cast<std::uint32_t>(window_bits));
        return true;
    }
    [[nodiscard]] std::int64_t peak_memory() const { return memory_.peak(); }

private:
    bool run(std::span<const char> in, Flush flush, std::string& out) override {
        const BrotliEncoderOperation op = flush == Flush::none   ? BROTLI_OPERATION_PROCESS
                                          : flush == Flush::sync ? BROTLI_OPERATION_FLUSH
                                                                 : BROTLI_OPERATION_FINISH;
        auto next_in = reinterpret_cast<const std::uint8_t*>(in.data());
        std::size_t avail_in = in.size();
        for (;;) {
            const std::size_t before = out.size();
            out.resize(before + kOutputStep);
            auto next_out = reinterpret_cast<std::uint8_t*>(out.data() + before);
            std::size_t avail_out = kOutputStep;
            const bool ok = BrotliEncoderCompressStream(state_, op, &avail_in, &next_in, &avail_out,
                                                        &next_out, nullptr);
            out.resize(before + kOutputStep - avail_out);
            if (!ok) return false;
            if (avail_in == 0 && !BrotliEncoderHasMoreOutput(state_)) {
                if (op != BROTLI_OPERATION_FINISH || BrotliEncoderIsFinished(state_)) return true;
            }
        }
    }

    CountedMemory memory_;
    BrotliEncoderState* state_ = nullptr;
};

}  // namespace

const char* to_string(Coding coding) {
    switch (coding) {
        case Coding::identity:
            return "identity";
        case Coding::gzip:
            return "gzip";
        case Coding::br:
            return "br";
    }
    return "?";
}

Coding negotiate_coding(std::optional<std::string_view> accept_encoding) {
    if (!accept_encoding) return Coding::identity;
    // q in thousandths; -1: not listed.
    int gzip = -1, br = -1, star = -1, identity = -1;
    for_each_element(*accept_encoding, kMaxAcceptEncodingElements, [&](std::string_view element) {
        const auto semicolon = element.find(';');
        const auto name = trim(element.substr(0, semicolon));
        if (!is_token(name)) return;
        int q = 1000;
        auto params = semicolon == std::string_view::npos ? std::string_view{}
                                                          : element.substr(semicolon + 1);
        while (!params.empty()) {
            const auto next = params.find(';');
            const auto param = trim(params.substr(0, next));
            params = next == std::string_view::npos ? std::string_view{} : params.substr(next + 1);
            const auto eq = param.find('=');
            if (eq == std::string_view::npos || !iequal(trim(param.substr(0, eq)), "q")) continue;
            const auto value = parse_qvalue(trim(param.substr(eq + 1)));
            if (!value) return;  // a malformed weight: the element is ignored
            q = *value;
        }
        int* slot = iequal(name, "gzip") || iequal(name, "x-gzip") ? &gzip
                    : iequal(name, "br")                           ? &br
                    : iequal(name, "identity")                     ? &identity
                    : name == "*"                                  ? &star
                                                                   : nullptr;
        if (slot && *slot < 0) *slot = q;  // the first mention counts
    });
    const int q_gzip = gzip >= 0 ? gzip : std::max(star, 0);
    const int q_br = br >= 0 ? br : std::max(star, 0);
    // identity is always acceptable unless excluded (RFC 9110 §12.5.3), but it is preferred to
    // a coding only when the client weighs it higher, by name or through "*".
    const int q_identity = identity >= 0 ? identity : std::max(star, 0);
    const bool use_br = q_br > 0 && q_br >= q_gzip;
    const int q_best = use_br ? q_br : q_gzip;
    if (q_best <= 0 || q_best < q_identity) return Coding::identity;
    return use_br ? Coding::br : Coding::gzip;
}

std::optional<std::string> type_pattern_problem(std::string_view pattern) {
    const auto slash = pattern.find('/');
    if (slash == std::string_view::npos || pattern.size() > 127) {
        return "expected a media type such as \"text/*\", \"application/json\" or "
               "\"application/*+json\"";
    }
    const auto type = pattern.substr(0, slash);
    auto subtype = pattern.substr(slash + 1);
    if (!is_token(type) || type.find('*') != std::string_view::npos)
        return "the type before \"/\" must be a name such as \"text\", not \"" + std::string(type) +
               "\"";
    if (subtype == "*") return std::nullopt;
    if (subtype.starts_with("*+")) subtype.remove_prefix(2);
    if (!is_token(subtype) || subtype.find('*') != std::string_view::npos)
        return "the subtype must be a name, \"*\" or \"*+suffix\", not \"" +
               std::string(pattern.substr(slash + 1)) + "\"";
    return std::nullopt;
}

bool type_matches(const std::vector<std::string>& patterns, std::string_view content_type) {
    const auto media = trim(content_type.substr(0, content_type.find(';')));
    const auto slash = media.find('/');
    if (slash == std::string_view::npos) return false;
    const auto type = media.substr(0, slash);
    const auto subtype = media.substr(slash + 1);
    for (const auto& p : patterns) {
        const std::string_view pattern(p);
        const auto pslash = pattern.find('/');
        if (pslash == std::string_view::npos || !iequal(pattern.substr(0, pslash), type)) continue;
        const auto psub = pattern.substr(pslash + 1);
        if (psub == "*") return true;
        if (psub.starts_with("*+")) {
            const auto suffix = psub.substr(1);  // "+json"
            if (subtype.size() > suffix.size() &&
                iequal(subtype.substr(subtype.size() - suffix.size()), suffix))
                return true;
            continue;
        }
        if (iequal(psub, subtype)) return true;
    }
    return false;
}

CompressionPlan plan_compression(const CompressionConfig& config, const ResponseFacts& response,
                                 Coding accepted) {
    if (!config.enabled) return {};
    if (response.status < 200 || response.status >= 300 || response.status == 204 ||
        response.status == 206)
        return {};
    if (!trim(response.content_encoding).empty() || response.content_range) return {};
    if (has_no_transform(response.cache_control)) return {};
    if (!type_matches(config.types, response.content_type)) return {};
    if (response.content_length && *response.content_length < config.min_size_bytes) return {};
    return {true, accepted};
}

CompressionLevels effective_levels(const CompressionConfig& config, std::optional<unsigned> tuned) {
    CompressionLevels levels;
    const unsigned ceiling = std::clamp(config.level, 1u, 9u);
    levels.gzip = tuned ? std::clamp(*tuned, 1u, ceiling) : ceiling;
    levels.brotli = std::min(config.brotli_at(levels.gzip), 11u);
    return levels;
}

CompressionStats read_counters(const CompressionCounters& counters) {
    CompressionStats stats;
    auto copy = [](const CompressionCounters::PerCoding& from, CompressionStats::PerCoding& to) {
        to.responses = from.responses.load(std::memory_order_relaxed);
        to.bytes_in = from.bytes_in.load(std::memory_order_relaxed);
        to.bytes_out = from.bytes_out.load(std::memory_order_relaxed);
        to.cpu_seconds = static_cast<double>(from.cpu_ns.load(std::memory_order_relaxed)) / 1e9;
    };
    copy(counters.by_coding[0], stats.gzip);
    copy(counters.by_coding[1], stats.br);
    stats.memory_bytes = counters.memory_bytes.load(std::memory_order_relaxed);
    stats.encoders = counters.encoders.load(std::memory_order_relaxed);
    stats.over_memory = counters.over_memory.load(std::memory_order_relaxed);
    return stats;
}

std::unique_ptr<Encoder> Encoder::make(Coding coding, unsigned level,
                                       std::optional<std::uint64_t> size_hint,
                                       CompressionCounters& counters) {
    std::unique_ptr<Encoder> made;
    if (coding == Coding::gzip) {
        auto encoder = std::make_unique<GzipEncoder>(counters);
        if (encoder->init(level, size_hint)) made = std::move(encoder);
    } else if (coding == Coding::br) {
        auto encoder = std::make_unique<BrotliEncoder>(counters);
        if (encoder->init(level, size_hint)) made = std::move(encoder);
    }
    if (made) counters.of(coding).responses.fetch_add(1, std::memory_order_relaxed);
    return made;
}

bool Encoder::encode(std::span<const char> in, Flush flush, std::string& out) {
    if (finished_) return in.empty();
    const std::size_t before = out.size();
    const std::uint64_t started = thread_cpu_ns();
    const bool ok = run(in, flush, out);
    const std::uint64_t spent = thread_cpu_ns() - started;
    auto& c = counters_.of(coding_);
    c.bytes_in.fetch_add(in.size(), std::memory_order_relaxed);
    c.bytes_out.fetch_add(out.size() - before, std::memory_order_relaxed);
    c.cpu_ns.fetch_add(spent, std::memory_order_relaxed);
    if (ok && flush == Flush::finish) finished_ = true;
    return ok;
}

std::int64_t encoder_memory_bytes(Coding coding, unsigned level,
                                  std::optional<std::uint64_t> size_hint) {
    CompressionCounters counters;
    auto encoder = Encoder::make(coding, level, size_hint, counters);
    if (!encoder) return 0;
    // Brotli sets up its window and hash tables at the first input: some must go through.
    std::string input(
        static_cast<std::size_t>(std::min<std::uint64_t>(size_hint.value_or(65536), 65536)), 'x');
    for (std::size_t i = 0; i < input.size(); ++i)
        input[i] = static_cast<char>('a' + (i * 7919) % 26);
    std::string out;
    encoder->encode(input, Flush::finish, out);
    if (coding == Coding::gzip) return static_cast<GzipEncoder&>(*encoder).peak_memory();
    return static_cast<BrotliEncoder&>(*encoder).peak_memory();
}

}  // namespace tuner::server
