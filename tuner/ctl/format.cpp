// tunerctl's text output (see format.hpp).
#include "tuner/ctl/format.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "tuner/decision_log/timestamps.hpp"

namespace tuner::ctl {
namespace {

using nlohmann::json;

// Safe access: the daemon's JSON is input, and a field it lacks must not end tunerctl.
const json& field(const json& object, const char* key) {
    static const json missing;
    if (!object.is_object()) return missing;
    const auto it = object.find(key);
    return it == object.end() ? missing : *it;
}

std::string text(const json& value, const std::string& fallback = "?") {
    if (value.is_string()) return value.get<std::string>();
    if (value.is_number_integer()) return std::to_string(value.get<std::int64_t>());
    if (value.is_number()) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%g", value.get<double>());
        return buf;
    }
    if (value.is_boolean()) return value.get<bool>() ? "true" : "false";
    return fallback;
}

double number(const json& value, double fallback = 0) {
    return value.is_number() ? value.get<double>() : fallback;
}

std::string fixed(double value, int decimals) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
    return buf;
}

std::string size_text(const json& bytes) {
    return bytes.is_number() ? format_size_approx(bytes.get<std::uint64_t>()) : "?";
}

// ", spool 12MB of 1GB held" (request bodies on disk), with ", 3 refused (503)" once any was;
// "" from a daemon that does not report it.
std::string spool_text(const json& spool) {
    if (!spool.is_object()) return "";
    const json& max = field(spool, "max_bytes");  // as configured: exact
    std::string out = ", spool " + size_text(field(spool, "held_bytes")) + " of " +
                      (max.is_number() ? format_size(max.get<std::uint64_t>()) : "?") + " held";
    if (number(field(spool, "refused")) > 0)
        out += ", " + text(field(spool, "refused")) + " refused (503)";
    return out;
}

// "cache 12MB of 64MB, 340 entries; hit ratio 0.91 (…)" or "cache off"; a capacity the memory
// policy lowered says so: "cache 12MB of 16MB (cache.size 64MB, lowered under memory pressure)".
std::string cache_line(const json& cache) {
    if (!cache.is_object() || field(cache, "enabled") != true) return "cache off";
    std::string lowered;
    const json& capacity = field(cache, "capacity");
    const json& size = field(cache, "size");
    if (capacity.is_number() && size.is_number() &&
        capacity.get<std::uint64_t>() < size.get<std::uint64_t>())
        lowered = " (cache.size " + size_text(size) + ", lowered under memory pressure)";
    return "cache " + size_text(field(cache, "bytes")) + " of " + size_text(capacity) + lowered +
           ", " + text(field(cache, "entries")) + " entries; hit ratio " +
           fixed(number(field(cache, "hit_ratio")), 2) + " (" + text(field(cache, "hits")) +
           " hits, " + text(field(cache, "misses")) + " misses, " + text(field(cache, "expired")) +
           " expired, " + text(field(cache, "stale")) + " stale, " +
           text(field(cache, "bypasses")) + " bypassed), " + text(field(cache, "collapsed")) +
           " collapsed, " + text(field(cache, "evictions")) + " evicted";
}

// A knob value from the API's JSON back into its typed form, so it prints as the daemon's own
// logs print it (model/decision.hpp to_string: "100MB", "3600s", "128MB").
KnobValue knob_value(const json& value, const std::string& type) {
    if (value.is_null()) return std::monostate{};
    if (type == "count" && value.is_number()) return Count{value.get<std::int64_t>()};
    if (type == "bytes" && value.is_number()) return ByteSize{value.get<std::uint64_t>()};
    if (type == "seconds" && value.is_number()) return Seconds{value.get<double>()};
    return Text{text(value, "")};
}

std::string value_text(const json& decision, const char* key) {
    const auto v = knob_value(field(decision, key), text(field(decision, "value_type"), ""));
    return std::holds_alternative<std::monostate>(v) ? "-" : to_string(v);
}

std::string decision_time(const json& decision) {
    if (const auto& t = field(decision, "time"); t.is_string()) return t.get<std::string>();
    if (const auto& ms = field(decision, "time_unix_ms"); ms.is_number_integer()) {
        return format_rfc3339_ms(
            WallClock::time_point{std::chrono::duration_cast<WallClock::duration>(
                std::chrono::milliseconds(ms.get<std::int64_t>()))});
    }
    return "?";
}

std::string percentiles_text(const json& p) {
    return "p50 " + format_ms(number(field(p, "p50_ms"))) + ", p95 " +
           format_ms(number(field(p, "p95_ms")));
}

}  // namespace

// Why the CPU count is what it is: the quota, the cpuset, or the host.
std::string format_cpu(const json& cpu) {
    const std::string source = text(field(cpu, "source"));
    std::string out = text(field(cpu, "effective_cores")) + " effective cores, bound by " + source;
    if (const auto& quota = field(cpu, "quota_cores"); quota.is_number()) {
        out += " (quota " + fixed(quota.get<double>(), 2) + " cores at " +
               text(field(cpu, "quota_cgroup")) + ")";
    }
    out += "; affinity " + text(field(cpu, "affinity_cores")) + ", host " +
           text(field(cpu, "host_cores"));
    if (const auto& u = field(cpu, "utilisation"); u.is_number())
        out += "; busy " + fixed(u.get<double>() * 100, 0) + "%";
    return out;
}

std::string format_memory(const json& memory) {
    return "limit " + size_text(field(memory, "limit_bytes")) + " from " +
           text(field(memory, "source")) + "; usage " + size_text(field(memory, "usage_bytes")) +
           ", working set " + size_text(field(memory, "working_set_bytes")) + "; OOM kills " +
           text(field(memory, "oom_kills"), "0");
}

std::string labelled_line(std::string_view label, const std::string& text, std::size_t width) {
    std::string line(label);
    if (line.size() < width) line.resize(width, ' ');
    return line + " " + text + "\n";
}

std::string format_decision_line(const json& d) {
    std::string line = decision_time(d) + "  " + text(field(d, "knob")) + " " +
                       value_text(d, "old") + " → " + value_text(d, "new") + "  " +
                       text(field(d, "rule")) + "  " + text(field(d, "outcome")) + "  " +
                       text(field(d, "reason"), "");
    if (const auto& error = field(d, "error");
        error.is_string() && !error.get<std::string>().empty())
        line += " (error: " + error.get<std::string>() + ")";
    return line + "\n";
}

std::string format_decisions(const json& decisions) {
    if (!decisions.is_array() || decisions.empty()) return "no decisions\n";
    std::string out;
    for (const auto& d : decisions) out += format_decision_line(d);
    return out;
}

std::string format_ms(double ms) {
    return fixed(ms, ms < 1 ? 2 : ms < 10 ? 1 : 0) + " ms";
}

std::string format_uptime(double seconds) {
    const auto s = static_cast<long long>(seconds < 0 ? 0 : seconds);
    char buf[48];
    if (s < 60)
        std::snprintf(buf, sizeof buf, "%llds", s);
    else if (s < 3600)
        std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
    else if (s < 86400)
        std::snprintf(buf, sizeof buf, "%lldh%02lldm", s / 3600, s % 3600 / 60);
    else
        std::snprintf(buf, sizeof buf, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
    return buf;
}

// The front's compression on one line: the level, what went through, the CPU it cost.
std::string compression_text(const json& z) {
    if (!z.is_object() || z.empty()) return "";  // a daemon from before [compression]
    if (field(z, "enabled") != true) return "compression off";
    const auto& gzip = field(z, "gzip");
    const auto& br = field(z, "br");
    const double ratio = number(field(z, "ratio"));
    return "compression gzip level " + text(field(z, "level")) + " of " +
           text(field(z, "configured_level")) + ", brotli " + text(field(z, "brotli_level")) +
           ": " + text(field(z, "responses")) + " responses (gzip " +
           text(field(gzip, "responses")) + ", br " + text(field(br, "responses")) + "), " +
           size_text(field(z, "bytes_in")) + " → " + size_text(field(z, "bytes_out")) +
           (ratio > 0 ? " (" + fixed(ratio, 1) + "×)" : std::string()) + ", CPU " +
           fixed(number(field(z, "cpu_seconds")), 2) + " s";
}

std::string format_status(const json& health, const json& performance, std::size_t recent) {
    std::string out;
    std::string head = "tunerd " + text(field(health, "version")) + ": " +
                       text(field(health, "status")) + ", up " +
                       format_uptime(number(field(health, "uptime_s")));
    out += labelled_line("status", head);

    const auto& problems = field(health, "problems");
    if (!problems.is_array() || problems.empty()) {
        out += labelled_line("problems", "none");
    } else {
        bool first = true;
        for (const auto& p : problems) {
            out += labelled_line(first ? "problems" : "", text(p));
            first = false;
        }
    }

    const auto& w = field(performance, "workers");
    const auto& manual = field(w, "manual_target");
    out += labelled_line(
        "workers",
        text(field(w, "ready")) + " of " + text(field(w, "target")) + " ready, " +
            text(field(w, "threads")) + (field(w, "threads") == 1 ? " thread" : " threads") +
            " each; mode " + text(field(w, "mode")) + ", bounds " + text(field(w, "min")) + ".." +
            text(field(w, "max")) + ", memory ceiling " + text(field(w, "memory_ceiling")) +
            "; manual target " + (manual.is_number() ? text(manual) + " (pinned)" : "none") +
            (field(w, "dry_run") == true ? "; DRY RUN: decisions are logged, not acted on" : ""));

    const auto& limits = field(performance, "limits");
    out += labelled_line("cpu", format_cpu(field(limits, "cpu")));
    out += labelled_line("memory", format_memory(field(limits, "memory")));

    const auto& latency = field(performance, "latency");
    out += labelled_line("latency",
                         fixed(number(field(latency, "rate_rps")), 1) + " rps over the last " +
                             fixed(number(field(latency, "window_s")), 0) + " s (" +
                             text(field(latency, "completed")) + " completed); queue length mean " +
                             fixed(number(field(latency, "queue_length_mean")), 1) + ", max " +
                             fixed(number(field(latency, "queue_length_max")), 0));
    out += labelled_line("", "queue wait " + percentiles_text(field(latency, "queue_wait")));
    out += labelled_line("", "service    " + percentiles_text(field(latency, "service")));
    out += labelled_line("", "total      " + percentiles_text(field(latency, "total")));

    const auto& front = field(performance, "front");
    if (front.is_object() && !front.empty()) {
        const auto& refused = field(front, "connections_refused");
        const auto& limit = field(front, "rate_limit");
        const double rate = number(field(limit, "rate"));
        out += labelled_line(
            "front", text(field(front, "open_connections")) + " of " +
                         text(field(front, "max_connections")) + " connections open; " +
                         text(field(front, "connections_evicted")) + " idle evicted, refused " +
                         text(field(refused, "max_connections")) + " (full) and " +
                         text(field(refused, "max_connections_per_address")) +
                         " (per address); request buffering " +
                         (field(front, "request_buffering") == true ? "on" : "off") +
                         spool_text(field(front, "spool")));
        out +=
            labelled_line("", rate > 0 ? "rate limit " + fixed(rate, 1) + "/s per client, burst " +
                                             text(field(limit, "burst")) + ": " +
                                             text(field(limit, "limited")) + " refused (429), " +
                                             text(field(limit, "clients")) + " clients tracked"
                                       : std::string("rate limit off"));
        out += labelled_line("", cache_line(field(front, "cache")));
        const auto& statics = field(front, "static");
        const auto& mounts = field(statics, "mounts");
        if (mounts.is_array() && !mounts.empty()) {
            std::string line = "static " + std::to_string(mounts.size()) + " mount" +
                               (mounts.size() == 1 ? "" : "s") + ": ";
            std::string counts;
            const auto& responses = field(statics, "responses");
            if (responses.is_object()) {
                for (const auto& [status, n] : responses.items())
                    counts += (counts.empty() ? "" : ", ") + text(n) + " × " + status;
            }
            line += (counts.empty() ? std::string("no responses yet") : counts) + "; " +
                    size_text(field(statics, "bytes")) + " sent";
            out += labelled_line("", line);
        } else {
            out += labelled_line("", "static off");
        }
        const auto& access = field(front, "access_log");
        if (access.is_object() && field(access, "enabled") == true) {
            out += labelled_line("", "access log " + text(field(access, "path")) + " (" +
                                         text(field(access, "format")) +
                                         "): " + text(field(access, "written")) + " lines, " +
                                         text(field(access, "dropped")) + " dropped, " +
                                         text(field(access, "errors")) + " errors");
        } else if (access.is_object()) {
            out += labelled_line("", "access log off");
        }
        if (auto line = compression_text(field(front, "compression")); !line.empty())
            out += labelled_line("", line);
    }

    const auto& decisions = field(performance, "decisions");
    if (!decisions.is_array() || decisions.empty()) {
        out += labelled_line("decisions", "none yet");
    } else {
        const std::size_t shown = std::min(recent, decisions.size());
        out += labelled_line("decisions", "the last " + std::to_string(shown) +
                                              " (newest first; `tunerctl decisions` for "
                                              "more)");
        for (std::size_t i = 0; i < shown; ++i) out += "  " + format_decision_line(decisions[i]);
    }
    return out;
}

std::string format_workers(const json& workers) {
    const auto& manual = field(workers, "manual_target");
    std::string out = "target " + text(field(workers, "target")) + ", ready " +
                      text(field(workers, "ready")) + ", threads " +
                      text(field(workers, "threads")) + ", mode " + text(field(workers, "mode")) +
                      ", manual target " + (manual.is_number() ? text(manual) : "none") + "\n";
    const auto& list = field(workers, "workers");
    if (!list.is_array() || list.empty()) return out + "no worker processes\n";
    char row[200];
    std::snprintf(row, sizeof row, "  %-4s %-8s %-6s %-9s %-8s %-9s %-9s %-9s %-9s %s\n", "id",
                  "pid", "port", "state", "threads", "inflight", "served", "rss", "age",
                  "restarts");
    out += row;
    for (const auto& worker : list) {
        std::snprintf(
            row, sizeof row, "  %-4s %-8s %-6s %-9s %-8s %-9s %-9s %-9s %-9s %s\n",
            text(field(worker, "id")).c_str(), text(field(worker, "pid")).c_str(),
            text(field(worker, "port"), "-").c_str(), text(field(worker, "state")).c_str(),
            text(field(worker, "threads")).c_str(), text(field(worker, "inflight")).c_str(),
            text(field(worker, "served")).c_str(), size_text(field(worker, "rss_bytes")).c_str(),
            format_uptime(number(field(worker, "age_s"))).c_str(),
            text(field(worker, "restarts")).c_str());
        out += row;
    }
    return out;
}

std::string format_cache(const json& answer) {
    if (answer.is_object() && answer.contains("cleared")) {
        return "cache cleared: " + text(field(answer, "cleared")) + " entries, " +
               size_text(field(answer, "bytes_freed")) + "\n";
    }
    return cache_line(answer) + "\n";
}

std::string format_plan(const json& plan) {
    const auto& decisions = field(plan, "decisions");
    std::string out;
    if (!decisions.is_array() || decisions.empty()) {
        out = "no change: the policies keep the pool as it is\n";
    } else {
        out = "plan " + text(field(plan, "plan_id")) + ": " + std::to_string(decisions.size()) +
              (decisions.size() == 1 ? " decision\n" : " decisions\n");
        for (const auto& d : decisions) out += "  " + format_decision_line(d);
    }
    if (const auto& notes = field(plan, "notes"); notes.is_array()) {
        for (const auto& n : notes) out += "  note: " + text(n) + "\n";
    }
    return out;
}

std::string format_restart_begun(const json& answer) {
    return "restart begun: generation " + text(field(answer, "generation")) + ", " +
           text(field(answer, "workers")) + " workers to replace one at a time (" +
           text(field(answer, "config")) + ")\n";
}

std::string format_restart_state(const json& restart) {
    const std::string state = text(field(restart, "state"));
    std::string out = "restart to generation " + text(field(restart, "generation")) + ": " + state;
    out += " (" + text(field(restart, "replaced")) + " replaced";
    if (const auto& remaining = field(restart, "remaining");
        remaining.is_number() && remaining != 0)
        out += ", " + text(remaining) + " to go";
    if (const auto& s = field(restart, "elapsed_s"); s.is_number()) out += ", " + text(s) + "s";
    out += ")";
    if (state == "halted") out += ": " + text(field(restart, "halted_reason"));
    return out + "\n";
}

std::string format_target(const json& answer) {
    std::string out;
    if (field(answer, "pinned") == true) {
        out = "workers pinned at " + text(field(answer, "target")) +
              " until `tunerctl target --release` or a config reload\n";
    } else if (field(answer, "decision").is_object()) {
        out = "manual target released; the policy decides again (target now " +
              text(field(answer, "target")) + ")\n";
    } else {
        out = "no manual target was set (target " + text(field(answer, "target")) + ")\n";
    }
    if (const auto& d = field(answer, "decision"); d.is_object())
        out += "  " + format_decision_line(d);
    return out;
}

}  // namespace tuner::ctl
