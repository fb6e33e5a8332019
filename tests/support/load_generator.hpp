// A bounded closed-loop load client for integration tests: N threads, each with its own
// keep-alive connection, sending requests until stopped, a deadline passes or a request budget
// is spent. Every response's status and latency is kept; connection failures count as client
// errors with their message.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace tuner::test {

struct LoadOptions {
    std::string address;  // "127.0.0.1:port"
    std::string target = "/";
    std::string method = "GET";
    unsigned connections = 16;
    std::chrono::milliseconds max_duration{60'000};  // a hard bound, whatever the test does
    std::uint64_t max_requests = 1'000'000;          // a hard bound too
    std::chrono::milliseconds request_timeout{30'000};
};

struct LoadResult {
    std::uint64_t sent = 0;
    std::uint64_t ok_2xx = 0;
    std::map<int, std::uint64_t> statuses;
    std::uint64_t client_errors = 0;
    std::vector<std::string> error_samples;  // the first few error messages
    std::vector<double> latencies_ms;        // of every response
    double elapsed_s = 0;
    [[nodiscard]] std::uint64_t non_2xx() const { return sent - ok_2xx - client_errors; }
    [[nodiscard]] double percentile_ms(double q) const;
    [[nodiscard]] double rate_rps() const {
        return elapsed_s > 0 ? static_cast<double>(ok_2xx) / elapsed_s : 0;
    }
    [[nodiscard]] std::string summary() const;
};

class LoadGenerator {
public:
    explicit LoadGenerator(LoadOptions options);
    ~LoadGenerator();  // stops and joins
    LoadGenerator(const LoadGenerator&) = delete;
    LoadGenerator& operator=(const LoadGenerator&) = delete;

    void start();
    // Stops sending, waits for requests in flight, returns everything since start.
    LoadResult stop();
    // What has completed so far (a copy), without stopping.
    [[nodiscard]] LoadResult snapshot() const;
    // Completed responses so far.
    [[nodiscard]] std::uint64_t completed() const { return completed_.load(); }

private:
    void run_connection();

    LoadOptions options_;
    std::vector<std::thread> threads_;
    std::atomic<bool> stop_{false};
    std::atomic<std::uint64_t> budget_{0};
    std::atomic<std::uint64_t> completed_{0};
    mutable std::mutex mutex_;
    LoadResult result_;
    std::chrono::steady_clock::time_point started_;
};

// Runs `requests` requests over `connections` connections and returns the result.
LoadResult run_load(LoadOptions options, std::uint64_t requests);

}  // namespace tuner::test
