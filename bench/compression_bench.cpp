// What compressing a response costs per level: CPU time per MB of input and the ratio, for gzip
// levels 1-9 (zlib, windowBits 15, memLevel 8: nginx's defaults) and brotli qualities 0-11
// (lgwin 18), through the front's own Encoder in kCompressStep pieces as a streamed response
// is compressed. Two payloads: a JSON API listing and an HTML page, both generated with varied
// words and numbers (a fixed seed), 256 KB each. Results in docs/benchmarks.md ("Compression").
#include <cstdio>
#include <random>
#include <string>

#include <benchmark/benchmark.h>
#include <brotli/encode.h>
#include <nlohmann/json.hpp>
#include <zlib.h>

#include "server/compression.hpp"

namespace {

using tuner::server::Coding;
using tuner::server::CompressionCounters;
using tuner::server::Encoder;
using tuner::server::Flush;

constexpr std::size_t kPayloadBytes = 256 * 1024;
constexpr std::size_t kStep = 16 * 1024;  // compression_relay.hpp's kCompressStep

const char* const kWords[] = {
    "order",   "customer", "shipped", "pending",  "invoice",  "product", "warehouse", "berlin",
    "paris",   "lisbon",   "express", "standard", "refund",   "review",  "excellent", "broken",
    "return",  "account",  "premium", "basic",    "discount", "coupon",  "delivery",  "tracking",
    "package", "priority", "green",   "blue",     "large",    "small",   "monthly",   "annual"};

std::string word(std::mt19937& rng) {
    return kWords[rng() % (sizeof kWords / sizeof kWords[0])];
}

// An API's JSON listing: objects with ids, names, prices, timestamps, nested tags.
std::string json_payload() {
    std::mt19937 rng(42);
    nlohmann::json items = nlohmann::json::array();
    std::string text;
    for (int i = 0; text.size() < kPayloadBytes; ++i) {
        items.push_back({{"id", 100000 + i * 7 + static_cast<int>(rng() % 7)},
                         {"name", word(rng) + " " + word(rng) + " " + std::to_string(rng() % 1000)},
                         {"price", static_cast<double>(rng() % 100000) / 100.0},
                         {"currency", rng() % 3 ? "EUR" : "USD"},
                         {"created_at", "2026-11-" + std::to_string(10 + rng() % 18) + "T" +
                                            std::to_string(10 + rng() % 13) + ":" +
                                            std::to_string(10 + rng() % 49) + ":00Z"},
                         {"tags", {word(rng), word(rng)}},
                         {"in_stock", rng() % 2 == 0},
                         {"rating", static_cast<double>(rng() % 50) / 10.0}});
        if (i % 64 == 63) text = nlohmann::json{{"items", items}}.dump();
    }
    return text.substr(0, kPayloadBytes);
}

// A server-rendered HTML page: a table of rows with links and classes.
std::string html_payload() {
    std::mt19937 rng(7);
    std::string html =
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>"
        "Orders</title><link rel=\"stylesheet\" href=\"/static/app.css\"></head>"
        "<body><main class=\"container\"><table class=\"orders\">\n";
    for (int i = 0; html.size() < kPayloadBytes; ++i) {
        html += "<tr class=\"row " + word(rng) + "\"><td><a href=\"/orders/" +
                std::to_string(500000 + i) + "\">" + word(rng) + " " + word(rng) +
                "</a></td><td class=\"num\">" + std::to_string(rng() % 10000) + "." +
                std::to_string(rng() % 100) + "</td><td><span class=\"badge " + word(rng) + "\">" +
                word(rng) + "</span></td><td>" + word(rng) + " " + word(rng) + " " + word(rng) +
                "</td></tr>\n";
    }
    return html.substr(0, kPayloadBytes);
}

void compress(benchmark::State& state, Coding coding, const std::string& payload) {
    const auto level = static_cast<unsigned>(state.range(0));
    std::size_t out_bytes = 0;
    std::string out;
    for (auto _ : state) {
        CompressionCounters counters;
        auto encoder = Encoder::make(coding, level, std::nullopt, counters);
        out.clear();
        for (std::size_t at = 0; at < payload.size(); at += kStep) {
            const std::size_t n = std::min(kStep, payload.size() - at);
            encoder->encode({payload.data() + at, n},
                            at + n == payload.size() ? Flush::finish : Flush::none, out);
        }
        out_bytes = out.size();
        benchmark::DoNotOptimize(out.data());
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * payload.size()));
    state.counters["ratio"] = static_cast<double>(payload.size()) / static_cast<double>(out_bytes);
    // CPU seconds per MB of input (printed with an SI prefix: "12.3m" = 12.3 ms): the figure
    // the level policy trades against.
    state.counters["cpu_per_MB"] = benchmark::Counter(
        static_cast<double>(payload.size()) / (1 << 20),
        benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

void BM_GzipJson(benchmark::State& state) {
    static const std::string payload = json_payload();
    compress(state, Coding::gzip, payload);
}
void BM_BrotliJson(benchmark::State& state) {
    static const std::string payload = json_payload();
    compress(state, Coding::br, payload);
}
void BM_GzipHtml(benchmark::State& state) {
    static const std::string payload = html_payload();
    compress(state, Coding::gzip, payload);
}
void BM_BrotliHtml(benchmark::State& state) {
    static const std::string payload = html_payload();
    compress(state, Coding::br, payload);
}

// One 10 KB JSON response compressed whole, as the front does it: the encoder set up for its
// length, one call, torn down. The setup is the part a large payload hides.
void BM_SmallResponse(benchmark::State& state) {
    static const std::string payload = json_payload().substr(0, 10240);
    const auto coding = state.range(0) == 0 ? Coding::gzip : Coding::br;
    const auto level = static_cast<unsigned>(state.range(1));
    std::string out;
    for (auto _ : state) {
        CompressionCounters counters;
        auto encoder = Encoder::make(coding, level, payload.size(), counters);
        out.clear();
        encoder->encode(payload, Flush::finish, out);
        benchmark::DoNotOptimize(out.data());
    }
    state.SetLabel(coding == Coding::gzip ? "gzip" : "br");
    state.counters["ratio"] = static_cast<double>(payload.size()) / static_cast<double>(out.size());
}
BENCHMARK(BM_SmallResponse)
    ->Args({0, 1})
    ->Args({0, 6})
    ->Args({1, 1})
    ->Args({1, 4})
    ->Unit(benchmark::kMicrosecond);

// The setup alone, at the levels the policy moves between (gzip 6 → 1, brotli 4 → 1): the
// encoder made for a 10 KB response, one byte through it, torn down. For brotli the byte is
// what makes the library allocate its window and hash tables (it does so at the first input).
void BM_SmallResponseSetup(benchmark::State& state) {
    const auto coding = state.range(0) == 0 ? Coding::gzip : Coding::br;
    const auto level = static_cast<unsigned>(state.range(1));
    std::string out;
    for (auto _ : state) {
        CompressionCounters counters;
        auto encoder = Encoder::make(coding, level, 10240, counters);
        out.clear();
        encoder->encode({"x", 1}, Flush::finish, out);
        benchmark::DoNotOptimize(out.data());
    }
    state.SetLabel(coding == Coding::gzip ? "gzip" : "br");
}
BENCHMARK(BM_SmallResponseSetup)
    ->Args({0, 1})
    ->Args({0, 6})
    ->Args({1, 1})
    ->Args({1, 4})
    ->Unit(benchmark::kMicrosecond);

// gzip with the stream kept between responses (zlib's deflateReset), as a per-thread encoder
// pool would: the same 10 KB response, the same window the Encoder picks for it (windowBits 14,
// memLevel 7 for 10 KB), without deflateInit2/deflateEnd per response.
void BM_SmallResponseGzipReset(benchmark::State& state) {
    static const std::string payload = json_payload().substr(0, 10240);
    const auto level = static_cast<int>(state.range(0));
    z_stream z{};
    deflateInit2(&z, level, Z_DEFLATED, 14 + 16, 7, Z_DEFAULT_STRATEGY);
    std::string out(deflateBound(&z, payload.size()) + 64, '\0');
    std::size_t produced = 0;
    for (auto _ : state) {
        deflateReset(&z);
        z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(payload.data()));
        z.avail_in = static_cast<uInt>(payload.size());
        z.next_out = reinterpret_cast<Bytef*>(out.data());
        z.avail_out = static_cast<uInt>(out.size());
        deflate(&z, Z_FINISH);
        produced = out.size() - z.avail_out;
        benchmark::DoNotOptimize(out.data());
    }
    deflateEnd(&z);
    state.counters["ratio"] = static_cast<double>(payload.size()) / static_cast<double>(produced);
}
BENCHMARK(BM_SmallResponseGzipReset)->Arg(1)->Arg(6)->Unit(benchmark::kMicrosecond);

// brotli has no reset in Debian's libbrotli (1.0.9): what a smaller window (BROTLI_PARAM_LGWIN,
// allowed smaller when BROTLI_PARAM_SIZE_HINT says the size) changes for the same response.
// Arguments: quality, lgwin (the Encoder picks 14 for 10 KB; 18 is its cap, 22 brotli's
// default).
void BM_SmallResponseBrotliWindow(benchmark::State& state) {
    static const std::string payload = json_payload().substr(0, 10240);
    const auto quality = static_cast<std::uint32_t>(state.range(0));
    const auto lgwin = static_cast<std::uint32_t>(state.range(1));
    std::string out(BrotliEncoderMaxCompressedSize(payload.size()) + 64, '\0');
    std::size_t produced = 0;
    for (auto _ : state) {
        BrotliEncoderState* b = BrotliEncoderCreateInstance(nullptr, nullptr, nullptr);
        BrotliEncoderSetParameter(b, BROTLI_PARAM_QUALITY, quality);
        BrotliEncoderSetParameter(b, BROTLI_PARAM_LGWIN, lgwin);
        BrotliEncoderSetParameter(b, BROTLI_PARAM_SIZE_HINT,
                                  static_cast<std::uint32_t>(payload.size()));
        std::size_t avail_in = payload.size();
        auto next_in = reinterpret_cast<const std::uint8_t*>(payload.data());
        std::size_t avail_out = out.size();
        auto next_out = reinterpret_cast<std::uint8_t*>(out.data());
        BrotliEncoderCompressStream(b, BROTLI_OPERATION_FINISH, &avail_in, &next_in, &avail_out,
                                    &next_out, nullptr);
        produced = out.size() - avail_out;
        BrotliEncoderDestroyInstance(b);
        benchmark::DoNotOptimize(out.data());
    }
    state.counters["ratio"] = static_cast<double>(payload.size()) / static_cast<double>(produced);
}
BENCHMARK(BM_SmallResponseBrotliWindow)
    ->Args({1, 14})
    ->Args({1, 18})
    ->Args({1, 22})
    ->Args({4, 10})
    ->Args({4, 14})
    ->Args({4, 18})
    ->Args({4, 22})
    ->Unit(benchmark::kMicrosecond);

BENCHMARK(BM_GzipJson)->DenseRange(1, 9)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_BrotliJson)->DenseRange(0, 11)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_GzipHtml)->DenseRange(1, 9)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_BrotliHtml)->DenseRange(0, 11)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
