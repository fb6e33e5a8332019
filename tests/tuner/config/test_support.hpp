// Helpers shared by the config test suites: readable failure output and one-error lookups.
#pragma once

#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "tuner/config/load.hpp"

namespace tuner::config::testing {

// Every issue on its own line, for assertion messages.
inline std::string issues_text(const LoadedConfig& loaded) {
    std::string text;
    for (const auto& issue : loaded.errors) text += issue.to_string() + "\n";
    return text.empty() ? "(no issues)" : text;
}

// Parses `toml` and expects exactly one issue; returns it (or an empty issue after a failure).
inline ConfigIssue single_issue(const std::string& toml) {
    const auto loaded = parse_config(toml, "test.toml");
    EXPECT_EQ(loaded.errors.size(), 1u) << toml << "\n" << issues_text(loaded);
    return loaded.errors.empty() ? ConfigIssue{} : loaded.errors.front();
}

// Parses `toml` and expects no issue; returns the effective config.
inline Config valid_config(const std::string& toml) {
    auto loaded = parse_config(toml, "test.toml");
    EXPECT_TRUE(loaded.ok()) << toml << "\n" << issues_text(loaded);
    return loaded.config;
}

inline std::string read_source_file(const std::string& relative_path) {
    std::ifstream in(std::string(TUNER_SOURCE_DIR) + "/" + relative_path);
    EXPECT_TRUE(in.good()) << "cannot read " << relative_path;
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

}  // namespace tuner::config::testing
