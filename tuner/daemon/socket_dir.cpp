// The workers' socket directory (see socket_dir.hpp).
#include "tuner/daemon/socket_dir.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string_view>

namespace tuner {
namespace {

// The longest Unix socket path (sun_path is 108 bytes) leaves room for "/w<id>.sock".
constexpr std::size_t kMaxSocketDirLength = 90;

// Creates `path` 0700 if it is missing, then checks what is there through a descriptor (so a
// symbolic link swapped in cannot redirect the chmod): a directory tunerd's user owns, 0700.
Status make_owner_only_directory(const std::string& path) {
    if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
        return system_error(path, "cannot create the worker socket directory");
    }
    const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        const int open_errno = errno;
        struct stat link {};
        if ((open_errno == ELOOP || open_errno == ENOTDIR) && ::lstat(path.c_str(), &link) == 0 &&
            S_ISLNK(link.st_mode)) {
            return make_error(path,
                              "is a symbolic link; the worker socket directory must be a real "
                              "directory");
        }
        return system_error(path, "cannot open the worker socket directory", open_errno);
    }
    struct stat st {};
    Status status;
    if (::fstat(fd, &st) != 0) {
        status = system_error(path, "cannot inspect the worker socket directory");
    } else if (st.st_uid != ::geteuid()) {
        status = make_error(path, "is owned by uid " + std::to_string(st.st_uid) +
                                      ", not by tunerd's uid " + std::to_string(::geteuid()) +
                                      ": its owner could replace the workers' sockets");
    } else if ((st.st_mode & 07777) != 0700 && ::fchmod(fd, 0700) != 0) {
        status = system_error(path, "cannot make the worker socket directory owner-only (0700)");
    }
    ::close(fd);
    return status;
}

}  // namespace

Result<SocketDirectory> prepare_socket_directory(
    const std::string& state_dir, const std::function<const char*(const char*)>& getenv_fn,
    const std::string& temp_root) {
    std::string chosen;
    if (const char* runtime = getenv_fn("RUNTIME_DIRECTORY"); runtime && *runtime) {
        const std::string_view listed(runtime);
        const std::string first(listed.substr(0, listed.find(':')));
        if (!first.empty() && first.size() <= kMaxSocketDirLength) chosen = first;
    }
    if (chosen.empty() && state_dir.size() + 4 <= kMaxSocketDirLength) chosen = state_dir + "/run";
    if (!chosen.empty()) {
        if (auto made = make_owner_only_directory(chosen); !made) return made.error();
        return SocketDirectory{chosen, false};
    }
    // Too long for a socket address: a fresh directory whose name nobody can guess or take first.
    std::string name = temp_root + "/tunerd-XXXXXX";
    if (name.size() > kMaxSocketDirLength) {
        return make_error(temp_root, "too long a path for the worker socket directory");
    }
    if (::mkdtemp(name.data()) == nullptr) {
        return system_error(temp_root, "cannot create a private worker socket directory (mkdtemp)");
    }
    return SocketDirectory{name, true};
}

}  // namespace tuner
