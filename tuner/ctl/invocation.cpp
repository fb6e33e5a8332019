// What every tunerctl command shares: its output, its config, and its way to the daemon with
// the exit status of each failure (see commands.hpp).
#include <algorithm>
#include <filesystem>

#include "tuner/config/load.hpp"
#include "tuner/ctl/commands.hpp"

namespace tuner::ctl {

int Invocation::usage_error(const std::string& message) const {
    err << "tunerctl " << command << ": " << message << "\nusage: tunerctl " << command << " "
        << usage << "\n";
    return kExitUsage;
}

int Invocation::fail(int exit_code, const std::string& message) const {
    err << "tunerctl " << command << ": " << message << "\n";
    return exit_code;
}

int Invocation::print(const nlohmann::json& json, const std::string& text) const {
    if (options.json)
        out << json.dump(2) << "\n";
    else
        out << text;
    return kExitOk;
}

std::variant<Config, int> load_ctl_config(const CtlOptions& options, std::ostream& err) {
    std::string path = options.config_path.value_or("");
    if (path.empty() && std::filesystem::exists(config::default_config_path()))
        path = config::default_config_path();
    if (path.empty()) return Config{};
    auto loaded = config::load_config_file(path);
    if (loaded.ok()) return std::move(loaded.config);
    for (const auto& issue : loaded.errors) err << "tunerctl: " << issue.to_string() << "\n";
    err << "tunerctl: " << loaded.errors.size() << " error"
        << (loaded.errors.size() == 1 ? "" : "s") << " in the config (exit " << kExitConfig
        << ")\n";
    return kExitConfig;
}

std::variant<AdminClient, int> admin_client(const Invocation& inv) {
    const auto& url = inv.options.admin_url;
    auto endpoint =
        url ? parse_admin_url(*url)
            : admin_endpoint_from_config(inv.config, config::resolve_state_dir(inv.config.state));
    if (!endpoint && url) return inv.usage_error(endpoint.error().to_string());
    if (!endpoint) {
        // admin.listen passed validation; what is left is a port-0 listener whose listen.json
        // is missing: the daemon is not there.
        return inv.fail(kExitUnavailable,
                        "cannot find tunerd's admin API: " + endpoint.error().to_string());
    }
    // Over the admin socket the file's mode is the credential: no token is read or sent.
    if (!endpoint->unix_path.empty())
        return AdminClient(std::move(*endpoint), std::nullopt, inv.options.timeout);
    auto token = read_admin_token(inv.config.admin);
    if (!token) return inv.fail(kExitConfig, token.error().to_string());
    return AdminClient(std::move(*endpoint), std::move(*token), inv.options.timeout);
}

std::variant<AdminAnswer, int> admin_call(const Invocation& inv, const AdminClient& client,
                                          std::string_view method, std::string_view target,
                                          const std::string& body,
                                          std::initializer_list<int> accepted) {
    auto result = client.call(method, target, body);
    if (auto* failure = std::get_if<AdminFailure>(&result)) {
        if (failure->unreachable) {
            return inv.fail(kExitUnavailable,
                            "cannot reach tunerd's admin API at " + failure->error.to_string());
        }
        return inv.fail(kExitFailed, failure->error.to_string());
    }
    auto& answer = std::get<AdminAnswer>(result);
    if (std::find(accepted.begin(), accepted.end(), answer.status) != accepted.end())
        return std::move(answer);
    const auto& error = answer.body.is_object() && answer.body.contains("error")
                            ? answer.body["error"]
                            : answer.body;
    const std::string what = std::string(method) + " " + client.endpoint().url() +
                             std::string(target) + ": HTTP " + std::to_string(answer.status) +
                             ": " + (error.is_string() ? error.get<std::string>() : error.dump());
    switch (answer.status) {
        case 400:
            return inv.fail(kExitUsage, what);
        case 401:
            return inv.fail(
                kExitNoPermission,
                what + " (the token comes from admin.token_file in " + inv.config.source + ")");
        case 503:
            return inv.fail(kExitUnavailable, what);
        default:
            return inv.fail(kExitFailed, what);
    }
}

}  // namespace tuner::ctl
