// Parsing the text formats kernel files share: single numbers, "key value" lines (cpu.stat,
// memory.stat), "Key:  N kB" lines (/proc/meminfo, status, smaps_rollup) and CPU lists ("0-3,5").
// Every Error names the file (`where`) and quotes the content that failed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "model/result.hpp"

namespace tuner::probes {

// The content in quotes for an error message, newlines shown as \n, cut after 120 characters.
std::string quote(std::string_view content);

std::string_view trim(std::string_view text);

// One decimal number, surrounding whitespace allowed ("536870912\n").
Result<std::uint64_t> parse_u64(std::string_view text, const std::string& where);
Result<std::int64_t> parse_i64(std::string_view text, const std::string& where);
Result<double> parse_double(std::string_view text, const std::string& where);

// A file holding one number: an empty or non-numeric file is an Error quoting it.
Result<std::uint64_t> parse_single_u64(std::string_view content, const std::string& where);

// In "key value" lines, the value of `key`; std::nullopt when no line has that key.
Result<std::optional<std::uint64_t>> find_keyed_u64(std::string_view content, std::string_view key,
                                                    const std::string& where);

// In "Key:   123 kB" lines, the value of `key` (given without the colon) in bytes;
// std::nullopt when no line has that key.
Result<std::optional<std::uint64_t>> find_kb_field_bytes(std::string_view content,
                                                         std::string_view key,
                                                         const std::string& where);

// The number of CPUs in a kernel CPU list: "0-3,5" -> 5. An empty list is an Error.
Result<unsigned> count_cpu_list(std::string_view content, const std::string& where);

}  // namespace tuner::probes
