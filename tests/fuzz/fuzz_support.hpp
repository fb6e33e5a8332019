// Helpers of the fuzz targets (tests/fuzz/*_fuzz.cpp): a check that holds in every build (assert
// is compiled out in Release), the input as NUL-separated parts, and a private scratch directory
// for the readers that take a path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "tests/support/temp_dir.hpp"

// An invariant of the code under test: a violation aborts, which libFuzzer (and the corpus
// replay) reports as a crash with the input that caused it.
#define FUZZ_CHECK(condition, what)                                                          \
    do {                                                                                     \
        if (!(condition)) ::tuner::fuzz::check_failed(__FILE__, __LINE__, #condition, what); \
    } while (false)

namespace tuner::fuzz {

[[noreturn]] inline void check_failed(const char* file, int line, const char* condition,
                                      std::string_view what) {
    std::fprintf(stderr, "%s:%d: fuzz invariant violated: %s\n  %.*s\n", file, line, condition,
                 static_cast<int>(what.size()), what.data());
    std::fflush(stderr);
    std::abort();
}

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
    return {reinterpret_cast<const char*>(data), size};
}

// The input split at NUL bytes (kernel files never hold one) into at most `max_parts` parts; the
// last part keeps any further NULs. Fewer parts than asked for: the missing ones are absent.
inline std::vector<std::string_view> split_parts(std::string_view input, std::size_t max_parts) {
    std::vector<std::string_view> parts;
    while (parts.size() + 1 < max_parts) {
        const std::size_t nul = input.find('\0');
        if (nul == std::string_view::npos) break;
        parts.push_back(input.substr(0, nul));
        input.remove_prefix(nul + 1);
    }
    parts.push_back(input);
    return parts;
}

// One scratch directory per process, reused by every input: readers that take a directory get
// the fuzz input as the files in it.
class Scratch {
public:
    static Scratch& get() {
        static Scratch scratch;
        return scratch;
    }
    [[nodiscard]] const std::string& path() const { return dir_.path(); }
    // Writes `content` to <scratch>/<relative>, or removes the file when `present` is false.
    void put(const std::string& relative, std::string_view content, bool present = true) {
        const std::filesystem::path file = std::filesystem::path(dir_.path()) / relative;
        if (!present) {
            std::error_code ec;
            std::filesystem::remove(file, ec);
            return;
        }
        std::filesystem::create_directories(file.parent_path());
        std::ofstream out(file, std::ios::binary | std::ios::trunc);
        out.write(content.data(), static_cast<std::streamsize>(content.size()));
    }
    // Part `i` of `parts` as file `relative`: absent when the input has no such part.
    void put_part(const std::string& relative, const std::vector<std::string_view>& parts,
                  std::size_t i) {
        put(relative, i < parts.size() ? parts[i] : std::string_view{}, i < parts.size());
    }

private:
    Scratch() : dir_("tunerd-fuzz") {}
    tuner::test::TempDir dir_;
};

}  // namespace tuner::fuzz
