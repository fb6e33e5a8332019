// Process-tree sampling from /proc (see process_tree.hpp).
#include "probes/process_tree.hpp"

#include <unistd.h>

#include <cctype>

#include <dirent.h>

#include "probes/kernel_file.hpp"
#include "probes/text_parse.hpp"

namespace tuner::probes {
namespace {

std::string pid_file(const std::string& proc_root, pid_t pid, std::string_view name) {
    std::string path = join_path(proc_root, std::to_string(pid));
    path += '/';
    path += name;
    return path;
}

std::optional<pid_t> as_pid(std::string_view name) {
    if (name.empty() || name.size() > 9) return std::nullopt;
    pid_t pid = 0;
    for (char c : name) {
        if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
        pid = pid * 10 + (c - '0');
    }
    return pid;
}

// The numeric entries of a directory (/proc or /proc/<pid>/task); nullopt when it is gone.
std::optional<std::vector<pid_t>> numeric_entries(const std::string& dir) {
    DIR* d = ::opendir(dir.c_str());
    if (!d) return std::nullopt;
    std::vector<pid_t> out;
    while (const dirent* e = ::readdir(d)) {
        if (auto pid = as_pid(e->d_name)) out.push_back(*pid);
    }
    ::closedir(d);
    return out;
}

}  // namespace

Result<ProcStat> parse_proc_stat(std::string_view content, const std::string& where) {
    const std::size_t close = content.rfind(')');
    const auto bad = [&] {
        return make_error(where, "not a /proc/<pid>/stat line: " + quote(content));
    };
    if (close == std::string_view::npos) return bad();
    // After ')' field 3 (state) is fields[0], so field N is fields[N - 3].
    std::string_view rest = content.substr(close + 1);
    std::string_view fields[22];
    for (auto& field : fields) {
        rest = trim(rest);
        if (rest.empty()) return bad();
        const std::size_t end = rest.find(' ');
        field = rest.substr(0, end);
        rest.remove_prefix(end == std::string_view::npos ? rest.size() : end);
    }
    auto ppid = parse_u64(fields[4 - 3], where);
    auto utime = parse_u64(fields[14 - 3], where);
    auto stime = parse_u64(fields[15 - 3], where);
    auto threads = parse_u64(fields[20 - 3], where);
    auto rss = parse_u64(fields[24 - 3], where);
    if (!ppid || !utime || !stime || !threads || !rss) return bad();
    return ProcStat{static_cast<pid_t>(*ppid), *utime, *stime, static_cast<unsigned>(*threads),
                    *rss};
}

Result<std::optional<ProcStat>> read_proc_stat(const std::string& proc_root, pid_t pid) {
    return read_parsed<ProcStat>(pid_file(proc_root, pid, "stat"), parse_proc_stat);
}

Result<std::optional<std::uint64_t>> read_status_rss_bytes(const std::string& proc_root,
                                                           pid_t pid) {
    return read_parsed<std::uint64_t>(
        pid_file(proc_root, pid, "status"),
        [](std::string_view content, const std::string& path) -> Result<std::uint64_t> {
            auto rss = find_kb_field_bytes(content, "VmRSS", path);
            if (!rss) return rss.error();
            return rss->value_or(0);
        });
}

Result<SmapsRollup> parse_smaps_rollup(std::string_view content, const std::string& where) {
    auto pss = find_kb_field_bytes(content, "Pss", where);
    if (!pss) return pss.error();
    // Kernel threads have an empty smaps_rollup: nothing mapped, nothing resident.
    if (!pss->has_value() && !trim(content).empty()) {
        return make_error(where, "no Pss line in " + quote(content));
    }
    auto clean = find_kb_field_bytes(content, "Private_Clean", where);
    if (!clean) return clean.error();
    auto dirty = find_kb_field_bytes(content, "Private_Dirty", where);
    if (!dirty) return dirty.error();
    return SmapsRollup{pss->value_or(0), clean->value_or(0) + dirty->value_or(0)};
}

Result<std::optional<SmapsRollup>> read_smaps_rollup(const std::string& proc_root, pid_t pid) {
    return read_parsed<SmapsRollup>(pid_file(proc_root, pid, "smaps_rollup"), parse_smaps_rollup);
}

Result<std::uint64_t> parse_schedstat_wait_ns(std::string_view content, const std::string& where) {
    // "<on-cpu ns> <run_delay ns> <timeslices>"
    const auto first = content.find_first_of(" \t");
    if (first == std::string_view::npos)
        return make_error(where, "expected 3 fields: " + quote(content));
    std::string_view rest = trim(content.substr(first));
    const auto end = rest.find_first_of(" \t\n");
    return parse_u64(rest.substr(0, end), where);
}

Result<std::optional<std::uint64_t>> read_tasks_cpu_wait_ns(const std::string& proc_root, pid_t pid,
                                                            unsigned threads) {
    const std::string task_dir = pid_file(proc_root, pid, "task");
    std::vector<pid_t> tids{pid};
    if (threads != 1) {
        auto listed = numeric_entries(task_dir);
        if (!listed) return std::optional<std::uint64_t>{};
        tids = std::move(*listed);
    }
    std::uint64_t sum = 0;
    bool any = false;
    for (pid_t tid : tids) {
        const std::string path = join_path(task_dir, std::to_string(tid) + "/schedstat");
        auto content = read_optional_file(path);
        if (!content) return content.error();
        if (!content->has_value()) continue;  // the thread exited, or no schedstat at all
        auto wait = parse_schedstat_wait_ns(**content, path);
        if (!wait) return wait.error();
        sum += *wait;
        any = true;
    }
    if (!any) return std::optional<std::uint64_t>{};
    return std::optional<std::uint64_t>{sum};
}

Result<std::optional<std::vector<pid_t>>> read_task_children(const std::string& proc_root,
                                                             pid_t pid, unsigned threads) {
    const std::string task_dir = pid_file(proc_root, pid, "task");
    std::optional<std::vector<pid_t>> tids;
    if (threads == 1) {
        tids = std::vector<pid_t>{pid};
    } else {
        tids = numeric_entries(task_dir);
        if (!tids) return std::optional<std::vector<pid_t>>{};
    }
    std::vector<pid_t> children;
    bool any_thread = false;
    for (pid_t tid : *tids) {
        const std::string path = join_path(task_dir, std::to_string(tid) + "/children");
        auto content = read_optional_file(path);
        if (!content) return content.error();
        if (!content->has_value()) continue;  // the thread exited meanwhile
        any_thread = true;
        std::string_view rest = **content;
        while (!(rest = trim(rest)).empty()) {
            const std::size_t end = rest.find(' ');
            auto child = parse_u64(rest.substr(0, end), path);
            if (!child) return make_error(path, "not a list of pids: " + quote(**content));
            children.push_back(static_cast<pid_t>(*child));
            rest.remove_prefix(end == std::string_view::npos ? rest.size() : end);
        }
    }
    if (!any_thread && threads == 1) return std::optional<std::vector<pid_t>>{};
    return std::optional<std::vector<pid_t>>{std::move(children)};
}

const char* to_string(ChildrenSource source) {
    return source == ChildrenSource::task_children_files ? "task_children_files" : "stat_ppid_scan";
}

ChildrenSource detect_children_source(const std::string& proc_root, pid_t pid) {
    auto probe =
        read_optional_file(pid_file(proc_root, pid, "task/" + std::to_string(pid) + "/children"));
    return probe && probe->has_value() ? ChildrenSource::task_children_files
                                       : ChildrenSource::stat_ppid_scan;
}

double clock_ticks_per_second() {
    const long ticks = ::sysconf(_SC_CLK_TCK);
    return ticks > 0 ? static_cast<double>(ticks) : 100.0;
}

std::uint64_t page_size_bytes() {
    const long size = ::sysconf(_SC_PAGESIZE);
    return size > 0 ? static_cast<std::uint64_t>(size) : 4096;
}

ProcessTreeReader::ProcessTreeReader(std::string proc_root, ChildrenSource source,
                                     double ticks_per_second, std::uint64_t page_size_bytes)
    : proc_root_(std::move(proc_root)),
      source_(source),
      ticks_per_second_(ticks_per_second),
      page_size_bytes_(page_size_bytes) {}

void ProcessTreeReader::begin_cycle() {
    scanned_ = false;
    table_.clear();
    children_by_ppid_.clear();
}

void ProcessTreeReader::scan_process_table(std::vector<std::string>& problems) {
    scanned_ = true;
    const auto pids = numeric_entries(proc_root_);
    if (!pids) {
        problems.push_back(proc_root_ + ": cannot list processes");
        return;
    }
    for (pid_t pid : *pids) {
        auto stat = read_proc_stat(proc_root_, pid);
        if (!stat) {
            problems.push_back(stat.error().to_string());
            continue;
        }
        if (!stat->has_value()) continue;  // exited since the listing
        table_.emplace(pid, **stat);
        children_by_ppid_[(*stat)->ppid].push_back(pid);
    }
}

Result<std::optional<ProcStat>> ProcessTreeReader::stat_of(pid_t pid) {
    if (source_ == ChildrenSource::stat_ppid_scan) {
        const auto it = table_.find(pid);
        if (it != table_.end()) return std::optional<ProcStat>{it->second};
    }
    return read_proc_stat(proc_root_, pid);
}

std::vector<pid_t> ProcessTreeReader::children_of(pid_t pid, unsigned threads,
                                                  std::vector<std::string>& problems) {
    if (source_ == ChildrenSource::stat_ppid_scan) {
        const auto it = children_by_ppid_.find(pid);
        return it == children_by_ppid_.end() ? std::vector<pid_t>{} : it->second;
    }
    auto children = read_task_children(proc_root_, pid, threads);
    if (!children) {
        problems.push_back(children.error().to_string());
        return {};
    }
    return children->value_or(std::vector<pid_t>{});
}

ProcessTreeSample ProcessTreeReader::sample(pid_t root, bool with_pss,
                                            const std::unordered_set<pid_t>& stop_at,
                                            std::vector<std::string>& problems) {
    if (source_ == ChildrenSource::stat_ppid_scan && !scanned_) scan_process_table(problems);
    ProcessTreeSample tree;
    tree.pid = root;
    std::uint64_t pss_sum = 0;
    std::uint64_t private_sum = 0;
    bool pss_complete = with_pss;
    std::uint64_t cpu_ticks = 0;
    std::uint64_t cpu_wait_ns = 0;
    bool cpu_wait_known = true;  // until the root has no schedstat (an old or a stripped kernel)
    std::unordered_set<pid_t> seen{root};
    std::vector<pid_t> pending{root};
    const auto note = [&](const Error& e) { problems.push_back(e.to_string()); };
    while (!pending.empty()) {
        const pid_t pid = pending.back();
        pending.pop_back();
        auto stat = stat_of(pid);
        if (!stat) note(stat.error());
        if (!stat || !stat->has_value()) continue;  // gone: skipped, not an error
        if (with_pss) {
            auto rollup = read_smaps_rollup(proc_root_, pid);
            if (!rollup) note(rollup.error());
            if (rollup && rollup->has_value()) {
                pss_sum += (*rollup)->pss_bytes;
                private_sum += (*rollup)->private_bytes;
            } else {
                pss_complete = false;
            }
        }
        ++tree.processes;
        tree.rss_bytes += (*stat)->rss_pages * page_size_bytes_;
        cpu_ticks += (*stat)->utime_ticks + (*stat)->stime_ticks;
        if (cpu_wait_known) {
            auto wait = read_tasks_cpu_wait_ns(proc_root_, pid, (*stat)->threads);
            if (!wait) note(wait.error());
            if (wait && wait->has_value()) {
                cpu_wait_ns += **wait;
            } else if (pid == root) {
                cpu_wait_known = false;  // no schedstat (or the root vanished): not a partial sum
            }
        }
        for (pid_t child : children_of(pid, (*stat)->threads, problems)) {
            if (!stop_at.contains(child) && seen.insert(child).second) pending.push_back(child);
        }
    }
    if (pss_complete && tree.processes > 0) {
        tree.pss_bytes = pss_sum;
        tree.private_bytes = private_sum;
    }
    tree.cpu_seconds = static_cast<double>(cpu_ticks) / ticks_per_second_;
    if (cpu_wait_known && tree.processes > 0) tree.cpu_wait_seconds = cpu_wait_ns / 1e9;
    return tree;
}

}  // namespace tuner::probes
