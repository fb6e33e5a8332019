// Resize and kill scenarios under load (see pool_scenarios.hpp).
#include "tests/support/pool_scenarios.hpp"

#include <signal.h>

#include <algorithm>
#include <sstream>
#include <thread>

namespace tuner::test {

namespace {

using namespace std::chrono_literals;

// Lets the load run until at least `n` more responses came back (or `timeout` passed), so each
// phase of a scenario really happens under traffic.
void wait_for_responses(const LoadGenerator& load, std::uint64_t n,
                        std::chrono::milliseconds timeout) {
    const auto until = load.completed() + n;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (load.completed() < until && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(10ms);
    }
}

// A ready worker with requests in flight: {worker pid, worker id}; {-1, 0} if none in `timeout`.
std::pair<pid_t, unsigned> find_busy_worker(const TunerdProcess& tunerd,
                                            std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (auto j = tunerd.admin_json("/workers")) {
            for (const auto& w : (*j)["workers"]) {
                if (w["state"] == "ready" && w["inflight"].get<unsigned>() > 0) {
                    return {w["pid"].get<pid_t>(), w["id"].get<unsigned>()};
                }
            }
        }
        std::this_thread::sleep_for(10ms);
    }
    return {-1, 0};
}

bool worker_listed(const nlohmann::json& workers, pid_t pid) {
    return std::any_of(workers["workers"].begin(), workers["workers"].end(),
                       [&](const nlohmann::json& w) { return w["pid"] == pid; });
}

ScenarioResult finish(const TunerdProcess& tunerd, LoadGenerator& load,
                      std::vector<std::string> problems) {
    ScenarioResult result;
    result.load = load.stop();
    result.problems = std::move(problems);
    result.retries = tunerd.metric("tunerd_request_retries_total").value_or(-1);
    return result;
}

}  // namespace

LoadOptions scenario_load(const TunerdProcess& tunerd, const std::string& target,
                          unsigned connections) {
    return {.address = tunerd.public_address(),
            .target = target,
            .connections = connections,
            .max_duration = std::chrono::minutes(5)};
}

std::string ScenarioResult::describe() const {
    std::ostringstream out;
    out << load.summary() << "\nretries=" << retries;
    for (const auto& p : problems) out << "\nproblem: " << p;
    return out.str();
}

ScenarioResult resize_cycles_under_load(const TunerdProcess& tunerd, const LoadOptions& load,
                                        const std::vector<unsigned>& steps, unsigned cycles,
                                        std::chrono::milliseconds step_timeout) {
    LoadGenerator generator(load);
    generator.start();
    std::vector<std::string> problems;
    wait_for_responses(generator, 50, 10s);
    for (unsigned cycle = 1; cycle <= cycles && problems.empty(); ++cycle) {
        for (const unsigned target : steps) {
            auto r = tunerd.set_worker_target(target);
            if (!r || r->status != 200) {
                problems.push_back("POST /workers/target " + std::to_string(target) + ": " +
                                   (r ? r->body : r.error().to_string()));
                break;
            }
            if (!tunerd.wait_ready_at_target(target, step_timeout)) {
                auto j = tunerd.admin_json("/workers");
                problems.push_back("cycle " + std::to_string(cycle) + ": " +
                                   std::to_string(target) + " workers not ready within " +
                                   std::to_string(step_timeout.count()) +
                                   " ms: " + (j ? j->dump() : j.error().to_string()));
                break;
            }
            // Some traffic at each size before the next step.
            wait_for_responses(generator, 20, 5s);
        }
    }
    return finish(tunerd, generator, std::move(problems));
}

ScenarioResult kill_busy_worker_under_load(const TunerdProcess& tunerd, const LoadOptions& load,
                                           KillTarget target, std::chrono::milliseconds recover,
                                           std::chrono::milliseconds after) {
    LoadGenerator generator(load);
    generator.start();
    std::vector<std::string> problems;
    wait_for_responses(generator, 20, 10s);
    const auto [worker_pid, worker_id] = find_busy_worker(tunerd, 10s);
    if (worker_pid <= 0) {
        problems.push_back("no ready worker with requests in flight");
        return finish(tunerd, generator, std::move(problems));
    }
    pid_t victim = worker_pid;
    if (target == KillTarget::grandchild) {
        const auto children = child_pids(worker_pid);
        if (children.empty()) {
            problems.push_back("worker " + std::to_string(worker_id) + " (pid " +
                               std::to_string(worker_pid) + ") has no child process");
            return finish(tunerd, generator, std::move(problems));
        }
        victim = children.front();
    }
    if (::kill(victim, SIGKILL) != 0) {
        problems.push_back("kill -9 " + std::to_string(victim) + " failed");
        return finish(tunerd, generator, std::move(problems));
    }

    const auto deadline = std::chrono::steady_clock::now() + recover;
    bool recovered = false;
    while (!recovered && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(50ms);
        auto j = tunerd.admin_json("/workers");
        if (!j) continue;
        const bool full = (*j)["ready"] == (*j)["target"];
        if (target == KillTarget::worker) {
            recovered = full && !worker_listed(*j, victim);
        } else {
            // The master stays (tunerd need not notice) and has started a new child.
            const auto children = child_pids(worker_pid);
            recovered = full && worker_listed(*j, worker_pid) && !children.empty() &&
                        std::find(children.begin(), children.end(), victim) == children.end();
        }
    }
    if (!recovered) {
        auto j = tunerd.admin_json("/workers");
        problems.push_back("pool did not recover within " + std::to_string(recover.count()) +
                           " ms after kill -9 of pid " + std::to_string(victim) + ": " +
                           (j ? j->dump() : j.error().to_string()));
    }
    std::this_thread::sleep_for(after);
    return finish(tunerd, generator, std::move(problems));
}

}  // namespace tuner::test
