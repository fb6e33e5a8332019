// /metrics: Prometheus text exposition through prometheus-cpp's TextSerializer. Counters that
// tunerd increments (decisions) live in a prometheus-cpp Registry; everything that mirrors a
// state or a counter kept elsewhere (the front's request statistics, the kernel's CPU and PSI
// totals, the pool) is turned into metric families at scrape time, so nothing is copied on the
// hot path.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "model/decision.hpp"
#include "server/dispatcher.hpp"
#include "server/front.hpp"
#include "server/pool.hpp"
#include "tuner/control/control_view.hpp"
#include "tuner/decision_log/log.hpp"

namespace prometheus {
class Registry;
template <typename T>
class Family;
class Counter;
}  // namespace prometheus

namespace tuner {

struct MetricsInputs {
    const ControlView* view = nullptr;
    const server::CumulativeStats* requests = nullptr;
    const server::PoolStatus* pool = nullptr;
    server::Dispatcher::Counts counts;
    DecisionLogStats decision_log;
    std::optional<unsigned> manual_target;
    std::optional<server::ConnectionStats> connections;
    std::optional<server::CacheStats> cache;  // the front's micro-cache, when it is on
};

class Metrics {
public:
    Metrics();
    ~Metrics();

    // Counts a recorded decision by knob, rule and outcome.
    void count_decision(const Decision& decision);

    // The whole exposition, text format 0.0.4.
    [[nodiscard]] std::string render(const MetricsInputs& in) const;

private:
    std::shared_ptr<prometheus::Registry> registry_;
    prometheus::Family<prometheus::Counter>* decisions_ = nullptr;
};

}  // namespace tuner
