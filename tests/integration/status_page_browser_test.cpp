// The status page in a real browser: headless Chromium (Debian `chromium`, installed by
// `scripts/install-deps --test`) renders GET / of a tunerd that has admin.token_file set and is
// under load, the token given through the page's own #token= fragment. The test reads the
// values the page drew from the dumped DOM (the data- attributes the page keeps beside each
// shown value and on each graph) and checks them against /performance read every 250 ms while
// the page was open: workers target and ready exactly, requests/s, latency and queue wait within
// 50 % of the range /performance showed (a zero, missing or misplaced value cannot meet it).
// Chromium's console must show no uncaught error and no Content-Security-Policy refusal, and the
// screenshot is kept as an artifact
// (<build>/tests/artifacts/status_page.png). At the same time a second Chromium opens the page
// without the token: the page must show its token prompt and no value.
//
// Chromium runs as root here, so with --no-sandbox, in a fresh profile, in its own process
// group that is killed when it ends or times out. Without Chromium the test fails, unless it
// runs as a user who could not install it (then it skips and says why).
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/load_generator.hpp"
#include "tests/support/tunerd_process.hpp"

#ifndef TUNER_ARTIFACTS_DIR
#error "TUNER_ARTIFACTS_DIR: where the test keeps its screenshots"
#endif

namespace tuner::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// ---- Chromium ---------------------------------------------------------------------------------

// The first `chromium` (Debian's name) or `chromium-browser` on PATH, or "".
std::string find_chromium() {
    const char* path = std::getenv("PATH");
    std::stringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
        for (const char* name : {"chromium", "chromium-browser"}) {
            const std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
            if (::access(candidate.c_str(), X_OK) == 0) return candidate;
        }
    }
    return {};
}

// A file's first `limit` bytes.
std::string read_bounded(const std::string& path, std::size_t limit = 4u << 20) {
    std::ifstream in(path, std::ios::binary);
    std::string out(limit, '\0');
    in.read(out.data(), static_cast<std::streamsize>(limit));
    out.resize(static_cast<std::size_t>(in.gcount()));
    return out;
}

struct BrowserRun {
    int exit_status = -1;  // 128 + signal when killed
    bool timed_out = false;
    std::string dom;  // stdout: the DOM after the virtual time budget
    std::string log;  // stderr: Chromium's log, console messages included
    double seconds = 0;
};

// Renders `url` once: --dump-dom to stdout and, when `screenshot` is set, a 1280x900 PNG there.
// The virtual time budget lets the page's 2 s refresh run three times (virtual time waits for
// the page's fetches, so that costs no real 5 s). Chromium gets a fresh profile and its own
// process group, and the whole group is killed at `timeout` and once it has exited (helpers
// that outlive the browser included).
BrowserRun run_chromium(const std::string& chromium, const std::string& url,
                        const std::string& screenshot, std::chrono::seconds timeout) {
    BrowserRun run;
    TempDir home("tunerd-chromium");
    const std::string dom_file = home.file("dom.html"), log_file = home.file("chromium.log");
    std::vector<std::string> argv = {
        chromium, "--headless=new",
        // Needed as root; the page is tunerd's own, on loopback.
        "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
        "--disable-extensions", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--user-data-dir=" + home.file("profile"), "--enable-logging=stderr",
        "--v=0", "--window-size=1280,900", "--virtual-time-budget=5000"};
    if (!screenshot.empty()) argv.push_back("--screenshot=" + screenshot);
    argv.push_back("--dump-dom");
    argv.push_back(url);

    // Everything the child needs is built before the fork (the test has threads: after fork
    // the child only makes system calls). No session bus here: say so instead of letting it
    // try; its config and caches stay in the throwaway directory.
    const std::map<std::string, std::string> overrides = {{"DBUS_SESSION_BUS_ADDRESS", "disabled:"},
                                                          {"HOME", home.path()},
                                                          {"XDG_CONFIG_HOME", home.file("config")},
                                                          {"XDG_CACHE_HOME", home.file("cache")}};
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
        const std::string entry(*e);
        if (!overrides.contains(entry.substr(0, entry.find('=')))) env.push_back(entry);
    }
    for (const auto& [name, value] : overrides) env.push_back(name + "=" + value);
    std::vector<char*> args, envp;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);

    const auto started = Clock::now();
    const pid_t pid = ::fork();
    if (pid < 0) return run;
    if (pid == 0) {
        ::setpgid(0, 0);
        const int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        const int out = ::open(dom_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        const int err = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (null < 0 || out < 0 || err < 0) ::_exit(126);
        ::dup2(null, 0);
        ::dup2(out, 1);
        ::dup2(err, 2);
        ::execve(args[0], args.data(), envp.data());
        ::_exit(127);
    }
    ::setpgid(pid, pid);  // as the child does: whichever runs first
    const auto deadline = started + timeout;
    int status = 0;
    for (;;) {
        if (::waitpid(pid, &status, WNOHANG) == pid) break;
        if (Clock::now() >= deadline) {
            run.timed_out = true;
            ::kill(-pid, SIGKILL);
            ::waitpid(pid, &status, 0);
            break;
        }
        std::this_thread::sleep_for(20ms);
    }
    ::kill(-pid, SIGKILL);  // whatever it left behind (ESRCH when nothing)
    run.seconds = std::chrono::duration<double>(Clock::now() - started).count();
    run.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    run.dom = read_bounded(dom_file);
    run.log = read_bounded(log_file);
    return run;
}

// ---- reading the dumped DOM -------------------------------------------------------------------

// The attributes of the element with this id, as Chromium serialises a DOM: every attribute
// name="value" in double quotes, `"` and `&` escaped as &quot; and &amp;. (Only the start tag of
// an element the page owns is read, from Chromium's own serialiser, not arbitrary HTML.)
std::optional<std::map<std::string, std::string>> element(const std::string& dom,
                                                          const std::string& id) {
    std::smatch tag;
    if (!std::regex_search(dom, tag, std::regex("<[a-z]+ [^>]*\\bid=\"" + id + "\"[^>]*>")))
        return std::nullopt;
    std::map<std::string, std::string> attributes;
    const std::string text = tag.str();
    const std::regex attribute("([A-Za-z0-9-]+)=\"([^\"]*)\"");
    for (auto it = std::sregex_iterator(text.begin(), text.end(), attribute);
         it != std::sregex_iterator(); ++it) {
        attributes[(*it)[1].str()] = (*it)[2].str();
    }
    attributes["#tag"] = text;
    return attributes;
}

// The text of the element with this id (its content up to the next tag).
std::string text_of(const std::string& dom, const std::string& id) {
    std::smatch m;
    if (!std::regex_search(dom, m, std::regex("\\bid=\"" + id + "\"[^>]*>([^<]*)<")))
        return "<no element " + id + ">";
    return m[1].str();
}

// A number the page keeps in data-<name> of element `id`; nullopt when absent or empty.
std::optional<double> number_in(const std::string& dom, const std::string& id,
                                const std::string& name) {
    const auto e = element(dom, id);
    if (!e) return std::nullopt;
    const auto it = e->find("data-" + name);
    if (it == e->end() || it->second.empty()) return std::nullopt;
    try {
        std::size_t used = 0;
        const double value = std::stod(it->second, &used);
        if (used != it->second.size()) return std::nullopt;
        return value;
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

std::optional<double> json_number(const nlohmann::json& j, const char* pointer) {
    const nlohmann::json::json_pointer p(pointer);
    if (!j.contains(p) || !j.at(p).is_number()) return std::nullopt;
    return j.at(p).get<double>();
}

// Lines of Chromium's log that say the page went wrong: an uncaught exception, a console error,
// or something the Content-Security-Policy refused.
std::vector<std::string> page_errors(const std::string& log) {
    std::vector<std::string> out;
    std::stringstream lines(log);
    std::string line;
    while (std::getline(lines, line)) {
        if (line.find("CONSOLE") == std::string::npos &&
            line.find("Content Security Policy") == std::string::npos)
            continue;
        if (line.find("Uncaught") != std::string::npos ||
            line.find("Refused to") != std::string::npos ||
            line.find("Content Security Policy") != std::string::npos ||
            line.find(":ERROR:CONSOLE") != std::string::npos) {
            out.push_back(line);
        }
    }
    return out;
}

bool is_png(const std::string& path, std::uintmax_t* size) {
    std::error_code ec;
    *size = std::filesystem::file_size(path, ec);
    if (ec) return false;
    const std::string head = read_bounded(path, 8);
    return head == std::string("\x89PNG\r\n\x1a\n", 8);
}

// ---- the test ---------------------------------------------------------------------------------

TEST(StatusPageInChromium, UnderLoadThePlottedValuesMatchPerformanceWithTheTokenFromTheFragment) {
    const std::string chromium = find_chromium();
    if (chromium.empty()) {
        if (!is_root()) {
            GTEST_SKIP() << "chromium is not installed and this user cannot install it: run "
                            "scripts/install-deps --test as root";
        }
        FAIL() << "chromium is not installed: run scripts/install-deps --test";
    }

    TempDir dir("tunerd-chromium-page");
    // A token with characters that are percent-encoded in the fragment.
    const std::string token = "page+token/=%x";
    const std::string token_in_url = "page%2Btoken%2F%3D%25x";
    const std::string token_file = dir.write("admin.token", token + "\n");
    TunerdOptions options;
    options.config =
        "[workers]\nmode = \"fixed\"\ncount = 2\n[demo]\ncpu_ms = 1\nio_ms = 10\n"
        "[admin]\ntoken_file = \"" +
        token_file + "\"\n";
    options.admin_token = token;
    const auto started = Clock::now();
    TunerdProcess tunerd(options);
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    std::cout << "tunerd ready after "
              << std::chrono::duration<double>(Clock::now() - started).count() << " s\n";

    LoadOptions load_options;
    load_options.address = tunerd.public_address();
    load_options.target = "/work?cpu_ms=1&io_ms=10";
    load_options.connections = 6;
    load_options.max_duration = 40s;
    LoadGenerator load(load_options);
    load.start();
    // The window has requests in it before the page first asks.
    auto before = tunerd.admin_json("/performance");
    for (const auto deadline = Clock::now() + 5s;
         Clock::now() < deadline &&
         !(before && json_number(*before, "/latency/rate_rps").value_or(0) > 0);
         before = tunerd.admin_json("/performance")) {
        std::this_thread::sleep_for(100ms);
    }
    ASSERT_TRUE(before) << before.error().to_string();

    const std::string artifacts = TUNER_ARTIFACTS_DIR;
    std::filesystem::create_directories(artifacts);
    const std::string screenshot = artifacts + "/status_page.png";
    const std::string prompt_screenshot = artifacts + "/status_page_token_prompt.png";
    std::filesystem::remove(screenshot);
    std::filesystem::remove(prompt_screenshot);
    const std::string page = "http://" + tunerd.admin_address() + "/";
    // Both at once, the second without the token; /performance read every 250 ms meanwhile,
    // so that whenever the page asked, the test asked about then too.
    auto with_token = std::async(std::launch::async, [&] {
        return run_chromium(chromium, page + "#token=" + token_in_url, screenshot, 30s);
    });
    auto without_token = std::async(
        std::launch::async, [&] { return run_chromium(chromium, page, prompt_screenshot, 30s); });
    std::vector<nlohmann::json> samples{*before};
    const auto running = [](const std::future<BrowserRun>& f) {
        return f.wait_for(0ms) != std::future_status::ready;
    };
    while (running(with_token) || running(without_token)) {
        std::this_thread::sleep_for(250ms);
        if (auto p = tunerd.admin_json("/performance"); p && samples.size() < 200)
            samples.push_back(*p);
    }
    const BrowserRun run = with_token.get();
    const BrowserRun asked = without_token.get();
    auto after = tunerd.admin_json("/performance");
    const LoadResult result = load.stop();
    ASSERT_TRUE(after) << after.error().to_string();
    samples.push_back(*after);
    std::cout << "chromium: " << run.seconds << " s with the token, " << asked.seconds
              << " s without; load: " << result.summary() << "\n";

    ASSERT_FALSE(run.timed_out) << run.log;
    ASSERT_EQ(run.exit_status, 0) << run.log;
    ASSERT_NE(run.dom.find("<html"), std::string::npos) << run.dom << run.log;
    const auto errors = page_errors(run.log);
    EXPECT_TRUE(errors.empty()) << errors.front();

    // The script ran (the CSP let it) and got its answers with the token: three refreshes in
    // the 5 s of virtual time, the prompt hidden, the health status shown.
    const auto refreshes = number_in(run.dom, "updated", "refreshes");
    ASSERT_TRUE(refreshes) << "the page never drew /performance\n" << run.dom << "\n" << run.log;
    EXPECT_GE(*refreshes, 2) << run.dom;
    ASSERT_TRUE(element(run.dom, "auth")) << run.dom;
    EXPECT_TRUE(element(run.dom, "auth")->contains("hidden")) << run.dom;
    EXPECT_EQ(text_of(run.dom, "status").rfind("ok · tunerd ", 0), 0u) << run.dom;

    // Workers: exactly as /performance says (a fixed pool of 2).
    for (const char* id : {"workers-ready", "workers-target"}) {
        const auto shown = number_in(run.dom, id, "value");
        const char* pointer =
            std::string(id) == "workers-ready" ? "/workers/ready" : "/workers/target";
        ASSERT_TRUE(shown) << id << "\n" << run.dom;
        for (const auto& sample : samples)
            EXPECT_EQ(*shown, json_number(sample, pointer).value_or(-1)) << id;
        EXPECT_EQ(*shown, 2) << id;
        EXPECT_EQ(text_of(run.dom, id), std::to_string(static_cast<int>(*shown))) << id;
    }
    // A value that moves with the load: within `tolerance` of the range /performance showed
    // while the page was open (its lowest value, all above zero, halved; its highest times
    // 1 + tolerance).
    const auto within = [&](const char* what, std::optional<double> shown, const char* pointer,
                            double tolerance) {
        ASSERT_TRUE(shown) << what << " missing from the page\n" << run.dom;
        double low = 0, high = 0;
        for (std::size_t i = 0; i < samples.size(); ++i) {
            const auto v = json_number(samples[i], pointer);
            ASSERT_TRUE(v && *v > 0)
                << pointer << " in /performance sample " << i << ": " << samples[i].dump();
            low = i == 0 ? *v : std::min(low, *v);
            high = std::max(high, *v);
        }
        EXPECT_GE(*shown, (1 - tolerance) * low)
            << what << ": page " << *shown << ", /performance " << low << " to " << high;
        EXPECT_LE(*shown, (1 + tolerance) * high)
            << what << ": page " << *shown << ", /performance " << low << " to " << high;
        std::cout << what << ": page " << *shown << ", /performance " << low << " to " << high
                  << " (" << samples.size() << " samples)\n";
    };
    within("requests/s", number_in(run.dom, "rps", "value"), "/latency/rate_rps", 0.5);
    within("latency p50", number_in(run.dom, "latency", "p50"), "/latency/total/p50_ms", 0.5);
    within("latency p95", number_in(run.dom, "latency", "p95"), "/latency/total/p95_ms", 0.5);
    within("latency p99", number_in(run.dom, "latency", "p99"), "/latency/total/p99_ms", 0.5);
    within("queue wait p95", number_in(run.dom, "queue", "p95"), "/latency/queue_wait/p95_ms", 0.5);
    // The text shown is the same number, rounded as the page rounds it.
    {
        std::ostringstream rps;
        rps.setf(std::ios::fixed);
        rps.precision(1);
        rps << *number_in(run.dom, "rps", "value");
        EXPECT_EQ(text_of(run.dom, "rps"), rps.str());
    }
    // The graphs: one point per refresh, the last one the value shown.
    auto rps_graph = element(run.dom, "g-rps");
    ASSERT_TRUE(rps_graph);
    EXPECT_EQ((*rps_graph)["data-samples"], std::to_string(static_cast<int>(*refreshes)));
    EXPECT_EQ(std::stod((*rps_graph)["data-last"]), *number_in(run.dom, "rps", "value"));
    ASSERT_TRUE(element(run.dom, "g-workers"));
    EXPECT_EQ((*element(run.dom, "g-workers"))["data-last"], "2 2");
    std::smatch polyline;
    ASSERT_TRUE(std::regex_search(run.dom, polyline,
                                  std::regex("id=\"g-rps\"[^>]*><polyline points=\"([^\"]*)\"")))
        << run.dom;
    const std::string points = polyline[1].str();
    EXPECT_EQ(static_cast<double>(std::count(points.begin(), points.end(), ',')), *refreshes)
        << points;
    // CPU: the effective cores are /performance's (quota or effective), memory shown when known.
    const auto cores = number_in(run.dom, "cpu", "cores");
    const auto perf_cores = json_number(*after, "/limits/cpu/quota_cores")
                                ? json_number(*after, "/limits/cpu/quota_cores")
                                : json_number(*after, "/limits/cpu/effective_cores");
    ASSERT_TRUE(cores && perf_cores) << run.dom;
    EXPECT_EQ(*cores, *perf_cores);
    if (const auto used = json_number(*after, "/limits/memory/working_set_bytes")) {
        const auto shown = number_in(run.dom, "memory", "used");
        ASSERT_TRUE(shown) << run.dom;
        EXPECT_GT(*shown, 0);
    }

    // The screenshot is kept: a PNG of a drawn page, not an empty one.
    std::uintmax_t size = 0;
    EXPECT_TRUE(is_png(screenshot, &size)) << screenshot;
    EXPECT_GT(size, 10u * 1024) << screenshot;
    std::cout << "screenshot: " << screenshot << " (" << size << " bytes)\n";

    // Without the token: the prompt, a status naming the missing token, no value drawn.
    ASSERT_FALSE(asked.timed_out) << asked.log;
    ASSERT_EQ(asked.exit_status, 0) << asked.log;
    const auto auth = element(asked.dom, "auth");
    ASSERT_TRUE(auth) << asked.dom;
    EXPECT_FALSE(auth->contains("hidden")) << asked.dom;
    EXPECT_NE(text_of(asked.dom, "status").find("token"), std::string::npos) << asked.dom;
    EXPECT_EQ(text_of(asked.dom, "workers-ready"), "–") << asked.dom;
    EXPECT_FALSE(number_in(asked.dom, "updated", "refreshes")) << asked.dom;
    std::uintmax_t prompt_size = 0;
    EXPECT_TRUE(is_png(prompt_screenshot, &prompt_size)) << prompt_screenshot;
    std::cout << "screenshot: " << prompt_screenshot << " (" << prompt_size << " bytes)\n";

    EXPECT_EQ(result.client_errors, 0u) << result.summary();
}

}  // namespace
}  // namespace tuner::test
