// The metric-name extractor of the dashboard and alert-rule checks: names in PromQL (not label
// values, not label names, not functions), every expression of a dashboard with nested rows and
// variables, families of an exposition and the histogram suffixes.
#include "tests/monitoring/promql_names.hpp"

#include <gtest/gtest.h>

namespace tuner::test {
namespace {

using Names = std::set<std::string>;

TEST(PromqlNames, PlainSelectorAndFunctions) {
    EXPECT_EQ(metric_names_in_expr(R"(tunerd_workers_ready{job="$job", instance="$instance"})"),
              Names{"tunerd_workers_ready"});
    EXPECT_EQ(metric_names_in_expr(
                  "histogram_quantile(0.95, sum by (le) (rate(tunerd_request_duration_seconds_"
                  "bucket{job=\"$job\"}[$__rate_interval])))"),
              Names{"tunerd_request_duration_seconds_bucket"});
}

TEST(PromqlNames, SeveralNamesInOneExpression) {
    EXPECT_EQ(metric_names_in_expr(
                  R"(tunerd_workers_ready{job="tunerd"} == 0 and tunerd_workers_target > 0)"),
              (Names{"tunerd_workers_ready", "tunerd_workers_target"}));
}

TEST(PromqlNames, StringLiteralsAndLongerIdentifiersAreNotNames) {
    // A label value that looks like a metric, in each quoting; an escaped quote inside one.
    EXPECT_EQ(metric_names_in_expr(R"(up{job="tunerd_x", a='tunerd_y', b=`tunerd_z`})"), Names{});
    EXPECT_EQ(metric_names_in_expr(R"(up{job="a\"tunerd_x"} + tunerd_ok)"), Names{"tunerd_ok"});
    // Another exporter's metric that contains the prefix, and a label name.
    EXPECT_EQ(metric_names_in_expr("my_tunerd_thing + sum by (tunerd_label) (x)"),
              Names{"tunerd_label"});  // a label name with the prefix is still caught
    EXPECT_EQ(metric_names_in_expr("label_values(tunerd_build_info, job)"),
              Names{"tunerd_build_info"});
    EXPECT_EQ(metric_names_in_expr("tunerd_ # just the prefix\n"), Names{});
}

TEST(PromqlNames, DashboardExpressionsFromNestedPanelsAndVariables) {
    const auto dashboard = nlohmann::json::parse(R"json({
      "panels": [
        {"type": "stat", "targets": [{"expr": "tunerd_a"}, {"refId": "B"}]},
        {"type": "row", "collapsed": true, "panels": [
          {"type": "timeseries", "targets": [{"expr": "tunerd_b"}, {"expr": "tunerd_c"}]},
          {"type": "row", "panels": [{"targets": [{"expr": "tunerd_d"}]}]}
        ]},
        {"type": "text"}
      ],
      "templating": {"list": [
        {"type": "datasource", "query": "prometheus"},
        {"type": "query", "query": {"query": "label_values(tunerd_e, job)"}},
        {"type": "query", "query": "label_values(tunerd_f, instance)"}
      ]}
    })json");
    EXPECT_EQ(dashboard_exprs(dashboard),
              (std::vector<std::string>{"tunerd_a", "tunerd_b", "tunerd_c", "tunerd_d",
                                        "label_values(tunerd_e, job)",
                                        "label_values(tunerd_f, instance)"}));
    EXPECT_TRUE(dashboard_exprs(nlohmann::json::array()).empty());
}

TEST(PromqlNames, ExpositionFamiliesAndHistogramSuffixes) {
    const auto families = exposition_families(
        "# HELP tunerd_workers_ready Worker processes taking requests\n"
        "# TYPE tunerd_workers_ready gauge\n"
        "tunerd_workers_ready 2\n"
        "# TYPE tunerd_request_duration_seconds histogram\n"
        "tunerd_request_duration_seconds_bucket{le=\"+Inf\"} 3\n"
        "# TYPE tunerd_x_seconds summary\n"
        "# TYPE tunerd_decisions_total counter\n");
    EXPECT_EQ(families.size(), 4u);
    EXPECT_EQ(families.at("tunerd_request_duration_seconds"), "histogram");
    EXPECT_TRUE(is_exported(families, "tunerd_workers_ready"));
    EXPECT_TRUE(is_exported(families, "tunerd_decisions_total"));
    for (const char* s : {"_bucket", "_sum", "_count"})
        EXPECT_TRUE(is_exported(families, std::string("tunerd_request_duration_seconds") + s));
    EXPECT_TRUE(is_exported(families, "tunerd_x_seconds_sum"));
    EXPECT_FALSE(is_exported(families, "tunerd_x_seconds_bucket"));     // a summary has no buckets
    EXPECT_FALSE(is_exported(families, "tunerd_workers_ready_count"));  // a gauge has no suffixes
    EXPECT_FALSE(is_exported(families, "tunerd_workers_readyy"));
    EXPECT_FALSE(is_exported(families, "tunerd_decisions"));
}

}  // namespace
}  // namespace tuner::test
