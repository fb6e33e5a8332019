// Reads small kernel files (/proc, /sys/fs/cgroup) whole, with errors as values. A file that
// does not exist is an empty optional, never an error: optional files are normal here.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "model/result.hpp"

namespace tuner::probes {

// The file's content, or std::nullopt when it does not exist (ENOENT, ENOTDIR), its process
// vanished (ESRCH) or the kernel does not offer it (EOPNOTSUPP, e.g. PSI disabled at boot).
// Any other failure (EACCES, EIO) is an Error naming the path and the errno text.
Result<std::optional<std::string>> read_optional_file(const std::string& path);

// Reads `path` and parses it with `parse(std::string_view content, const std::string& path)`,
// which returns Result<T> or Result<std::optional<T>>. std::nullopt when the file is absent.
template <typename T, typename Parse>
Result<std::optional<T>> read_parsed(const std::string& path, Parse&& parse) {
    auto content = read_optional_file(path);
    if (!content) return content.error();
    if (!content->has_value()) return std::optional<T>{};
    auto parsed = parse(std::string_view(**content), path);
    if (!parsed) return parsed.error();
    return std::optional<T>{std::move(*parsed)};
}

// `dir` + "/" + `name`, without doubling the slash.
std::string join_path(std::string_view dir, std::string_view name);

}  // namespace tuner::probes
