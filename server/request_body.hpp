// A request body the front holds before a worker is asked for (request buffering, nginx's
// proxy_request_buffering): up to a threshold in memory, beyond it in an unnamed file of the
// spool directory (O_TMPFILE, or a file unlinked at once where the filesystem lacks it), so a
// client that uploads slowly holds a connection and a bounded amount of memory, never a worker.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "model/result.hpp"

namespace tuner::server {

class BufferedBody {
public:
    // `memory_limit`: bytes kept in memory; the body moves to a file in `spool_dir` past it.
    BufferedBody(std::size_t memory_limit, std::string spool_dir);
    ~BufferedBody();
    BufferedBody(const BufferedBody&) = delete;
    BufferedBody& operator=(const BufferedBody&) = delete;

    // Adds bytes at the end. An error (the spool file cannot be created or written: a full disk)
    // names the file system call; the body is then unusable.
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
};

// Opens an unnamed read-write file in `dir` (mode 0600): O_TMPFILE, else mkstemp and unlink.
Result<int> open_spool_file(const std::string& dir);

}  // namespace tuner::server
