// The effective config written back as commented TOML, and its short hash (see load.hpp).
#include <cstdint>
#include <cstdio>

#include "tuner/config/keys.hpp"
#include "tuner/config/load.hpp"

namespace tuner::config {
namespace {

// Comments start in this column when the assignment leaves room, so a section reads as a table.
constexpr std::size_t kCommentColumn = 30;

std::string key_line(const detail::ConfigKey& key, const Config& config) {
    const auto written = key.write(config);
    std::string line = (written.set ? "" : "# ") + std::string(key.name) + " = " + written.toml;
    line.append(line.size() + 2 < kCommentColumn ? kCommentColumn - 2 - line.size() : 0, ' ');
    return line + "  # " + std::string(key.comment) + "\n";
}

}  // namespace

std::string format_config(const Config& config) {
    std::string out;
    for (const auto& section : detail::config_sections()) {
        if (!out.empty()) out += "\n";
        out += "# " + std::string(section.comment) + "\n";
        out += "[" + std::string(section.name) + "]\n";
        for (const auto& key : detail::config_keys()) {
            if (key.section == section.name) out += key_line(key, config);
        }
    }
    return out + detail::format_static_mounts(config);
}

std::string config_hash(const Config& config) {
    // FNV-1a, 64 bit (Fowler, Noll, Vo; constants from the reference,
    // www.isthe.com/chongo/tech/comp/fnv).
    std::uint64_t hash = 14695981039346656037ULL;
    for (const unsigned char byte : format_config(config)) {
        hash ^= byte;
        hash *= 1099511628211ULL;
    }
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash));
    return hex;
}

}  // namespace tuner::config
