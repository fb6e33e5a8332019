// [access_log]: one line per request, in nginx's combined or common format or as JSON, written
// off the I/O threads. An exchange copies its fields (bounded) into a queue of bounded length
// and bytes; when it is full the entry is dropped and counted, never waited for. One writer
// thread formats the entries and appends them to the file (O_APPEND), at least once a second
// and whenever the queue goes idle; reopen() (SIGUSR1, logrotate's postrotate) makes it open
// the path again. A slow or full disk holds only that thread: write errors are counted and
// logged at most once a minute.
//
// Every byte that came from the client is escaped as nginx escapes log variables
// (ngx_http_log_escape: \xHH) where it is not valid UTF-8, a control character, `"` or `\`; in
// JSON, bytes that are not valid UTF-8 and `\` are written as \xHH text and the rest is escaped
// by nlohmann::json, so a line is always valid JSON.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "model/config.hpp"
#include "model/log_throttle.hpp"

namespace tuner::server {

// Longest client-supplied fields kept, in bytes before escaping; longer ones end in a marker.
inline constexpr std::size_t kMaxLoggedTarget = 2048;
inline constexpr std::size_t kMaxLoggedHeader = 1024;  // Referer, User-Agent
inline constexpr std::size_t kMaxLoggedShort = 64;     // method, client, cache status
inline constexpr std::string_view kTruncatedMarker = "...[truncated]";

// One request as the access log records it.
struct AccessEntry {
    std::chrono::system_clock::time_point time{};  // when the response ended
    std::string client;  // the client's address (behind a trusted proxy, the forwarded one)
    std::string method;  // "-" when the request line did not parse
    std::string target;  // path and query as sent
    unsigned version = 11;
    int status = 0;           // 0: the client went away before the answer
    std::uint64_t bytes = 0;  // bytes sent to the client, header included
    std::string referer;
    std::string user_agent;
    std::optional<unsigned> worker;  // the worker that answered, if one did
    std::uint64_t queue_usec = 0;
    std::uint64_t service_usec = 0;
    std::uint64_t total_usec = 0;
    std::string cache = "-";  // the micro-cache's verdict (HIT, MISS, ...), "-" when none

    // The field sizes as kept in the queue (its byte bound).
    [[nodiscard]] std::size_t weight() const;
};

// `bytes` cut at `max` (the cut marked), as the entry keeps it.
std::string clip(std::string_view bytes, std::size_t max);

// nginx's escaping for the text formats: `"`, `\`, control characters and bytes that are not
// valid UTF-8 as \xHH; valid UTF-8 is kept.
std::string escape_text(std::string_view bytes);
// For JSON: bytes that are not valid UTF-8 and `\` as \xHH; the result is valid UTF-8.
std::string escape_for_json(std::string_view bytes);

// One line, "\n" included.
std::string format_access_line(const AccessEntry& entry, AccessLogFormat format);

class AccessLog {
public:
    struct Limits {
        std::size_t max_entries = 65536;
        std::size_t max_bytes = 16 * 1024 * 1024;
        std::chrono::milliseconds flush_every{1000};
    };
    struct Stats {
        std::uint64_t written = 0;  // lines appended
        std::uint64_t dropped = 0;  // lines dropped: the queue was full
        std::uint64_t errors = 0;   // failed opens and writes
        std::uint64_t reopened = 0;
    };

    explicit AccessLog(const AccessLogConfig& config, Limits limits);
    explicit AccessLog(const AccessLogConfig& config) : AccessLog(config, Limits{}) {}
    ~AccessLog();  // writes what is queued, then stops the writer
    AccessLog(const AccessLog&) = delete;
    AccessLog& operator=(const AccessLog&) = delete;

    // A reload: enabled, format and path (a new path is opened at the next write).
    void configure(const AccessLogConfig& config);
    [[nodiscard]] bool enabled() const { return enabled_.load(std::memory_order_relaxed); }
    // Queues one entry (any thread, never blocks on the disk); dropped and counted when full.
    void submit(AccessEntry entry);
    // Opens the path again before the next write (SIGUSR1 after logrotate moved the file).
    void reopen();
    // Waits until what was submitted so far is written (tests, shutdown); false on timeout.
    bool flush(std::chrono::milliseconds timeout);
    [[nodiscard]] Stats stats() const;

private:
    void start_writer();  // under mutex_
    void run();
    void write_batch(std::deque<AccessEntry>& batch, const AccessLogConfig& config);
    void open_file(const std::string& path);
    void note_error(const std::string& what, int error);

    const Limits limits_;
    std::atomic<bool> enabled_{false};
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::condition_variable written_;  // a batch went out
    AccessLogConfig config_;
    std::deque<AccessEntry> queue_;
    std::size_t queued_bytes_ = 0;
    std::uint64_t submitted_ = 0;  // entries accepted into the queue
    std::uint64_t settled_ = 0;    // of those, written or failed
    bool reopen_ = false;
    bool flush_requested_ = false;
    bool stop_ = false;
    Stats stats_;
    std::thread writer_;
    // Writer thread only:
    int fd_ = -1;
    std::string open_path_;
    LogThrottle error_log_;
    std::uint64_t errors_since_log_ = 0;
    std::uint64_t written_lines_ = 0;  // since the last batch, moved into stats_ under the lock
    std::uint64_t error_count_ = 0;
    std::uint64_t reopened_ = 0;
};

}  // namespace tuner::server
