// Metric names in PromQL expressions (the Grafana dashboard's targets, the alert rules) and the
// metric families of a Prometheus text exposition, so a test can check that every name an
// expression uses is one tunerd exports.
#pragma once

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace tuner::test {

// The metric names with `prefix` an expression uses: identifiers outside string literals ("…",
// '…', `…`: label values, Grafana's variables in them) that start with `prefix` and are not part
// of a longer identifier. Label names, functions and keywords have no such prefix.
std::set<std::string> metric_names_in_expr(std::string_view expr,
                                           std::string_view prefix = "tunerd_");

// Every PromQL expression of a Grafana dashboard: `targets[].expr` of each panel, of panels
// nested in rows (collapsed or not) at any depth, and the templating variables' queries.
std::vector<std::string> dashboard_exprs(const nlohmann::json& dashboard);

// Family name → type ("counter", "gauge", "histogram", "summary", "untyped") from the `# TYPE`
// lines of a text exposition (format 0.0.4).
std::map<std::string, std::string> exposition_families(std::string_view text);

// Whether `name` is a series the families export: a family's own name, or a histogram's
// `_bucket`, `_sum`, `_count` series (a summary's `_sum`, `_count`).
bool is_exported(const std::map<std::string, std::string>& families, const std::string& name);

}  // namespace tuner::test
