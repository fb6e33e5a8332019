// Decoders for tests (see decode.hpp).
#include "tests/support/decode.hpp"

#include <array>

#include <brotli/decode.h>
#include <zlib.h>

namespace tuner::test {

namespace {

constexpr std::size_t kPiece = 64 * 1024;

Status gunzip(std::string_view encoded, const std::function<bool(std::string_view)>& sink) {
    z_stream z{};
    // 15 + 16: gzip framing only.
    if (inflateInit2(&z, 15 + 16) != Z_OK) return make_error("gzip", "inflateInit2 failed");
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(encoded.data()));
    z.avail_in = static_cast<uInt>(encoded.size());
    std::array<char, kPiece> out;
    int rc = Z_OK;
    while (rc != Z_STREAM_END) {
        z.next_out = reinterpret_cast<Bytef*>(out.data());
        z.avail_out = static_cast<uInt>(out.size());
        rc = inflate(&z, Z_NO_FLUSH);
        const std::size_t n = out.size() - z.avail_out;
        if (rc != Z_OK && rc != Z_STREAM_END) {
            inflateEnd(&z);
            return make_error("gzip", std::string("inflate: ") + (z.msg ? z.msg : "truncated"));
        }
        if (n && !sink({out.data(), n})) break;
        if (rc == Z_OK && n == 0 && z.avail_in == 0) {
            inflateEnd(&z);
            return make_error("gzip", "the stream ends early");
        }
    }
    const bool trailing = rc == Z_STREAM_END && z.avail_in != 0;
    inflateEnd(&z);
    if (trailing) return make_error("gzip", "bytes after the end of the stream");
    return {};
}

Status unbrotli(std::string_view encoded, const std::function<bool(std::string_view)>& sink) {
    BrotliDecoderState* state = BrotliDecoderCreateInstance(nullptr, nullptr, nullptr);
    if (!state) return make_error("br", "no decoder");
    auto next_in = reinterpret_cast<const std::uint8_t*>(encoded.data());
    std::size_t avail_in = encoded.size();
    std::array<char, kPiece> out;
    BrotliDecoderResult rc = BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT;
    while (rc == BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT) {
        auto next_out = reinterpret_cast<std::uint8_t*>(out.data());
        std::size_t avail_out = out.size();
        rc = BrotliDecoderDecompressStream(state, &avail_in, &next_in, &avail_out, &next_out,
                                           nullptr);
        const std::size_t n = out.size() - avail_out;
        if (n && !sink({out.data(), n})) break;
    }
    const bool ok = rc == BROTLI_DECODER_RESULT_SUCCESS && avail_in == 0;
    const std::string why = rc == BROTLI_DECODER_RESULT_ERROR
                                ? BrotliDecoderErrorString(BrotliDecoderGetErrorCode(state))
                                : "the stream ends early or has bytes after its end";
    BrotliDecoderDestroyInstance(state);
    if (!ok && rc != BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT) return make_error("br", why);
    return {};
}

}  // namespace

Status decode_stream(std::string_view coding, std::string_view encoded,
                     const std::function<bool(std::string_view)>& sink) {
    if (coding == "gzip") return gunzip(encoded, sink);
    if (coding == "br") return unbrotli(encoded, sink);
    return make_error(std::string(coding), "not a coding these tests decode");
}

Result<std::string> decode_body(std::string_view coding, std::string_view encoded) {
    std::string out;
    auto st = decode_stream(coding, encoded, [&](std::string_view piece) {
        out.append(piece);
        return true;
    });
    if (!st) return st.error();
    return out;
}

}  // namespace tuner::test
