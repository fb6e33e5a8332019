// The peers benchmark's own HTTP/1.1 load client: closed-loop keep-alive connections on one
// thread (Asio coroutines, Beast's parser), in phases (each with its connection count and
// target), with completions counted per second, so a load step's ramp and a phase change can be
// seen second by second, which wrk cannot show. Prints one JSON document.
//
//   peers_loadgen --host 127.0.0.1 --port 8080 --phase 10s:32:/work?cpu_ms=5 [--phase ...]
//                 [--warmup 5s] [--timeout 30s]
//
// Every phase runs for its duration; the first --warmup of the first phase is not measured.
// Latency percentiles are over each phase's measured responses; a connection error or a timeout
// counts as an error, a non-2xx status as such (by code).
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

struct Phase {
    std::chrono::milliseconds duration{10s};
    unsigned connections = 32;
    std::string target = "/";
};

struct PhaseStats {
    std::uint64_t ok = 0;
    std::uint64_t errors = 0;
    std::map<int, std::uint64_t> statuses;  // non-2xx
    std::vector<std::uint32_t> latencies_us;
    double measured_s = 0;
};

struct Options {
    std::string host = "127.0.0.1";
    unsigned short port = 8080;
    std::vector<Phase> phases;
    std::chrono::milliseconds warmup{0};
    std::chrono::milliseconds timeout{30s};
};

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
    double value = 0;
    const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{}) return std::nullopt;
    const std::string_view unit(p, text.data() + text.size() - p);
    if (unit == "ms") return std::chrono::milliseconds(static_cast<long>(value));
    if (unit == "s" || unit.empty())
        return std::chrono::milliseconds(static_cast<long>(value * 1000));
    if (unit == "m") return std::chrono::milliseconds(static_cast<long>(value * 60000));
    return std::nullopt;
}

std::optional<Phase> parse_phase(std::string_view text) {
    // duration:connections:target (the target may contain ':').
    const auto a = text.find(':');
    const auto b = a == std::string_view::npos ? a : text.find(':', a + 1);
    if (b == std::string_view::npos) return std::nullopt;
    Phase phase;
    const auto d = parse_duration(text.substr(0, a));
    if (!d) return std::nullopt;
    phase.duration = *d;
    const auto n = text.substr(a + 1, b - a - 1);
    if (std::from_chars(n.data(), n.data() + n.size(), phase.connections).ec != std::errc{})
        return std::nullopt;
    phase.target = std::string(text.substr(b + 1));
    if (phase.target.empty() || phase.target.front() != '/') return std::nullopt;
    return phase;
}

class Run {
public:
    explicit Run(Options options) : options_(std::move(options)) {
        for (const auto& p : options_.phases)
            max_connections_ = std::max(max_connections_, p.connections);
        stats_.resize(options_.phases.size());
    }

    nlohmann::json go() {
        start_ = SteadyClock::now();
        auto end = start_;
        for (const auto& p : options_.phases) {
            phase_starts_.push_back(end);
            end += p.duration;
        }
        end_ = end;
        for (unsigned i = 0; i < max_connections_; ++i)
            asio::co_spawn(ioc_, connection(i), asio::detached);
        ioc_.run();
        return report();
    }

private:
    // The phase at `t`, or -1 after the last.
    int phase_at(SteadyClock::time_point t) const {
        for (int i = static_cast<int>(phase_starts_.size()) - 1; i >= 0; --i) {
            if (t >= phase_starts_[i]) return t < end_ ? i : -1;
        }
        return 0;
    }

    bool measured(SteadyClock::time_point t) const { return t >= start_ + options_.warmup; }

    void record(SteadyClock::time_point sent, SteadyClock::time_point done, int status) {
        const int phase = phase_at(sent);
        if (phase < 0 || !measured(sent)) return;
        const auto second = static_cast<std::size_t>(
            std::chrono::duration_cast<std::chrono::seconds>(done - start_).count());
        if (per_second_.size() <= second) per_second_.resize(second + 1);
        auto& s = stats_[static_cast<std::size_t>(phase)];
        if (status >= 200 && status < 300) {
            ++s.ok;
            ++per_second_[second].ok;
            s.latencies_us.push_back(static_cast<std::uint32_t>(
                std::chrono::duration_cast<std::chrono::microseconds>(done - sent).count()));
        } else if (status == 0) {
            ++s.errors;
            ++per_second_[second].errors;
        } else {
            ++s.statuses[status];
            ++per_second_[second].other;
        }
    }

    asio::awaitable<void> connection(unsigned index) {
        beast::tcp_stream stream(ioc_);
        beast::flat_buffer buffer;
        bool connected = false;
        asio::steady_timer idle(ioc_);
        const tcp::endpoint ep(asio::ip::make_address(options_.host), options_.port);
        for (;;) {
            const auto now = SteadyClock::now();
            const int phase = phase_at(now);
            if (phase < 0) break;
            const Phase& p = options_.phases[static_cast<std::size_t>(phase)];
            if (index >= p.connections) {
                // Not in this phase: close, and look again shortly.
                if (connected) {
                    beast::error_code ignored;
                    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
                    stream.close();
                    connected = false;
                }
                idle.expires_after(20ms);
                beast::error_code ec;
                co_await idle.async_wait(asio::redirect_error(asio::use_awaitable, ec));
                continue;
            }
            beast::error_code ec;
            const auto sent = SteadyClock::now();
            // A keep-alive connection the server closed after its last answer (uWSGI's
            // http-socket answers HTTP/1.1 without "Connection: close", then closes): as browsers
            // do for an idempotent request on a reused connection (RFC 9112 section 9.3.1), it
            // is sent once more on a new connection, not counted as an error.
            for (int attempt = 0; attempt < 2; ++attempt) {
                const bool reused = connected;
                ec = {};
                if (!connected) {
                    stream.expires_after(options_.timeout);
                    co_await stream.async_connect(ep,
                                                  asio::redirect_error(asio::use_awaitable, ec));
                    if (ec) {
                        record(sent, SteadyClock::now(), 0);
                        stream.close();
                        idle.expires_after(100ms);  // a refused connect must not spin
                        co_await idle.async_wait(asio::redirect_error(asio::use_awaitable, ec));
                        break;
                    }
                    buffer.clear();
                    connected = true;
                }
                http::request<http::empty_body> req{http::verb::get, p.target, 11};
                req.set(http::field::host, options_.host);
                req.set(http::field::user_agent, "tunerd-peers-loadgen");
                stream.expires_after(options_.timeout);
                co_await http::async_write(stream, req,
                                           asio::redirect_error(asio::use_awaitable, ec));
                http::response_parser<http::string_body> parser;
                parser.body_limit(64 * 1024 * 1024);
                parser.header_limit(1024 * 1024);
                if (!ec) {
                    co_await http::async_read(stream, buffer, parser,
                                              asio::redirect_error(asio::use_awaitable, ec));
                }
                const auto done = SteadyClock::now();
                if (ec) {
                    stream.close();
                    connected = false;
                    const bool stale =
                        reused && !parser.got_some() &&
                        (ec == http::error::end_of_stream || ec == asio::error::eof ||
                         ec == asio::error::connection_reset || ec == asio::error::broken_pipe);
                    if (stale && attempt == 0) continue;
                    record(sent, done, 0);
                    break;
                }
                record(sent, done, parser.get().result_int());
                if (!parser.get().keep_alive()) {
                    stream.close();
                    connected = false;
                }
                break;
            }
        }
        beast::error_code ignored;
        stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    }

    static double percentile_ms(std::vector<std::uint32_t>& v, double q) {
        if (v.empty()) return 0;
        const auto k = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1));
        std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
        return v[k] / 1000.0;
    }

    nlohmann::json report() {
        nlohmann::json phases = nlohmann::json::array();
        std::uint64_t ok = 0, errors = 0, other = 0;
        double measured_total = 0;
        std::vector<std::uint32_t> all;
        for (std::size_t i = 0; i < options_.phases.size(); ++i) {
            auto& s = stats_[i];
            const double start_s = std::chrono::duration<double>(phase_starts_[i] - start_).count();
            const double length_s =
                std::chrono::duration<double>(options_.phases[i].duration).count();
            const double warm_s = std::chrono::duration<double>(options_.warmup).count();
            const double measured_s = std::max(0.0, start_s + length_s - std::max(start_s, warm_s));
            nlohmann::json codes = nlohmann::json::object();
            std::uint64_t non2xx = 0;
            for (const auto& [code, n] : s.statuses) {
                codes[std::to_string(code)] = n;
                non2xx += n;
            }
            all.insert(all.end(), s.latencies_us.begin(), s.latencies_us.end());
            phases.push_back({{"target", options_.phases[i].target},
                              {"connections", options_.phases[i].connections},
                              {"start_s", start_s},
                              {"measured_s", measured_s},
                              {"ok", s.ok},
                              {"rps", measured_s > 0 ? s.ok / measured_s : 0},
                              {"errors", s.errors},
                              {"non_2xx", non2xx},
                              {"statuses", codes},
                              {"p50_ms", percentile_ms(s.latencies_us, 0.5)},
                              {"p99_ms", percentile_ms(s.latencies_us, 0.99)}});
            ok += s.ok;
            errors += s.errors;
            other += non2xx;
            measured_total += measured_s;
        }
        nlohmann::json seconds = nlohmann::json::array();
        for (const auto& b : per_second_) seconds.push_back({b.ok, b.errors, b.other});
        return {{"ok", ok},
                {"errors", errors},
                {"non_2xx", other},
                {"measured_s", measured_total},
                {"rps", measured_total > 0 ? ok / measured_total : 0},
                {"p50_ms", percentile_ms(all, 0.5)},
                {"p99_ms", percentile_ms(all, 0.99)},
                {"phases", phases},
                {"per_second", seconds}};
    }

    struct Second {
        std::uint64_t ok = 0, errors = 0, other = 0;
    };

    Options options_;
    asio::io_context ioc_{1};
    unsigned max_connections_ = 0;
    SteadyClock::time_point start_, end_;
    std::vector<SteadyClock::time_point> phase_starts_;
    std::vector<PhaseStats> stats_;
    std::vector<Second> per_second_;  // since start, by completion second
};

int usage(const char* why) {
    std::fprintf(stderr,
                 "peers_loadgen: %s\nusage: peers_loadgen --port N [--host ADDR] --phase "
                 "DURATION:CONNECTIONS:TARGET [--phase ...] [--warmup DURATION] [--timeout "
                 "DURATION]\n",
                 why);
    return 64;
}

}  // namespace

int main(int argc, char** argv) {
    Options options;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (i + 1 >= argc) return usage("every option takes a value");
        const std::string_view value = argv[++i];
        if (arg == "--host") {
            options.host = std::string(value);
        } else if (arg == "--port") {
            if (std::from_chars(value.data(), value.data() + value.size(), options.port).ec !=
                std::errc{})
                return usage("bad --port");
        } else if (arg == "--phase") {
            auto phase = parse_phase(value);
            if (!phase) return usage("bad --phase (DURATION:CONNECTIONS:/TARGET)");
            options.phases.push_back(*phase);
        } else if (arg == "--warmup" || arg == "--timeout") {
            auto d = parse_duration(value);
            if (!d) return usage("bad duration");
            (arg == "--warmup" ? options.warmup : options.timeout) = *d;
        } else {
            return usage("unknown option");
        }
    }
    if (options.phases.empty()) return usage("at least one --phase");
    Run run(std::move(options));
    std::printf("%s\n", run.go().dump().c_str());
    return 0;
}
