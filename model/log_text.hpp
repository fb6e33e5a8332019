// Text from outside (a request path, a worker's stderr, an exception message) made safe for one
// key=value log line: quoted when it needs quotes, control characters and bytes that are not
// valid UTF-8 written as \xNN, so no input can forge a log line or break a reader of the log.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace tuner {

// Length of the valid UTF-8 sequence starting at text[i] (1..4), or 0 when it is not one
// (overlong forms, surrogates and code points above U+10FFFF are not valid).
inline std::size_t utf8_sequence_length(std::string_view text, std::size_t i) {
    const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
    const unsigned char c = byte(i);
    if (c < 0x80) return 1;
    std::size_t n = 0;
    unsigned char low = 0x80, high = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) low = 0xA0;
        if (c == 0xED) high = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) low = 0x90;
        if (c == 0xF4) high = 0x8F;
    } else {
        return 0;
    }
    if (i + n > text.size()) return 0;
    if (byte(i + 1) < low || byte(i + 1) > high) return 0;
    for (std::size_t k = 2; k < n; ++k) {
        if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
    }
    return n;
}

inline bool is_valid_utf8(std::string_view text) {
    for (std::size_t i = 0; i < text.size();) {
        const std::size_t n = utf8_sequence_length(text, i);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

// Quote a value for a key=value field when it needs quotes (empty, spaces, quotes, '=', or
// anything escaped); escape '"' and '\', write newlines as \n and other control characters and
// invalid UTF-8 bytes as \xNN.
inline std::string log_quote(std::string_view value) {
    static constexpr char kHex[] = "0123456789abcdef";
    bool needs = value.empty();
    std::string body;
    body.reserve(value.size());
    for (std::size_t i = 0; i < value.size();) {
        const unsigned char c = static_cast<unsigned char>(value[i]);
        const std::size_t n = utf8_sequence_length(value, i);
        if (n > 1) {
            body.append(value.substr(i, n));
            i += n;
            continue;
        }
        ++i;
        if (c == '"' || c == '\\') {
            body += '\\';
            body += static_cast<char>(c);
            needs = true;
        } else if (c == '\n') {
            body += "\\n";
            needs = true;
        } else if (c < 0x20 || c == 0x7f || n == 0) {
            body += "\\x";
            body += kHex[c >> 4];
            body += kHex[c & 0xf];
            needs = true;
        } else {
            if (c == ' ' || c == '=') needs = true;
            body += static_cast<char>(c);
        }
    }
    return needs ? "\"" + body + "\"" : body;
}

}  // namespace tuner
