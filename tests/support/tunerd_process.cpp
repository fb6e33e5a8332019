// Test harness for the real tunerd binary (see tunerd_process.hpp).
#include "tests/support/tunerd_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <dirent.h>
#include <gtest/gtest.h>

namespace tuner::test {

namespace {

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string random_token() {
    std::random_device rd;
    std::ostringstream out;
    out << std::hex << rd() << rd();
    return out.str();
}

}  // namespace

TunerdProcess::TunerdProcess(TunerdOptions options) : options_(std::move(options)) {
    config_path_ = dir_.path() + "/tunerd.toml";
    state_dir_ = dir_.path() + "/state";
    log_path_ = dir_.path() + "/tunerd.log";
    marker_ = "tunerd-test-" + random_token();
}

TunerdProcess::~TunerdProcess() {
    if (running()) {
        ::kill(pid_, SIGKILL);
        wait_exit(std::chrono::seconds(10));
    }
    // Whatever carries our marker dies with the test.
    for (pid_t p : processes_with_marker(marker_)) ::kill(p, SIGKILL);
    // A sanitizer report from tunerd or from a worker (their stderr is in the log) fails the
    // test, even when the behaviour under test looked right (make test-asan, make test-tsan:
    // with halt_on_error the daemon is gone after its first report, and whatever the test saw
    // of that, the report is here).
    const std::string text = log();
    for (const char* marker : {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                               "runtime error: ", "ThreadSanitizer: "}) {
        if (const auto at = text.find(marker); at != std::string::npos) {
            ADD_FAILURE() << "sanitizer report in tunerd's log (" << log_path_ << "):\n"
                          << text.substr(at > 200 ? at - 200 : 0, 8000);
            break;
        }
    }
}

std::string TunerdProcess::log() const {
    return read_file(log_path_);
}

Status TunerdProcess::start() {
    // Defaults that every test wants; the test's own TOML goes after and may add sections.
    std::string config = options_.config;
    auto has_section = [&](const std::string& name) {
        return config.find("[" + name + "]") != std::string::npos;
    };
    auto section_lines = [&](const std::string& name, const std::string& lines) {
        if (has_section(name)) {
            const auto pos = config.find("[" + name + "]") + name.size() + 2;
            config.insert(pos, "\n" + lines);
        } else {
            config += "\n[" + name + "]\n" + lines + "\n";
        }
    };
    section_lines("server", "listen = \"127.0.0.1:0\"");
#ifdef TUNER_TEST_IO_THREADS
    // make test-tsan: several I/O threads, whose sharing ThreadSanitizer is there to watch.
    if (config.find("io_threads") == std::string::npos)
        section_lines("server", "io_threads = " + std::to_string(TUNER_TEST_IO_THREADS));
#endif
    section_lines("admin", "listen = \"127.0.0.1:0\"");
    section_lines("state", "dir = \"" + state_dir_ + "\"");
    if (config.find("level =") == std::string::npos) section_lines("log", "level = \"debug\"");
    {
        std::ofstream out(config_path_);
        out << config;
    }
    std::vector<std::string> args = {TUNERD_BINARY, "--config", config_path_};
    args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());
    std::vector<std::string> env_strings;
    for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
    env_strings.push_back("TUNER_TEST_MARKER=" + marker_);
    for (const auto& [k, v] : options_.env) env_strings.push_back(k + "=" + v);
    // Filled in by the child (no allocation after fork): "NAME=" and room for a pid.
    std::vector<std::pair<std::size_t, std::size_t>> pid_slots;  // string index, digits offset
    for (const auto& name : options_.pid_env) {
        pid_slots.emplace_back(env_strings.size(), name.size() + 1);
        env_strings.push_back(name + "=" + std::string(24, '\0'));
    }
    std::vector<int> moved_fds(options_.passed_fds.size(), -1);

    int ready_pipe[2];
    if (::pipe2(ready_pipe, O_CLOEXEC) != 0) return make_error("pipe", std::strerror(errno));
    const pid_t test_pid = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) return make_error("fork", std::strerror(errno));
    if (pid_ == 0) {
        // A test process that dies (a crash, a sanitizer abort) takes its tunerd along, and
        // tunerd's workers follow it (their own PDEATHSIG): nothing is left running.
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != test_pid) ::_exit(127);
        ::close(ready_pipe[1]);
        char go;
        (void)!::read(ready_pipe[0], &go, 1);  // wait until the parent placed us in a cgroup
        const int fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ::dup2(fd, 1);
        ::dup2(fd, 2);
        if (fd > 2) ::close(fd);
        // systemd's order: every passed descriptor out of the way first, then to 3, 4, ...
        // (dup2 leaves them open across exec).
        for (std::size_t i = 0; i < moved_fds.size(); ++i)
            moved_fds[i] = ::fcntl(options_.passed_fds[i], F_DUPFD_CLOEXEC, 100);
        for (std::size_t i = 0; i < moved_fds.size(); ++i)
            ::dup2(moved_fds[i], 3 + static_cast<int>(i));
        for (const auto& [index, offset] : pid_slots) {
            char digits[24];
            int n = 0;
            for (long p = static_cast<long>(::getpid()); p > 0; p /= 10) digits[n++] = '0' + p % 10;
            char* out = env_strings[index].data() + offset;
            while (n > 0) *out++ = digits[--n];
            *out = '\0';
        }
        std::vector<char*> argv, envp;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        for (auto& e : env_strings) envp.push_back(e.data());
        envp.push_back(nullptr);
        ::execve(argv[0], argv.data(), envp.data());
        ::_exit(127);
    }
    ::close(ready_pipe[0]);
    if (!options_.cgroup_procs_file.empty()) {
        std::ofstream procs(options_.cgroup_procs_file);
        procs << pid_ << "\n";
        procs.flush();
        if (!procs) {
            ::close(ready_pipe[1]);
            return make_error(options_.cgroup_procs_file, "cannot move tunerd into the cgroup");
        }
    }
    (void)!::write(ready_pipe[1], "g", 1);
    ::close(ready_pipe[1]);

    const auto deadline = std::chrono::steady_clock::now() + options_.ready_timeout;
    const std::string listen_file = state_dir_ + "/listen.json";
    while (std::chrono::steady_clock::now() < deadline) {
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            exited_ = true;
            exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            return make_error(
                "tunerd", "exited with " + std::to_string(exit_status_) + " at start:\n" + log());
        }
        if (public_.empty() && std::filesystem::exists(listen_file)) {
            const auto j = nlohmann::json::parse(read_file(listen_file), nullptr, false);
            if (!j.is_discarded() && j.contains("public")) {
                public_ = j["public"].get<std::string>();
                admin_ = j["admin"].get<std::string>();
            }
        }
        if (!public_.empty()) {
            if (!options_.wait_ready) return {};
            auto workers = admin_json("/workers");
            if (workers && (*workers)["ready"].get<unsigned>() >= 1 &&
                (*workers)["ready"].get<unsigned>() >= (*workers)["target"].get<unsigned>()) {
                return {};
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return make_error(
        "tunerd",
        "not ready within " + std::to_string(options_.ready_timeout.count()) + "s:\n" + log());
}

Result<HttpResponse> TunerdProcess::admin_request(const HttpRequest& req) const {
    if (options_.admin_token.empty()) return http_request(admin_, req, std::chrono::seconds(30));
    HttpRequest with_token = req;
    with_token.headers["Authorization"] = "Bearer " + options_.admin_token;
    return http_request(admin_, with_token, std::chrono::seconds(30));
}

Result<nlohmann::json> TunerdProcess::admin_json(const std::string& target) const {
    auto r = admin_request({"GET", target, {}, {}});
    if (!r) return r.error();
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    if (j.is_discarded()) return make_error(target, "not JSON: " + r->body);
    return j;
}

std::string TunerdProcess::admin_dump(const std::string& target) const {
    const auto j = admin_json(target);
    return j ? j->dump(2) : "(no answer from " + target + ": " + j.error().to_string() + ")";
}

Result<HttpResponse> TunerdProcess::get(const std::string& target) const {
    return http_get(public_, target, std::chrono::seconds(60));
}

bool TunerdProcess::wait_workers(const std::function<bool(const nlohmann::json&)>& predicate,
                                 std::chrono::milliseconds timeout) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        auto j = admin_json("/workers");
        if (j && predicate(*j)) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
}

nlohmann::json TunerdProcess::wait_health(const std::string& status,
                                          std::chrono::milliseconds timeout) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    nlohmann::json last;
    while (std::chrono::steady_clock::now() < deadline) {
        // 503 answers (degraded, starting) carry the same JSON.
        if (auto j = admin_json("/health")) {
            last = *j;
            if (last["status"] == status) break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return last;
}

std::vector<pid_t> TunerdProcess::ready_worker_pids() const {
    std::vector<pid_t> out;
    auto j = admin_json("/workers");
    if (!j) return out;
    for (const auto& w : (*j)["workers"]) {
        if (w["state"] == "ready") out.push_back(w["pid"].get<pid_t>());
    }
    return out;
}

Result<HttpResponse> TunerdProcess::set_worker_target(long long workers) const {
    return admin_request({"POST",
                          "/workers/target",
                          "{\"workers\": " + std::to_string(workers) + "}",
                          {{"Content-Type", "application/json"}}});
}

Result<HttpResponse> TunerdProcess::release_worker_target() const {
    return admin_request({"DELETE", "/workers/target", {}, {}});
}

bool TunerdProcess::wait_ready_at_target(unsigned target, std::chrono::milliseconds timeout) const {
    return wait_workers(
        [&](const nlohmann::json& w) { return w["target"] == target && w["ready"] == target; },
        timeout);
}

std::optional<double> TunerdProcess::metric(const std::string& name) const {
    auto r = admin_request({"GET", "/metrics", {}, {}});
    if (!r) return std::nullopt;
    std::istringstream lines(r->body);
    for (std::string line; std::getline(lines, line);) {
        if (line.rfind(name, 0) != 0 || line.size() <= name.size()) continue;
        const char next = line[name.size()];
        if (next != ' ' && next != '{') continue;  // a longer name sharing the prefix
        const auto space = line.rfind(' ');
        return std::strtod(line.c_str() + space + 1, nullptr);
    }
    return std::nullopt;
}

void TunerdProcess::signal(int sig) const {
    if (pid_ > 0 && !exited_) ::kill(pid_, sig);
}

std::optional<int> TunerdProcess::wait_exit(std::chrono::milliseconds timeout) {
    if (exited_) return exit_status_;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            exited_ = true;
            exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            return exit_status_;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return std::nullopt;
}

std::vector<pid_t> processes_with_marker(const std::string& marker) {
    std::vector<pid_t> out;
    const std::string needle = "TUNER_TEST_MARKER=" + marker;
    DIR* d = ::opendir("/proc");
    if (!d) return out;
    while (dirent* e = ::readdir(d)) {
        char* end = nullptr;
        const long pid = std::strtol(e->d_name, &end, 10);
        if (*end != '\0' || pid <= 0) continue;
        std::string environ_text = read_file(std::string("/proc/") + e->d_name + "/environ");
        // Entries are NUL-separated: compare whole entries.
        std::size_t start = 0;
        while (start < environ_text.size()) {
            const auto nul = environ_text.find('\0', start);
            const auto entry = environ_text.substr(
                start, nul == std::string::npos ? std::string::npos : nul - start);
            if (entry == needle) {
                // A zombie still lists its environment until reaped; it is gone for our purpose.
                const std::string stat = read_file(std::string("/proc/") + e->d_name + "/stat");
                const auto paren = stat.rfind(')');
                if (paren == std::string::npos || paren + 2 >= stat.size() ||
                    stat[paren + 2] != 'Z') {
                    out.push_back(static_cast<pid_t>(pid));
                }
                break;
            }
            if (nul == std::string::npos) break;
            start = nul + 1;
        }
    }
    ::closedir(d);
    return out;
}

std::vector<pid_t> wait_no_marker_processes(const std::string& marker,
                                            std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        auto left = processes_with_marker(marker);
        if (left.empty() || std::chrono::steady_clock::now() >= deadline) return left;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
}

std::vector<pid_t> child_pids(pid_t pid) {
    const std::string path =
        "/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children";
    std::istringstream in(read_file(path));
    std::vector<pid_t> out;
    for (pid_t child = 0; in >> child;) out.push_back(child);
    return out;
}

CommandResult run_command(const std::vector<std::string>& argv,
                          const std::map<std::string, std::string>& env,
                          std::chrono::seconds timeout) {
    CommandResult result;
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return result;
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(out[1], 1);
        ::dup2(out[1], 2);
        for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
        std::vector<std::string> copy = argv;
        std::vector<char*> args;
        for (auto& a : copy) args.push_back(a.data());
        args.push_back(nullptr);
        ::execvp(args[0], args.data());
        ::_exit(127);
    }
    ::close(out[1]);
    ::fcntl(out[0], F_SETFL, O_NONBLOCK);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    bool done = false;
    char buf[4096];
    while (!done) {
        ssize_t n;
        while ((n = ::read(out[0], buf, sizeof buf)) > 0)
            result.output.append(buf, static_cast<std::size_t>(n));
        if (::waitpid(pid, &status, WNOHANG) == pid) {
            done = true;
            while ((n = ::read(out[0], buf, sizeof buf)) > 0)
                result.output.append(buf, static_cast<std::size_t>(n));
            break;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &status, 0);
            result.output += "\n[timed out]";
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ::close(out[0]);
    result.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return result;
}

bool is_root() {
    return ::geteuid() == 0;
}

}  // namespace tuner::test
