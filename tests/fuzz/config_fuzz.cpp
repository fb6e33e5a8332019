// Fuzz target: the config loader (tuner/config/load.hpp). The input is the TOML text. Errors are
// expected; what must hold: parse_config returns (no exception, no crash); a valid config
// survives format_config and parse_config unchanged, and formats to the same text again (the
// round trip load.hpp promises); format_config and config_hash take any config it returns; a
// listen address parse_listen accepts parses again, written back, to the same host and port.
#include <cstddef>
#include <cstdint>
#include <string>

#include "tests/fuzz/fuzz_support.hpp"
#include "tuner/config/load.hpp"

namespace {

using tuner::config::LoadedConfig;

std::string issues_text(const LoadedConfig& loaded) {
    std::string text;
    for (const auto& issue : loaded.errors) text += issue.to_string() + "\n";
    return text;
}

void check_listen(std::string_view text) {
    const auto parsed = tuner::config::parse_listen(text);
    if (!parsed) return;
    const auto& [host, port] = *parsed;
    const std::string again = (host.find(':') != std::string::npos ? "[" + host + "]" : host) +
                              ":" + std::to_string(port);
    const auto reparsed = tuner::config::parse_listen(again);
    FUZZ_CHECK(reparsed && *reparsed == *parsed, "listen \"" + std::string(text) +
                                                     "\" written back as \"" + again +
                                                     "\" does not parse the same");
    (void)tuner::config::is_loopback_listen(text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text = tuner::fuzz::as_text(data, size);
    const LoadedConfig loaded = tuner::config::parse_config(text, "fuzz.toml");
    for (const auto& issue : loaded.errors) {
        FUZZ_CHECK(!issue.message.empty(), "an issue without a message: " + issue.to_string());
    }
    const std::string formatted = tuner::config::format_config(loaded.config);
    (void)tuner::config::config_hash(loaded.config);
    if (loaded.ok()) {
        const LoadedConfig again = tuner::config::parse_config(formatted, "formatted");
        FUZZ_CHECK(again.ok(), "the formatted config does not load:\n" + issues_text(again) +
                                   "---- formatted:\n" + formatted);
        FUZZ_CHECK(again.config == loaded.config,
                   "the formatted config loads as a different one:\n" + formatted);
        FUZZ_CHECK(tuner::config::format_config(again.config) == formatted,
                   "formatting is not stable:\n" + formatted);
    }
    if (size <= 300 && text.find('\n') == std::string_view::npos) check_listen(text);
    return 0;
}
