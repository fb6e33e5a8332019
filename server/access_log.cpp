// [access_log] (see access_log.hpp).
#include "server/access_log.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

#include <nlohmann/json.hpp>
#include <pthread.h>
#include <spdlog/spdlog.h>

#include "model/log_text.hpp"

namespace tuner::server {

namespace {

void append_hex(std::string& out, unsigned char c) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    out += "\\x";
    out += kHex[c >> 4];
    out += kHex[c & 0xF];
}

// Escapes `bytes`; `also(c)` says which ASCII bytes are escaped besides invalid UTF-8.
template <typename Also>
std::string escape(std::string_view bytes, Also also) {
    std::string out;
    out.reserve(bytes.size());
    for (std::size_t i = 0; i < bytes.size();) {
        const auto c = static_cast<unsigned char>(bytes[i]);
        const std::size_t n = utf8_sequence_length(bytes, i);
        if (n == 0 || (n == 1 && also(c))) {
            append_hex(out, c);
            ++i;
            continue;
        }
        out.append(bytes.substr(i, n));
        i += n;
    }
    return out;
}

// A field as the text formats write it: "-" when empty, as nginx writes an unset variable.
std::string text_field(std::string_view bytes) {
    return bytes.empty() ? std::string("-") : escape_text(bytes);
}

std::string protocol(unsigned version) {
    return "HTTP/" + std::to_string(version / 10) + "." + std::to_string(version % 10);
}

std::string seconds(std::uint64_t usec) {
    char text[32];
    std::snprintf(text, sizeof text, "%.3f", static_cast<double>(usec) / 1e6);
    return text;
}

}  // namespace

std::size_t AccessEntry::weight() const {
    return sizeof(AccessEntry) + client.size() + method.size() + target.size() + referer.size() +
           user_agent.size() + cache.size();
}

std::string clip(std::string_view bytes, std::size_t max) {
    if (bytes.size() <= max) return std::string(bytes);
    return std::string(bytes.substr(0, max)) + std::string(kTruncatedMarker);
}

std::string escape_text(std::string_view bytes) {
    return escape(bytes,
                  [](unsigned char c) { return c < 0x20 || c == 0x7F || c == '"' || c == '\\'; });
}

std::string escape_for_json(std::string_view bytes) {
    return escape(bytes, [](unsigned char c) { return c == '\\'; });
}

std::string format_access_line(const AccessEntry& e, AccessLogFormat format) {
    const std::time_t t = std::chrono::system_clock::to_time_t(e.time);
    struct tm tm {};
    if (format == AccessLogFormat::json) {
        ::gmtime_r(&t, &tm);
        const auto ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(e.time.time_since_epoch())
                .count() %
            1000;
        char time[80];
        std::snprintf(time, sizeof time, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                      tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                      static_cast<int>(ms));
        nlohmann::json line = {
            {"time", time},
            {"client", escape_for_json(e.client)},
            {"method", escape_for_json(e.method)},
            {"target", escape_for_json(e.target)},
            {"protocol", protocol(e.version)},
            {"status", e.status},
            {"bytes", e.bytes},
            {"referer", escape_for_json(e.referer)},
            {"user_agent", escape_for_json(e.user_agent)},
            {"worker", e.worker ? nlohmann::json(*e.worker) : nlohmann::json(nullptr)},
            {"queue_wait_ms", static_cast<double>(e.queue_usec) / 1000.0},
            {"service_ms", static_cast<double>(e.service_usec) / 1000.0},
            {"total_ms", static_cast<double>(e.total_usec) / 1000.0},
            {"cache", escape_for_json(e.cache)},
        };
        // Escaped above, the strings are valid UTF-8; replace is a second guard, never a throw.
        return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    }
    // nginx's $time_local: [07/Dec/2026:11:24:52 +0000]
    ::localtime_r(&t, &tm);
    char time[48];
    std::strftime(time, sizeof time, "%d/%b/%Y:%H:%M:%S %z", &tm);
    // $remote_addr - $remote_user [$time_local] "$request" $status $bytes_sent
    std::string line = text_field(e.client) + " - - [" + time + "] \"" + text_field(e.method) +
                       " " + text_field(e.target) + " " + protocol(e.version) + "\" " +
                       std::to_string(e.status) + " " + std::to_string(e.bytes);
    if (format == AccessLogFormat::combined) {
        // "$http_referer" "$http_user_agent", then tunerd's own fields as nginx custom ones.
        line += " \"" + text_field(e.referer) + "\" \"" + text_field(e.user_agent) + "\"";
        line += " worker=" + (e.worker ? std::to_string(*e.worker) : std::string("-"));
        line += " queue=" + seconds(e.queue_usec);
        line += " service=" + seconds(e.service_usec);
        line += " total=" + seconds(e.total_usec);
        line += " cache=" + text_field(e.cache);
    }
    return line + "\n";
}

// ---- the writer ------------------------------------------------------------------------------

AccessLog::AccessLog(const AccessLogConfig& config, Limits limits) : limits_(limits) {
    configure(config);
}

AccessLog::~AccessLog() {
    {
        std::lock_guard lock(mutex_);
        stop_ = true;
    }
    wake_.notify_all();
    if (writer_.joinable()) writer_.join();
    if (fd_ > 2) ::close(fd_);
}

void AccessLog::configure(const AccessLogConfig& config) {
    std::lock_guard lock(mutex_);
    config_ = config;
    enabled_ = config.enabled;
    if (config.enabled) start_writer();
}

void AccessLog::start_writer() {
    if (writer_.joinable()) return;
    // The process's signals are for the main thread's signal_set: a writer started by a reload
    // (on the main thread, signals unblocked) must not take them.
    sigset_t all, previous;
    sigfillset(&all);
    ::pthread_sigmask(SIG_BLOCK, &all, &previous);
    writer_ = std::thread([this] {
        try {
            run();
        } catch (const std::exception& e) {
            spdlog::critical("event=access_log_thread_failed error=\"{}\"", e.what());
        } catch (...) {
            spdlog::critical("event=access_log_thread_failed");
        }
    });
    ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

void AccessLog::submit(AccessEntry entry) {
    const std::size_t weight = entry.weight();
    std::size_t queued;
    {
        std::lock_guard lock(mutex_);
        if (!config_.enabled) return;
        if (queue_.size() >= limits_.max_entries || queued_bytes_ + weight > limits_.max_bytes) {
            ++stats_.dropped;
            return;
        }
        queued_bytes_ += weight;
        queue_.push_back(std::move(entry));
        ++submitted_;
        queued = queue_.size();
    }
    // The writer wakes by itself within flush_every; a queue growing past a quarter of its
    // bound wakes it early.
    if (queued == limits_.max_entries / 4 + 1) wake_.notify_one();
}

void AccessLog::reopen() {
    {
        std::lock_guard lock(mutex_);
        reopen_ = true;
    }
    wake_.notify_one();
}

bool AccessLog::flush(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    const std::uint64_t target = submitted_;
    if (settled_ >= target) return true;
    flush_requested_ = true;
    wake_.notify_one();
    return written_.wait_for(lock, timeout, [&] { return settled_ >= target; });
}

AccessLog::Stats AccessLog::stats() const {
    std::lock_guard lock(mutex_);
    return stats_;
}

void AccessLog::run() {
    std::unique_lock lock(mutex_);
    for (;;) {
        wake_.wait_for(lock, limits_.flush_every, [&] {
            return stop_ || reopen_ || flush_requested_ || queue_.size() > limits_.max_entries / 4;
        });
        flush_requested_ = false;
        std::deque<AccessEntry> batch;
        batch.swap(queue_);
        queued_bytes_ = 0;
        const bool reopen = std::exchange(reopen_, false);
        const AccessLogConfig config = config_;
        const bool stop = stop_;
        lock.unlock();
        // Opened at the first line, again after a reopen or a reload that changed the path.
        if (reopen || (fd_ >= 0 && config.path != open_path_) || (fd_ < 0 && !batch.empty())) {
            if (reopen) ++reopened_;
            open_file(config.path);
        }
        if (!batch.empty()) write_batch(batch, config);
        lock.lock();
        stats_.reopened += std::exchange(reopened_, 0);
        stats_.written += std::exchange(written_lines_, 0);
        stats_.errors += std::exchange(error_count_, 0);
        settled_ += batch.size();
        written_.notify_all();
        if (stop && queue_.empty()) return;
    }
}

void AccessLog::open_file(const std::string& path) {
    if (fd_ > 2) ::close(fd_);
    fd_ = -1;
    open_path_ = path;
    if (path == "-") {
        fd_ = STDERR_FILENO;
        return;
    }
    int fd;
    do {
        fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        note_error("open " + path, errno);
        return;
    }
    fd_ = fd;
}

void AccessLog::write_batch(std::deque<AccessEntry>& batch, const AccessLogConfig& config) {
    // Formatted and written in pieces of about 64 KiB: O_APPEND, whole lines per write.
    std::string buffer;
    buffer.reserve(64 * 1024);
    std::size_t lines = 0;
    auto write_out = [&]() {
        if (buffer.empty()) return;
        if (fd_ < 0) {
            ++error_count_;  // no file: the lines are lost (the open failure was logged)
            buffer.clear();
            lines = 0;
            return;
        }
        std::size_t done = 0;
        while (done < buffer.size()) {
            const ssize_t n = ::write(fd_, buffer.data() + done, buffer.size() - done);
            if (n > 0) {
                done += static_cast<std::size_t>(n);
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            note_error("write " + open_path_, n < 0 ? errno : EIO);
            buffer.clear();
            lines = 0;
            return;
        }
        written_lines_ += lines;
        buffer.clear();
        lines = 0;
    };
    for (const auto& entry : batch) {
        buffer += format_access_line(entry, config.format);
        ++lines;
        if (buffer.size() >= 60 * 1024) write_out();
    }
    write_out();
}

void AccessLog::note_error(const std::string& what, int error) {
    ++error_count_;
    ++errors_since_log_;
    if (!error_log_.due()) return;
    spdlog::error(
        "event=access_log_failed what=\"{}\" error=\"{}\" errors={} (logged at most once a minute)",
        what, std::strerror(error), errors_since_log_);
    errors_since_log_ = 0;
}

}  // namespace tuner::server
