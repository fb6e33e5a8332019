// tunerctl's command line: the options every command shares (--config, --admin, --timeout,
// --json) and each command's own, parsed into plain data; exit codes follow sysexits.h.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/result.hpp"
#include "model/units.hpp"

namespace tuner::ctl {

// sysexits.h, as DESIGN "Interfaces" lists them for tunerctl.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;         // the daemon answered with an error
inline constexpr int kExitUsage = 64;         // EX_USAGE: bad command line
inline constexpr int kExitNoInput = 66;       // EX_NOINPUT: the --db file cannot be read
inline constexpr int kExitUnavailable = 69;   // EX_UNAVAILABLE: daemon (or PostgreSQL) unreachable
inline constexpr int kExitNoPermission = 77;  // EX_NOPERM: the admin API refused the token
inline constexpr int kExitConfig = 78;        // EX_CONFIG: bad config file or token file

using Args = std::span<const std::string_view>;

// Which options a command takes besides the common ones.
struct ArgSpec {
    // Options with a value ("--since X" or "--since=X"), and flags without one ("--release").
    std::vector<std::string_view> value_options = {};
    std::vector<std::string_view> flag_options = {};
    std::size_t max_positional = 0;
    bool admin = false;  // --admin and --timeout make sense (the command talks to the daemon)
    bool json = true;    // --json: the answer as JSON
};

struct CtlOptions {
    std::optional<std::string> config_path;       // --config FILE
    std::optional<std::string> admin_url;         // --admin URL
    Duration timeout = std::chrono::seconds(10);  // --timeout DURATION, every HTTP request
    bool json = false;                            // --json
    std::map<std::string, std::string, std::less<>> values;  // "--since" -> "1795000000"
    std::set<std::string, std::less<>> flags;                // "--release"
    std::vector<std::string> positional;

    [[nodiscard]] bool has(std::string_view flag) const { return flags.contains(flag); }
    [[nodiscard]] std::optional<std::string> value(std::string_view option) const;
};

// Parses the arguments after the command's name. An Error names the argument ("where") and
// what is wrong with it; the caller prints it with the command's usage and exits 64.
Result<CtlOptions> parse_args(Args args, const ArgSpec& spec);

// "12" -> 12 for counts such as --limit, --pid and `target N`: whole, at least `min`, at most
// `max`; the error quotes the text and names `what` ("--limit").
Result<std::uint64_t> parse_count(std::string_view text, std::string_view what,
                                  std::uint64_t min = 1,
                                  std::uint64_t max = std::uint64_t{1} << 53);

}  // namespace tuner::ctl
