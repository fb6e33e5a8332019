// Metric names in PromQL and in a text exposition (see promql_names.hpp).
#include "tests/monitoring/promql_names.hpp"

#include <sstream>

namespace tuner::test {

namespace {

bool ident_start(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}

bool ident_char(char c) {
    return ident_start(c) || (c >= '0' && c <= '9');
}

bool ends_with(const std::string& s, std::string_view suffix) {
    return s.size() >= suffix.size() &&
           s.compare(s.size() - suffix.size(), suffix.size(), suffix.data(), suffix.size()) == 0;
}

void collect_panels(const nlohmann::json& panels, std::vector<std::string>& out, int depth) {
    if (!panels.is_array() || depth > 16) return;  // Grafana nests rows one level; bound it
    for (const auto& panel : panels) {
        if (!panel.is_object()) continue;
        if (const auto t = panel.find("targets"); t != panel.end() && t->is_array()) {
            for (const auto& target : *t) {
                if (!target.is_object()) continue;
                if (const auto e = target.find("expr"); e != target.end() && e->is_string())
                    out.push_back(e->get<std::string>());
            }
        }
        if (const auto nested = panel.find("panels"); nested != panel.end())
            collect_panels(*nested, out, depth + 1);
    }
}

}  // namespace

std::set<std::string> metric_names_in_expr(std::string_view expr, std::string_view prefix) {
    std::set<std::string> names;
    std::size_t i = 0;
    while (i < expr.size()) {
        const char c = expr[i];
        if (c == '"' || c == '\'' || c == '`') {  // a string literal: skip it, escapes included
            ++i;
            while (i < expr.size() && expr[i] != c) i += (expr[i] == '\\' && c != '`') ? 2 : 1;
            ++i;
        } else if (c == '#') {  // a comment runs to the end of the line
            while (i < expr.size() && expr[i] != '\n') ++i;
        } else if (ident_start(c) && (i == 0 || !ident_char(expr[i - 1]))) {
            std::size_t end = i;
            while (end < expr.size() && ident_char(expr[end])) ++end;
            const std::string_view ident = expr.substr(i, end - i);
            if (ident.substr(0, prefix.size()) == prefix && ident.size() > prefix.size())
                names.emplace(ident);
            i = end;
        } else {
            ++i;
        }
    }
    return names;
}

std::vector<std::string> dashboard_exprs(const nlohmann::json& dashboard) {
    std::vector<std::string> out;
    if (!dashboard.is_object()) return out;
    if (const auto panels = dashboard.find("panels"); panels != dashboard.end())
        collect_panels(*panels, out, 0);
    // Variables: "label_values(tunerd_build_info, job)", as a string or {"query": "..."}.
    const auto templating = dashboard.find("templating");
    if (templating != dashboard.end() && templating->is_object() && templating->contains("list") &&
        (*templating)["list"].is_array()) {
        for (const auto& variable : (*templating)["list"]) {
            if (!variable.is_object() || variable.value("type", "") != "query") continue;
            const auto q = variable.find("query");
            if (q == variable.end()) continue;
            if (q->is_string()) {
                out.push_back(q->get<std::string>());
            } else if (q->is_object() && q->contains("query") && (*q)["query"].is_string()) {
                out.push_back((*q)["query"].get<std::string>());
            }
        }
    }
    return out;
}

std::map<std::string, std::string> exposition_families(std::string_view text) {
    std::map<std::string, std::string> families;
    std::istringstream lines{std::string(text)};
    for (std::string line; std::getline(lines, line);) {
        if (line.rfind("# TYPE ", 0) != 0) continue;
        std::istringstream fields(line.substr(7));
        std::string name, type;
        if (fields >> name >> type) families[name] = type;
    }
    return families;
}

bool is_exported(const std::map<std::string, std::string>& families, const std::string& name) {
    if (families.count(name)) return true;
    for (const std::string_view suffix : {"_bucket", "_sum", "_count"}) {
        if (!ends_with(name, suffix)) continue;
        const auto base = families.find(name.substr(0, name.size() - suffix.size()));
        if (base == families.end()) continue;
        if (base->second == "histogram") return true;
        if (base->second == "summary" && suffix != "_bucket") return true;
    }
    return false;
}

}  // namespace tuner::test
