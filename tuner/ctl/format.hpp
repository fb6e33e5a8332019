// tunerctl's text output: the admin API's JSON (and the decision log's rows) turned into lines
// people read. Pure functions; a field missing from the JSON prints as "?" and never throws.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "model/decision.hpp"

namespace tuner::ctl {

// One decision on one line: "2026-11-23T15:04:05.123Z  workers.count 2 → 5  littles_law
// applied  <reason>"; a failed one ends with "(error: <error>)".
std::string format_decision_line(const nlohmann::json& decision);
// One line per decision of a JSON array, or "no decisions\n".
std::string format_decisions(const nlohmann::json& decisions);

// `tunerctl status`: GET /health and GET /performance together: status and problems, workers,
// CPU and memory limits with their source, latency percentiles, the last `recent` decisions.
std::string format_status(const nlohmann::json& health, const nlohmann::json& performance,
                          std::size_t recent = 5);

// `tunerctl workers`: GET /workers as a summary line and one row per worker.
std::string format_workers(const nlohmann::json& workers);

// `tunerctl optimize`: the plan POST /performance/optimize returns.
std::string format_plan(const nlohmann::json& plan);
// `tunerctl cache stats` (GET /performance/cache/stats) and `cache clear`'s answer.
std::string format_cache(const nlohmann::json& answer);

// `tunerctl target N|--release`: the answer of POST or DELETE /workers/target.
std::string format_target(const nlohmann::json& answer);
// POST /workers/restart's answer, and the restart object of /workers.
std::string format_restart_begun(const nlohmann::json& answer);
std::string format_restart_state(const nlohmann::json& restart);

// The CPU and memory sections of the probe JSON (tuner/report/probe_report.hpp cpu_json,
// memory_json) on one line each, with why: "2 effective cores, bound by quota (quota 2.00 cores at
// /x); ...".
std::string format_cpu(const nlohmann::json& cpu);
std::string format_memory(const nlohmann::json& memory);

// "label      text\n": a label padded to `width` columns, the layout of `tunerctl probe`.
std::string labelled_line(std::string_view label, const std::string& text, std::size_t width = 10);

// Milliseconds for latency lines: "0.42 ms", "8.1 ms", "120 ms".
std::string format_ms(double ms);
// Seconds as a short span: "45s", "5m12s", "2h03m", "3d04h".
std::string format_uptime(double seconds);

}  // namespace tuner::ctl
