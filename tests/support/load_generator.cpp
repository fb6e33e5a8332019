// Bounded closed-loop load client (see load_generator.hpp).
#include "tests/support/load_generator.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "tests/support/http_client.hpp"

namespace tuner::test {

double LoadResult::percentile_ms(double q) const {
    if (latencies_ms.empty()) return 0;
    std::vector<double> sorted = latencies_ms;
    std::sort(sorted.begin(), sorted.end());
    const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
    return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

std::string LoadResult::summary() const {
    std::ostringstream out;
    out << "sent=" << sent << " 2xx=" << ok_2xx << " client_errors=" << client_errors
        << " statuses={";
    for (const auto& [code, n] : statuses) out << code << ":" << n << " ";
    out << "} rate=" << rate_rps() << "rps p50=" << percentile_ms(0.5)
        << "ms p99=" << percentile_ms(0.99) << "ms";
    for (const auto& e : error_samples) out << "\n  error: " << e;
    return out.str();
}

LoadGenerator::LoadGenerator(LoadOptions options) : options_(std::move(options)) {}

LoadGenerator::~LoadGenerator() {
    if (!threads_.empty()) stop();
}

void LoadGenerator::start() {
    stop_ = false;
    budget_ = options_.max_requests;
    started_ = std::chrono::steady_clock::now();
    for (unsigned i = 0; i < options_.connections; ++i)
        threads_.emplace_back([this] { run_connection(); });
}

void LoadGenerator::run_connection() {
    HttpConnection conn(options_.address, options_.request_timeout);
    const auto deadline = started_ + options_.max_duration;
    while (!stop_ && std::chrono::steady_clock::now() < deadline) {
        // Take one request from the budget.
        std::uint64_t left = budget_.load();
        do {
            if (left == 0) return;
        } while (!budget_.compare_exchange_weak(left, left - 1));
        const auto t0 = std::chrono::steady_clock::now();
        auto r = conn.request({options_.method, options_.target, {}, {}});
        const double ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count();
        std::lock_guard lock(mutex_);
        ++result_.sent;
        if (!r) {
            ++result_.client_errors;
            if (result_.error_samples.size() < 10)
                result_.error_samples.push_back(r.error().to_string());
        } else {
            ++result_.statuses[r->status];
            if (r->status >= 200 && r->status < 300) ++result_.ok_2xx;
            result_.latencies_ms.push_back(ms);
            if ((r->status < 200 || r->status >= 300) && result_.error_samples.size() < 10) {
                result_.error_samples.push_back("status " + std::to_string(r->status) + ": " +
                                                r->body.substr(0, 200));
            }
        }
        ++completed_;
    }
}

LoadResult LoadGenerator::stop() {
    stop_ = true;
    for (auto& t : threads_) {
        if (t.joinable()) t.join();
    }
    threads_.clear();
    std::lock_guard lock(mutex_);
    result_.elapsed_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    return result_;
}

LoadResult LoadGenerator::snapshot() const {
    std::lock_guard lock(mutex_);
    LoadResult r = result_;
    r.elapsed_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    return r;
}

LoadResult run_load(LoadOptions options, std::uint64_t requests) {
    options.max_requests = requests;
    LoadGenerator g(options);
    g.start();
    while (g.completed() < requests) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        if (g.snapshot().elapsed_s > static_cast<double>(options.max_duration.count()) / 1000.0)
            break;
    }
    return g.stop();
}

}  // namespace tuner::test
