// The cost of one probe cycle for tunerd plus 32 workers of 100 MB each: the every-cycle RSS
// path, the PSS refresh (smaps_rollup) separately, the two ways of finding children, and stat
// against status as the per-process RSS source.
// Results and the machine are recorded in docs/benchmarks.md ("Probes").
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <unordered_set>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

#include "probes/prober.hpp"

namespace {

using tuner::MiB;
using tuner::probes::ChildrenSource;

constexpr unsigned kWorkers = 32;
constexpr std::size_t kWorkerBytes = 100 * MiB;

// Real child processes, each with 100 MB resident, sleeping until killed.
class Workers {
public:
    Workers() {
        for (unsigned id = 0; id < kWorkers; ++id) {
            int ready[2];
            if (::pipe(ready) != 0) std::abort();
            const pid_t pid = ::fork();
            if (pid == 0) {
                ::prctl(PR_SET_PDEATHSIG, SIGKILL);
                ::close(ready[0]);
                void* p = ::mmap(nullptr, kWorkerBytes, PROT_READ | PROT_WRITE,
                                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (p == MAP_FAILED) ::_exit(1);
                auto* bytes = static_cast<volatile char*>(p);
                for (std::size_t i = 0; i < kWorkerBytes; i += 4096) bytes[i] = 1;
                (void)!::write(ready[1], "r", 1);
                for (;;) ::pause();
            }
            ::close(ready[1]);
            char c = 0;
            if (::read(ready[0], &c, 1) != 1) std::abort();
            ::close(ready[0]);
            workers_.emplace_back(id, pid);
        }
    }
    ~Workers() {
        for (const auto& [id, pid] : workers_) ::kill(pid, SIGKILL);
        for (const auto& [id, pid] : workers_) ::waitpid(pid, nullptr, 0);
    }
    [[nodiscard]] const std::vector<std::pair<unsigned, pid_t>>& list() const { return workers_; }

private:
    std::vector<std::pair<unsigned, pid_t>> workers_;
};

double processes_on_host() {
    double n = 0;
    for (const auto& e : std::filesystem::directory_iterator("/proc")) {
        const std::string name = e.path().filename().string();
        if (!name.empty() && name.find_first_not_of("0123456789") == std::string::npos) ++n;
    }
    return n;
}

// A whole Prober cycle. pss_every = 1: every cycle reads smaps_rollup; else only the first,
// which runs before timing starts.
void probe_cycle(benchmark::State& state, const Workers& workers, unsigned pss_every) {
    tuner::probes::Prober prober(tuner::probes::ProbeRoots{}, ::getpid(), pss_every);
    tuner::Snapshot snapshot;
    prober.sample(snapshot, workers.list());
    for (auto _ : state) {
        prober.sample(snapshot, workers.list());
        benchmark::DoNotOptimize(snapshot);
    }
    if (!snapshot.problems.empty()) state.SkipWithError(snapshot.problems.front().c_str());
    std::uint64_t rss = 0;
    for (const auto& [id, tree] : snapshot.worker_trees) rss += tree.rss_bytes;
    state.counters["worker_rss_MB"] = static_cast<double>(rss) / static_cast<double>(MiB);
    state.counters["host_processes"] = processes_on_host();
    state.SetLabel(to_string(prober.children_source()));
}

// Only the process trees (RSS path), with children found one way or the other.
void trees_only(benchmark::State& state, const Workers& workers, ChildrenSource source) {
    tuner::probes::ProcessTreeReader reader(
        "/proc", source, tuner::probes::clock_ticks_per_second(), tuner::probes::page_size_bytes());
    std::unordered_set<pid_t> worker_pids;
    for (const auto& [id, pid] : workers.list()) worker_pids.insert(pid);
    std::vector<std::string> problems;
    for (auto _ : state) {
        reader.begin_cycle();
        problems.clear();
        benchmark::DoNotOptimize(reader.sample(::getpid(), false, worker_pids, problems));
        for (const auto& [id, pid] : workers.list()) {
            benchmark::DoNotOptimize(reader.sample(pid, false, worker_pids, problems));
        }
    }
    if (!problems.empty()) state.SkipWithError(problems.front().c_str());
    state.SetLabel(to_string(source));
}

// One read per process of tunerd and its 32 workers: stat (what the cycle reads) against
// status (VmRSS, the same counter), to show what reading stat alone saves.
template <typename Read>
void per_process_read(benchmark::State& state, const Workers& workers, Read read) {
    std::vector<pid_t> pids{::getpid()};
    for (const auto& [id, pid] : workers.list()) pids.push_back(pid);
    for (auto _ : state) {
        for (pid_t pid : pids) benchmark::DoNotOptimize(read("/proc", pid));
    }
}

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    const Workers workers;
    const unsigned never = std::numeric_limits<unsigned>::max();
    benchmark::RegisterBenchmark("ProbeCycle/RssPath/32x100MB", probe_cycle, std::cref(workers),
                                 never)
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark("ProbeCycle/WithPssRefresh/32x100MB", probe_cycle,
                                 std::cref(workers), 1u)
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark("ProcessTrees/StatPpidScan", trees_only, std::cref(workers),
                                 ChildrenSource::stat_ppid_scan)
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark("ProcessTrees/TaskChildrenFiles", trees_only, std::cref(workers),
                                 ChildrenSource::task_children_files)
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark("PerProcessRead/stat/33", [&](benchmark::State& state) {
        per_process_read(state, workers, tuner::probes::read_proc_stat);
    })->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark("PerProcessRead/status/33", [&](benchmark::State& state) {
        per_process_read(state, workers, tuner::probes::read_status_rss_bytes);
    })->Unit(benchmark::kMicrosecond);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
