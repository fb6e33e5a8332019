// Prometheus and Grafana against the real binary: Debian's `prometheus` scrapes a running tunerd
// with a copy of etc/prometheus.yml (and its alert rules), `up` and the worker gauge are checked
// through Prometheus's HTTP API, the capacity saturation ratio is exported with the value its
// definition gives, and every metric name in the Grafana dashboard and in the alert rules (as
// Prometheus loaded them) is one tunerd exports. One tunerd per process (ctest runs each test
// alone), Prometheus only for the test that needs it.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include "tests/integration/tuner_test_support.hpp"
#include "tests/monitoring/promql_names.hpp"
#include "tests/support/tunerd_process.hpp"

namespace tuner::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string read_all(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// A port on 127.0.0.1 that was free a moment ago: bound with port 0, read, closed. Prometheus
// cannot listen on port 0 and report the port it got (--web.listen-address takes a fixed one),
// so the test picks one this way; another process could take it in between (then Prometheus
// fails to start and the test says so).
std::uint16_t free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    std::uint16_t port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
        port = ntohs(addr.sin_port);
    ::close(fd);
    return port;
}

// Replaces every `from` in `text` by `to`; false when there was none (the shipped file changed
// and the test must follow it).
bool replace_all(std::string& text, const std::string& from, const std::string& to) {
    bool any = false;
    for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
        text.replace(at, from.size(), to);
        any = true;
    }
    return any;
}

// Debian's prometheus, started on 127.0.0.1:<port> with its TSDB and config in `dir`.
class PrometheusProcess {
public:
    Status start(const std::string& dir, const std::string& config_path) {
        port_ = free_port();
        if (port_ == 0) return make_error("prometheus", "no free port on 127.0.0.1");
        address_ = "127.0.0.1:" + std::to_string(port_);
        log_path_ = dir + "/prometheus.log";
        std::vector<std::string> args = {"prometheus", "--config.file=" + config_path,
                                         "--storage.tsdb.path=" + dir + "/tsdb",
                                         "--web.listen-address=" + address_, "--log.level=warn"};
        const pid_t parent = ::getpid();
        pid_ = ::fork();
        if (pid_ < 0) return make_error("fork", std::strerror(errno));
        if (pid_ == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // a crashed test leaves no Prometheus behind
            if (::getppid() != parent) ::_exit(127);
            const int fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            ::dup2(fd, 1);
            ::dup2(fd, 2);
            std::vector<char*> argv;
            for (auto& a : args) argv.push_back(a.data());
            argv.push_back(nullptr);
            ::execvp(argv[0], argv.data());
            ::_exit(127);
        }
        // Ready when /-/ready answers 200 (the TSDB is open and the config loaded).
        const auto until = Clock::now() + 20s;
        while (Clock::now() < until) {
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                return make_error("prometheus",
                                  code == 127
                                      ? "not installed: install Debian's prometheus "
                                        "package (scripts/install-deps --test)"
                                      : "exited with " + std::to_string(code) + ":\n" + log());
            }
            auto r = http_get(address_, "/-/ready", 1s);
            if (r && r->status == 200) return {};
            std::this_thread::sleep_for(100ms);
        }
        return make_error("prometheus", "not ready within 20 s:\n" + log());
    }

    // SIGTERM, then SIGKILL if it has not exited within `grace`: the TSDB is thrown away, so a
    // slow flush is not worth waiting for. Returns how long the stop took.
    std::chrono::milliseconds stop(std::chrono::milliseconds grace = 3s) {
        const auto started = Clock::now();
        if (pid_ <= 0) return 0ms;
        ::kill(pid_, SIGTERM);
        int status = 0;
        while (::waitpid(pid_, &status, WNOHANG) == 0) {
            if (Clock::now() - started > grace) {
                ::kill(pid_, SIGKILL);
                ::waitpid(pid_, &status, 0);
                break;
            }
            std::this_thread::sleep_for(20ms);
        }
        pid_ = -1;
        return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
    }

    ~PrometheusProcess() { stop(0ms); }

    // GET on Prometheus's HTTP API, parsed; null when it did not answer with JSON.
    [[nodiscard]] nlohmann::json api(const std::string& target) const {
        auto r = http_get(address_, target, 5s);
        if (!r || r->status != 200) return nullptr;
        auto j = nlohmann::json::parse(r->body, nullptr, false);
        return j.is_discarded() ? nullptr : j;
    }

    // The instant vector of a query (no characters that need URL encoding), empty when none.
    [[nodiscard]] nlohmann::json query(const std::string& promql) const {
        const auto j = api("/api/v1/query?query=" + promql);
        if (!j.is_object() || j.value("status", "") != "success") return nlohmann::json::array();
        return j["data"]["result"];
    }

    [[nodiscard]] std::string log() const { return read_all(log_path_); }
    [[nodiscard]] const std::string& address() const { return address_; }

private:
    std::uint16_t port_ = 0;
    std::string address_, log_path_;
    pid_t pid_ = -1;
};

constexpr unsigned kWorkers = 2;

class Monitoring : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        const auto started = Clock::now();
        // A fixed pool: its size cannot move between Prometheus's scrape and the test's look at
        // /workers, and the saturation ratio has one exact value (count over the ceiling).
        tunerd_ = std::make_unique<TunerdProcess>(TunerdOptions{
            .config = "[workers]\nmode = \"fixed\"\ncount = " + std::to_string(kWorkers) +
                      "\nthreads = 1\n[log]\nlevel = \"info\"\n"});
        if (auto s = tunerd_->start(); !s.ok()) {
            setup_error_ = "tunerd did not start: " + s.error().what + "\n" + tunerd_->log();
            return;
        }
        // Traffic, so that the request families appear.
        for (int i = 0; i < 20; ++i) (void)http_get(tunerd_->public_address(), "/", 5s);
        std::cerr << "[ suite ] tunerd up in "
                  << std::chrono::duration<double>(Clock::now() - started).count() << " s\n";
    }

    static void TearDownTestSuite() {
        if (prometheus_) {
            const auto took = prometheus_->stop();
            std::cerr << "[ suite ] prometheus stopped in " << took.count() << " ms\n";
        }
        prometheus_.reset();
        dir_.reset();
        tunerd_.reset();
    }

    // Starts Prometheus for the tests that need it (ctest runs every test in its own process:
    // the dashboard's test does not pay for a Prometheus it does not use).
    static Status start_prometheus() {
        dir_ = std::make_unique<TempDir>("tunerd-prometheus");
        // The shipped files, copied side by side (rule_files is relative to the config) and
        // pointed at this tunerd, scraped every second.
        std::string config = read_all(std::string(TUNER_SOURCE_DIR) + "/etc/prometheus.yml");
        const bool rewritten =
            replace_all(config, "\"127.0.0.1:9464\"", "\"" + tunerd_->admin_address() + "\"") &&
            replace_all(config, "scrape_interval: 15s", "scrape_interval: 1s") &&
            replace_all(config, "evaluation_interval: 15s", "evaluation_interval: 1s") &&
            replace_all(config, "scrape_timeout: 5s", "scrape_timeout: 1s");
        if (!rewritten) {
            return make_error("etc/prometheus.yml", "changed: the test cannot point it at tunerd");
        }
        const std::string config_path = dir_->path() + "/prometheus.yml";
        write_text(config_path, config);
        std::filesystem::copy_file(std::string(TUNER_SOURCE_DIR) + "/etc/prometheus-rules.yml",
                                   dir_->path() + "/prometheus-rules.yml");
        prometheus_ = std::make_unique<PrometheusProcess>();
        return prometheus_->start(dir_->path(), config_path);
    }

    void SetUp() override {
        if (!setup_error_.empty()) GTEST_FAIL() << setup_error_;
    }

    // The first sample of `promql`'s result whose labels have job="tunerd", once Prometheus has
    // one (it scrapes every second, the first time a few seconds after it starts).
    static nlohmann::json wait_sample(const std::string& promql, std::chrono::seconds timeout) {
        const auto until = Clock::now() + timeout;
        do {
            for (const auto& sample : prometheus_->query(promql)) {
                if (sample["metric"].value("job", "") == "tunerd") return sample;
            }
            std::this_thread::sleep_for(100ms);
        } while (Clock::now() < until);
        return nullptr;
    }

    // Metric families of a /metrics scrape once the conditional ones are in: the control loop's
    // figures (after its first cycle), the workers' memory (once measured), the decisions
    // (after the first) and the request histograms (after traffic).
    static std::map<std::string, std::string> exported_families() {
        std::map<std::string, std::string> families;
        const auto until = Clock::now() + 10s;
        do {
            families = exposition_families(metrics_text(*tunerd_));
            if (families.count("tunerd_control_cycle_seconds") &&
                families.count("tunerd_worker_memory_bytes") &&
                families.count("tunerd_decisions_total") &&
                families.count("tunerd_request_duration_seconds"))
                break;
            std::this_thread::sleep_for(100ms);
        } while (Clock::now() < until);
        return families;
    }

    // Names in `exprs` that tunerd does not export (PSI families are allowed to be missing on a
    // kernel without PSI: tunerd leaves them out there).
    static std::vector<std::string> unknown_names(const std::vector<std::string>& exprs,
                                                  std::set<std::string>* seen) {
        const auto families = exported_families();
        const bool psi = std::filesystem::exists("/proc/pressure/cpu");
        std::vector<std::string> unknown;
        for (const auto& expr : exprs) {
            for (const auto& name : metric_names_in_expr(expr)) {
                seen->insert(name);
                if (!psi && name.rfind("tunerd_pressure_", 0) == 0) continue;
                if (!is_exported(families, name)) unknown.push_back(name + " in: " + expr);
            }
        }
        return unknown;
    }

    static inline std::unique_ptr<TunerdProcess> tunerd_;
    static inline std::unique_ptr<TempDir> dir_;
    static inline std::unique_ptr<PrometheusProcess> prometheus_;
    static inline std::string setup_error_;
};

// One test for everything that needs Prometheus (its start and first scrape are most of the
// time): up, the worker gauge, the saturation ratio, and the alert rules as it loaded them.
TEST_F(Monitoring, PrometheusScrapesTunerdAndItsRulesNameExportedMetrics) {
    const auto started = Clock::now();
    ASSERT_TRUE(start_prometheus().ok()) << (prometheus_ ? prometheus_->log() : "");
    const auto up = wait_sample("up", 15s);
    ASSERT_TRUE(up.is_object()) << "no scrape within 15 s; targets: "
                                << prometheus_->api("/api/v1/targets").dump(2) << "\n"
                                << prometheus_->log();
    std::cerr << "[ info ] prometheus started and scraped in "
              << std::chrono::duration<double>(Clock::now() - started).count() << " s\n";
    {
        SCOPED_TRACE("up");
        EXPECT_EQ(up["metric"].value("instance", ""), tunerd_->admin_address());
        EXPECT_EQ(up["metric"].value("service", ""), "tunerd");  // the shipped static label
        EXPECT_EQ(up["value"][1], "1") << up.dump() << "\n"
                                       << prometheus_->api("/api/v1/targets").dump(2);
    }
    {
        SCOPED_TRACE("the worker gauge against /workers");
        const auto workers = tunerd_->admin_json("/workers");
        ASSERT_TRUE(workers.ok());
        const unsigned ready = (*workers)["ready"].get<unsigned>();
        EXPECT_EQ(ready, kWorkers);
        const auto sample = wait_sample("tunerd_workers_ready", 5s);
        ASSERT_TRUE(sample.is_object()) << prometheus_->api("/api/v1/targets").dump(2);
        EXPECT_EQ(sample["value"][1], std::to_string(ready)) << sample.dump();
        EXPECT_EQ(sample["metric"].value("instance", ""), tunerd_->admin_address());
    }
    {
        SCOPED_TRACE("tunerd_capacity_saturation_ratio");
        // Fixed mode: the wish is workers.count, the bound min(memory ceiling, workers.max 64).
        const std::string text = metrics_text(*tunerd_);
        const auto ratio = sample_value(text, "tunerd_capacity_saturation_ratio");
        const auto ceiling = sample_value(text, "tunerd_workers_memory_ceiling");
        ASSERT_TRUE(ratio.has_value()) << text;
        ASSERT_TRUE(ceiling.has_value()) << text;
        EXPECT_DOUBLE_EQ(*ratio, kWorkers / std::min(*ceiling, 64.0)) << "ceiling " << *ceiling;
        EXPECT_GT(*ratio, 0.0);
        EXPECT_LE(*ratio, 1.0);  // two demo workers fit on any test machine
        const auto sample = wait_sample("tunerd_capacity_saturation_ratio", 5s);
        ASSERT_TRUE(sample.is_object());
        EXPECT_DOUBLE_EQ(std::stod(sample["value"][1].get<std::string>()), *ratio);
    }
    {
        SCOPED_TRACE("alert rules");
        // The rules as Prometheus loaded them from the copy beside the config: its parser.
        const auto rules = prometheus_->api("/api/v1/rules");
        ASSERT_TRUE(rules.is_object()) << prometheus_->log();
        std::vector<std::string> exprs;
        for (const auto& group : rules["data"]["groups"]) {
            for (const auto& rule : group["rules"]) exprs.push_back(rule.value("query", ""));
        }
        ASSERT_GE(exprs.size(), 6u) << rules.dump(2);
        std::set<std::string> seen;
        const auto unknown = unknown_names(exprs, &seen);
        EXPECT_GE(seen.size(), 5u);
        for (const auto& u : unknown) ADD_FAILURE() << "not exported by tunerd: " << u;
    }
}

TEST_F(Monitoring, DashboardNamesOnlyMetricsTunerdExports) {
    const auto dashboard = nlohmann::json::parse(
        read_all(std::string(TUNER_SOURCE_DIR) + "/etc/grafana/tunerd-dashboard.json"), nullptr,
        false);
    ASSERT_FALSE(dashboard.is_discarded()) << "etc/grafana/tunerd-dashboard.json is not JSON";
    const auto exprs = dashboard_exprs(dashboard);
    ASSERT_GE(exprs.size(), 40u);  // every panel's query, not a few
    std::set<std::string> seen;
    const auto unknown = unknown_names(exprs, &seen);
    EXPECT_GE(seen.size(), 30u);
    for (const auto& u : unknown) ADD_FAILURE() << "not exported by tunerd: " << u;
}

}  // namespace
}  // namespace tuner::test
