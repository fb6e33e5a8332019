// A request body held by the front (see request_body.hpp).
#include "server/request_body.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

namespace tuner::server {

namespace {

Error sys_error(std::string what, const std::string& where) {
    const int code = errno;
    return Error{std::move(what) + ": " + std::strerror(code), where, code};
}

}  // namespace

Result<int> open_spool_file(const std::string& dir) {
    const int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0) return fd;
    if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
        return sys_error("cannot create a spool file", dir);
    // A filesystem without O_TMPFILE: a named file, unlinked at once.
    std::string path = dir + "/body-XXXXXX";
    const int named = ::mkostemp(path.data(), O_CLOEXEC);
    if (named < 0) return sys_error("cannot create a spool file", dir);
    ::unlink(path.c_str());
    return named;
}

bool SpoolBudget::take(std::uint64_t n, std::uint64_t cap) {
    std::uint64_t used = used_.load(std::memory_order_relaxed);
    do {
        if (used > cap || n > cap - used) return false;
    } while (!used_.compare_exchange_weak(used, used + n, std::memory_order_relaxed));
    return true;
}

BufferedBody::BufferedBody(std::size_t memory_limit, std::string spool_dir, SpoolBudget* budget,
                           std::uint64_t cap)
    : memory_limit_(memory_limit), spool_dir_(std::move(spool_dir)), budget_(budget), cap_(cap) {}

BufferedBody::~BufferedBody() {
    if (fd_ >= 0) ::close(fd_);
    if (budget_ && taken_) budget_->give_back(taken_);
}

Status BufferedBody::spool() {
    auto fd = open_spool_file(spool_dir_);
    if (!fd) return fd.error();
    fd_ = *fd;
    std::string held;
    held.swap(memory_);
    if (!held.empty()) {
        size_ = 0;
        return append({held.data(), held.size()});
    }
    return {};
}

Status BufferedBody::append(std::span<const char> bytes) {
    if (fd_ < 0 && memory_.size() + bytes.size() > memory_limit_) {
        if (auto st = spool(); !st) return st;
    }
    if (fd_ < 0) {
        memory_.append(bytes.data(), bytes.size());
        size_ += bytes.size();
        return {};
    }
    if (budget_) {
        if (!budget_->take(bytes.size(), cap_)) {
            budget_->count_refusal();
            return Error{"the spool is full: " + std::to_string(budget_->used()) +
                             " bytes of request bodies are held on disk (server.spool_max_size)",
                         spool_dir_, kSpoolFull};
        }
        taken_ += bytes.size();
    }
    while (!bytes.empty()) {
        const ssize_t n = ::pwrite(fd_, bytes.data(), bytes.size(), static_cast<off_t>(size_));
        if (n < 0) {
            if (errno == EINTR) continue;
            return sys_error("cannot write the spool file", spool_dir_);
        }
        size_ += static_cast<std::uint64_t>(n);
        bytes = bytes.subspan(static_cast<std::size_t>(n));
    }
    return {};
}

Result<std::size_t> BufferedBody::read_at(std::uint64_t offset, std::span<char> out) const {
    for (;;) {
        const ssize_t n = ::pread(fd_, out.data(), out.size(), static_cast<off_t>(offset));
        if (n >= 0) return static_cast<std::size_t>(n);
        if (errno != EINTR) return sys_error("cannot read the spool file", spool_dir_);
    }
}

}  // namespace tuner::server
