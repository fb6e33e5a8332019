// Helpers shared by the tuner's integration suites (tuner_*_test.cpp): polling, the admin API's
// manual target and decision list, Prometheus samples, and throughput over a phase of a load run.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/support/load_generator.hpp"
#include "tests/support/tunerd_process.hpp"

namespace tuner::test {

// Built with -DTUNER_SANITIZE (make test-asan, make test-tsan): every process of this binary,
// tunerd and the demo workers it execs, holds several times its memory (shadow memory, ASan's
// quarantine of freed blocks: a demo worker of 60 MB measures ~280 MB under ASan, ~140 MB under
// TSan). Tests of behaviour at a memory limit measure the release build (make test) and skip
// here with this reason.
inline constexpr bool kSanitizedBuild = TUNER_SANITIZED;
inline constexpr const char* kSanitizedMemoryReason =
    "a sanitizer build holds several times the memory per process (a 60 MB demo worker measures "
    "~280 MB under ASan, ~140 MB under TSan), so behaviour at a memory limit is tested in the "
    "release build (make test)";

// A file's whole text ("" when it cannot be read).
inline std::string read_text(const std::string& path) {
    std::ifstream in(path);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Replaces a file's text (also a kernel file: a cgroup limit); false when the write failed.
inline bool write_text(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::trunc);
    out << text;
    out.flush();
    return static_cast<bool>(out);
}

// Polls `check` until it holds or `timeout` passes; true when it held.
inline bool eventually(const std::function<bool()>& check, std::chrono::milliseconds timeout,
                       std::chrono::milliseconds every = std::chrono::milliseconds(200)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (check()) return true;
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(every);
    }
}

// POST /workers/target {"workers": n}: pins the pool (a decision with rule "manual").
inline Result<HttpResponse> pin_workers(const TunerdProcess& tunerd, unsigned workers) {
    return tunerd.admin_request({"POST",
                                 "/workers/target",
                                 "{\"workers\": " + std::to_string(workers) + "}",
                                 {{"Content-Type", "application/json"}}});
}

// DELETE /workers/target: the policy decides again.
inline Result<HttpResponse> release_workers(const TunerdProcess& tunerd) {
    return tunerd.admin_request({"DELETE", "/workers/target", {}, {}});
}

// /performance/decisions?<query> as a JSON array, newest first (empty when it fails).
inline nlohmann::json admin_decisions(const TunerdProcess& tunerd,
                                      const std::string& query = "limit=1000") {
    auto j = tunerd.admin_json("/performance/decisions?" + query);
    if (!j || !j->contains("decisions")) return nlohmann::json::array();
    return (*j)["decisions"];
}

// Decisions of one rule (newest first) among `decisions`.
inline nlohmann::json decisions_of_rule(const nlohmann::json& decisions, const std::string& rule) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& d : decisions) {
        if (d.value("rule", "") == rule) out.push_back(d);
    }
    return out;
}

// The value of the first sample of `series` in Prometheus text: `series` is a metric name, or a
// name with the start of its label set ("tunerd_requests_total{code=\"200\"").
inline std::optional<double> sample_value(const std::string& exposition,
                                          const std::string& series) {
    std::istringstream lines(exposition);
    for (std::string line; std::getline(lines, line);) {
        if (line.rfind(series, 0) != 0 || line.size() <= series.size()) continue;
        const char next = line[series.size()];
        if (series.back() != '"' && next != ' ' && next != '{') continue;  // a longer name
        return std::strtod(line.c_str() + line.rfind(' ') + 1, nullptr);
    }
    return std::nullopt;
}

inline std::string metrics_text(const TunerdProcess& tunerd) {
    auto r = tunerd.admin_request({"GET", "/metrics", {}, {}});
    return r && r->status == 200 ? r->body : std::string();
}

// 2xx responses the client has received, with the time it looked: two marks give the client's
// throughput between them.
struct LoadMark {
    std::chrono::steady_clock::time_point at;
    std::uint64_t ok = 0;
};

inline LoadMark mark(const LoadGenerator& load) {
    return {std::chrono::steady_clock::now(), load.snapshot().ok_2xx};
}

inline double throughput_rps(const LoadMark& from, const LoadMark& to) {
    const double s = std::chrono::duration<double>(to.at - from.at).count();
    return s > 0 ? static_cast<double>(to.ok - from.ok) / s : 0;
}

// CPU time used so far by tunerd and its workers (every live process carrying the test's marker)
// and by the whole machine (/proc/stat, all CPUs). Two marks tell how much of a saturated CPU
// went to tunerd's processes and how much to everything else on the box.
struct CpuMark {
    std::chrono::steady_clock::time_point at;
    double ours_s = 0;
    double machine_s = 0;
};

inline CpuMark cpu_mark(const TunerdProcess& tunerd) {
    const double tick_s = 1.0 / static_cast<double>(::sysconf(_SC_CLK_TCK));
    CpuMark m;
    m.at = std::chrono::steady_clock::now();
    for (const pid_t pid : processes_with_marker(tunerd.marker())) {
        const std::string stat = read_text("/proc/" + std::to_string(pid) + "/stat");
        const auto after_name = stat.rfind(')');
        if (after_name == std::string::npos) continue;
        // Fields 3.. after the name; utime and stime are fields 14 and 15 (proc(5)).
        std::istringstream fields(stat.substr(after_name + 2));
        std::string skip;
        for (int field = 3; field < 14; ++field) fields >> skip;
        double utime = 0, stime = 0;
        fields >> utime >> stime;
        m.ours_s += (utime + stime) * tick_s;
    }
    std::ifstream proc_stat("/proc/stat");
    std::string cpu;
    double user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
    proc_stat >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
    m.machine_s = (user + nice + system + irq + softirq + steal) * tick_s;
    return m;
}

// Cores used between two marks: {tunerd and its workers, the whole machine}.
inline std::pair<double, double> cores_used(const CpuMark& from, const CpuMark& to) {
    const double s = std::chrono::duration<double>(to.at - from.at).count();
    if (s <= 0) return {0, 0};
    return {(to.ours_s - from.ours_s) / s, (to.machine_s - from.machine_s) / s};
}

// Seconds since a Unix-epoch millisecond time from the admin API (decisions' time_unix_ms).
inline double unix_ms_to_s(const nlohmann::json& time_unix_ms) {
    return static_cast<double>(time_unix_ms.get<std::int64_t>()) / 1000.0;
}

inline double unix_now_s() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace tuner::test
