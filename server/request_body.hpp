// A request body the front holds before a worker is asked for (request buffering, nginx's
// proxy_request_buffering): up to a threshold in memory, beyond it in an unnamed file of the
// spool directory (O_TMPFILE, or a file unlinked at once where the filesystem lacks it), so a
// client that uploads slowly holds a connection and a bounded amount of memory, never a worker.
#pragma once

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "model/log_throttle.hpp"
#include "model/result.hpp"

namespace tuner::server {

// The bytes of request bodies held in spool files at once, over all connections and I/O threads
// (server.spool_max_size): a body that would take the total past the cap is refused, so clients
// uploading at once cannot fill the disk the decision log also lives on.
class SpoolBudget {
public:
    // Takes `n` bytes if the total stays within `cap`; false (nothing taken) if it would not.
    bool take(std::uint64_t n, std::uint64_t cap);
    void give_back(std::uint64_t n) { used_.fetch_sub(n, std::memory_order_relaxed); }
    // Whether `n` more bytes would fit now (advisory: a later take() decides).
    [[nodiscard]] bool fits(std::uint64_t n, std::uint64_t cap) const {
        return n <= cap - std::min(cap, used());
    }
    [[nodiscard]] std::uint64_t used() const { return used_.load(std::memory_order_relaxed); }
    // Bodies refused because the spool was full.
    [[nodiscard]] std::uint64_t refused() const { return refused_.load(std::memory_order_relaxed); }
    void count_refusal() { refused_.fetch_add(1, std::memory_order_relaxed); }
    // When a refusal is worth a log line: at most once a minute, so that a flood of uploads
    // cannot flood the log.
    LogThrottle warnings;

private:
    std::atomic<std::uint64_t> used_{0};
    std::atomic<std::uint64_t> refused_{0};
};

class BufferedBody {
public:
    // `memory_limit`: bytes kept in memory; the body moves to a file in `spool_dir` past it.
    // `budget` (may be null: no cap): the spool bytes it writes are taken from it, up to `cap`
    // in all, and given back when the body is destroyed.
    BufferedBody(std::size_t memory_limit, std::string spool_dir, SpoolBudget* budget = nullptr,
                 std::uint64_t cap = UINT64_MAX);
    ~BufferedBody();
    BufferedBody(const BufferedBody&) = delete;
    BufferedBody& operator=(const BufferedBody&) = delete;

    // Adds bytes at the end. An error (the spool file cannot be created or written: a full disk)
    // names the file system call; the body is then unusable. Past the budget's cap the error's
    // code is EDQUOT (kSpoolFull) and nothing is written.
    Status append(std::span<const char> bytes);

    [[nodiscard]] std::uint64_t size() const { return size_; }
    [[nodiscard]] bool spooled() const { return fd_ >= 0; }
    // The whole body while it is in memory (!spooled()).
    [[nodiscard]] std::span<const char> memory() const { return {memory_.data(), memory_.size()}; }
    // Reads up to out.size() bytes at `offset` of a spooled body; 0 at the end.
    Result<std::size_t> read_at(std::uint64_t offset, std::span<char> out) const;

private:
    Status spool();

    std::size_t memory_limit_;
    std::string spool_dir_;
    std::string memory_;
    int fd_ = -1;
    std::uint64_t size_ = 0;
    SpoolBudget* budget_;
    std::uint64_t cap_;
    std::uint64_t taken_ = 0;  // bytes of budget_ this body holds
};

// The error code of a body refused because the spool budget is spent.
inline constexpr int kSpoolFull = EDQUOT;

// Opens an unnamed read-write file in `dir` (mode 0600): O_TMPFILE, else mkstemp and unlink.
Result<int> open_spool_file(const std::string& dir);

}  // namespace tuner::server
