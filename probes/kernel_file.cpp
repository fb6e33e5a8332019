// Reading whole kernel files with open/read: no iostreams, one small buffer, errno kept.
#include "probes/kernel_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tuner::probes {
namespace {

bool means_absent(int err) {
    return err == ENOENT || err == ENOTDIR || err == ESRCH || err == EOPNOTSUPP;
}

Error errno_error(const std::string& path, const char* action, int err) {
    return make_error(path, std::string(action) + " failed: " + std::strerror(err));
}

}  // namespace

Result<std::optional<std::string>> read_optional_file(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        const int err = errno;
        if (means_absent(err)) return std::optional<std::string>{};
        return errno_error(path, "open", err);
    }
    // Kernel files report size 0, so read until EOF; most fit in the first 4 KiB.
    std::string content;
    std::size_t used = 0;
    content.resize(4096);
    while (true) {
        const ssize_t n = ::read(fd, content.data() + used, content.size() - used);
        if (n < 0) {
            const int err = errno;
            if (err == EINTR) continue;
            ::close(fd);
            if (means_absent(err)) return std::optional<std::string>{};
            return errno_error(path, "read", err);
        }
        if (n == 0) break;
        used += static_cast<std::size_t>(n);
        if (used == content.size()) content.resize(content.size() * 2);
    }
    ::close(fd);
    content.resize(used);
    return std::optional<std::string>{std::move(content)};
}

std::string join_path(std::string_view dir, std::string_view name) {
    std::string out(dir);
    if (!out.empty() && out.back() == '/' && !name.empty() && name.front() == '/') {
        out.pop_back();
    } else if ((out.empty() || out.back() != '/') && !name.empty() && name.front() != '/') {
        out.push_back('/');
    }
    out.append(name);
    return out;
}

}  // namespace tuner::probes
