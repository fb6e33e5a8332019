// Decoders of the front's content codings for tests: gzip through zlib, br through brotli's own
// decoder, so a test checks what a real client would get (never tunerd's encoder against itself).
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "model/result.hpp"

namespace tuner::test {

// Decodes `encoded` ("gzip" or "br") piece by piece: `sink` gets each decoded piece (at most
// 64 KB) and returns false to stop. An error when the data is not one complete stream.
Status decode_stream(std::string_view coding, std::string_view encoded,
                     const std::function<bool(std::string_view)>& sink);

// The whole decoded body (for small ones).
Result<std::string> decode_body(std::string_view coding, std::string_view encoded);

}  // namespace tuner::test
