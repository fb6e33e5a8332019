// tunerctl's argument parser (see args.hpp).
#include "tuner/ctl/args.hpp"

#include <algorithm>
#include <charconv>

#include "tuner/decision_log/timestamps.hpp"

namespace tuner::ctl {
namespace {

bool listed(const std::vector<std::string_view>& names, std::string_view name) {
    return std::find(names.begin(), names.end(), name) != names.end();
}

}  // namespace

std::optional<std::string> CtlOptions::value(std::string_view option) const {
    const auto it = values.find(option);
    if (it == values.end()) return std::nullopt;
    return it->second;
}

Result<CtlOptions> parse_args(Args args, const ArgSpec& spec) {
    CtlOptions out;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string_view arg = args[i];
        if (!arg.starts_with("--") || arg == "--") {
            if (out.positional.size() == spec.max_positional) {
                return make_error(std::string(arg), spec.max_positional == 0
                                                        ? "unexpected argument"
                                                        : "one argument too many");
            }
            out.positional.emplace_back(arg);
            continue;
        }
        const auto equals = arg.find('=');
        const std::string_view name = arg.substr(0, equals);
        const bool common_value =
            name == "--config" || (spec.admin && (name == "--admin" || name == "--timeout"));
        const bool takes_value = common_value || listed(spec.value_options, name);
        const bool is_flag = (spec.json && name == "--json") || listed(spec.flag_options, name);
        if (!takes_value && !is_flag) return make_error(std::string(name), "unknown option");
        if (is_flag) {
            if (equals != std::string_view::npos)
                return make_error(std::string(name), "takes no value");
            if (name == "--json")
                out.json = true;
            else
                out.flags.emplace(name);
            continue;
        }
        std::string_view value;
        if (equals != std::string_view::npos) {
            value = arg.substr(equals + 1);
        } else if (i + 1 < args.size()) {
            value = args[++i];
        } else {
            return make_error(std::string(name), "needs a value");
        }
        if (value.empty()) return make_error(std::string(name), "needs a value, not \"\"");
        if (name == "--config") {
            out.config_path = std::string(value);
        } else if (name == "--admin") {
            out.admin_url = std::string(value);
        } else if (name == "--timeout") {
            auto timeout = parse_duration(value);
            if (!timeout || timeout->count() <= 0) {
                return make_error("--timeout", "needs a duration above 0 such as \"10s\", not \"" +
                                                   std::string(value) + "\"");
            }
            out.timeout = *timeout;
        } else {
            out.values[std::string(name)] = std::string(value);
        }
    }
    return out;
}

Result<std::uint64_t> parse_count(std::string_view text, std::string_view what, std::uint64_t min,
                                  std::uint64_t max) {
    std::uint64_t n = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || n < min ||
        n > max) {
        return make_error(std::string(what), "needs a whole number from " + std::to_string(min) +
                                                 " to " + std::to_string(max) + ", not \"" +
                                                 std::string(text) + "\"");
    }
    return n;
}

}  // namespace tuner::ctl
