// tunerctl's commands that ask the running daemon through its admin API (docs/api.md):
// status, decisions, workers, target, optimize and restart (see commands.hpp).
#include <chrono>
#include <thread>

#include "tuner/ctl/commands.hpp"
#include "tuner/ctl/format.hpp"
#include "tuner/decision_log/json.hpp"
#include "tuner/decision_log/log.hpp"
#include "tuner/decision_log/timestamps.hpp"

namespace tuner::ctl {
namespace {

using nlohmann::json;

// The admin API's own bounds for ?limit= (tuner/admin/routes.cpp), checked here so a bad value is
// a usage error before any connection; --db takes the same.
constexpr std::uint64_t kDefaultDecisionsLimit = 100;
constexpr std::uint64_t kMaxDecisionsLimit = 10000;

// One request, printed as JSON or through `format`: the shape of most commands.
int call_and_print(const Invocation& inv, std::string_view method, std::string_view target,
                   const std::string& body, std::string (*format)(const json&)) {
    auto client = admin_client(inv);
    if (const int* code = std::get_if<int>(&client)) return *code;
    auto answer = admin_call(inv, std::get<AdminClient>(client), method, target, body);
    if (const int* code = std::get_if<int>(&answer)) return *code;
    const json& body_json = std::get<AdminAnswer>(answer).body;
    return inv.print(body_json, format(body_json));
}

std::string format_decisions_answer(const json& answer) {
    return format_decisions(answer.is_object() && answer.contains("decisions") ? answer["decisions"]
                                                                               : json::array());
}

// `decisions --db FILE`: the SQLite file read-only, no daemon needed (it may be running).
int decisions_from_file(const Invocation& inv, const std::string& path, std::uint64_t limit) {
    std::optional<WallClock::time_point> since;
    if (const auto text = inv.options.value("--since")) {
        auto parsed = parse_since_time(*text, "--since");
        if (!parsed) return inv.usage_error(parsed.error().to_string());
        since = *parsed;
    }
    auto decisions = read_decisions(path, since, limit);
    if (!decisions) return inv.fail(kExitNoInput, decisions.error().to_string());
    json list = json::array();
    for (const auto& d : *decisions) list.push_back(decision_json(d));
    return inv.print({{"decisions", list}, {"count", list.size()}}, format_decisions(list));
}

}  // namespace

int run_status(const Invocation& inv) {
    auto client_or = admin_client(inv);
    if (const int* code = std::get_if<int>(&client_or)) return *code;
    const auto& client = std::get<AdminClient>(client_or);
    // /health answers 503 when the daemon is not ok: still an answer worth showing.
    auto health = admin_call(inv, client, "GET", "/health", {}, {200, 503});
    if (const int* code = std::get_if<int>(&health)) return *code;
    auto performance = admin_call(inv, client, "GET", "/performance");
    if (const int* code = std::get_if<int>(&performance)) return *code;
    const json& h = std::get<AdminAnswer>(health).body;
    const json& p = std::get<AdminAnswer>(performance).body;
    return inv.print({{"health", h}, {"performance", p}},
                     labelled_line("admin", client.endpoint().url()) + format_status(h, p));
}

int run_decisions(const Invocation& inv) {
    std::uint64_t limit = kDefaultDecisionsLimit;
    if (const auto text = inv.options.value("--limit")) {
        auto parsed = parse_count(*text, "--limit", 1, kMaxDecisionsLimit);
        if (!parsed) return inv.usage_error(parsed.error().to_string());
        limit = *parsed;
    }
    if (const auto db = inv.options.value("--db")) {
        if (inv.options.admin_url)
            return inv.usage_error("--db reads the file itself; --admin has no use with it");
        return decisions_from_file(inv, *db, limit);
    }
    std::string target = "/performance/decisions?limit=" + std::to_string(limit);
    // Passed through as given: the daemon parses it and answers 400 with the reason.
    if (const auto since = inv.options.value("--since")) target += "&since=" + url_encode(*since);
    return call_and_print(inv, "GET", target, {}, format_decisions_answer);
}

int run_workers(const Invocation& inv) {
    return call_and_print(inv, "GET", "/workers", {}, format_workers);
}

int run_target(const Invocation& inv) {
    const bool release = inv.options.has("--release");
    if (release == !inv.options.positional.empty())
        return inv.usage_error("give a worker count N or --release (one of them)");
    if (release) return call_and_print(inv, "DELETE", "/workers/target", {}, format_target);
    // The daemon checks workers.min and workers.max and names them when N is outside.
    auto workers = parse_count(inv.options.positional.front(), "N", 0, 1'000'000);
    if (!workers) return inv.usage_error(workers.error().to_string());
    return call_and_print(inv, "POST", "/workers/target", json{{"workers", *workers}}.dump(),
                          format_target);
}

int run_cache(const Invocation& inv) {
    const std::string what =
        inv.options.positional.empty() ? std::string("stats") : inv.options.positional.front();
    if (what == "stats")
        return call_and_print(inv, "GET", "/performance/cache/stats", {}, format_cache);
    if (what == "clear")
        return call_and_print(inv, "POST", "/performance/cache/clear", "{}", format_cache);
    return inv.usage_error("unknown cache command \"" + what + "\" (stats or clear)");
}

int run_optimize(const Invocation& inv) {
    return call_and_print(inv, "POST", "/performance/optimize", {}, format_plan);
}

}  // namespace tuner::ctl

namespace tuner::ctl {

int run_restart(const Invocation& inv) {
    auto client_or = admin_client(inv);
    if (const int* code = std::get_if<int>(&client_or)) return *code;
    const auto& client = std::get<AdminClient>(client_or);
    auto answer =
        admin_call(inv, client, "POST", "/workers/restart", json::object().dump(), {202, 409});
    if (const int* code = std::get_if<int>(&answer)) return *code;
    const AdminAnswer& begun = std::get<AdminAnswer>(answer);
    if (begun.status == 409) {
        // The config file was rejected: nothing was restarted (the daemon names each error).
        std::string why = "the config file has errors; no worker was replaced";
        const json errors =
            begun.body.is_object() ? begun.body.value("config_errors", json()) : json();
        if (errors.is_array()) {
            for (const auto& e : errors)
                why += "\n  " + (e.is_string() ? e.get<std::string>() : e.dump());
        }
        if (inv.options.json) inv.out << begun.body.dump(2) << "\n";
        return inv.fail(kExitConfig, why);
    }
    if (!inv.options.has("--wait")) return inv.print(begun.body, format_restart_begun(begun.body));
    if (!inv.options.json) inv.out << format_restart_begun(begun.body) << std::flush;
    // --wait: until every worker is of the new generation, or the restart halted.
    const json generation =
        begun.body.is_object() ? begun.body.value("generation", json()) : json();
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::hours(1);
    while (std::chrono::steady_clock::now() < give_up) {
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
        auto workers = admin_call(inv, client, "GET", "/workers");
        if (const int* code = std::get_if<int>(&workers)) return *code;
        const json& body = std::get<AdminAnswer>(workers).body;
        const json restart =
            body.is_object() ? body.value("restart", json::object()) : json::object();
        const json now_generation =
            restart.is_object() ? restart.value("generation", json()) : json();
        if (now_generation != generation) {
            return inv.fail(1,
                            "another restart (generation " + now_generation.dump() + ") took over");
        }
        const std::string state = restart.is_object() ? restart.value("state", std::string()) : "";
        if (state == "rolling") continue;
        if (inv.options.json) {
            inv.out << body.dump(2) << "\n";
        } else {
            inv.out << format_restart_state(restart);
        }
        return state == "done" ? kExitOk : 1;
    }
    return inv.fail(1, "still rolling after an hour");
}

}  // namespace tuner::ctl
