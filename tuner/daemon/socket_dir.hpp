// Where the workers' Unix sockets live, made safe to put them in: whoever can write to that
// directory can replace a worker's socket and read the requests meant for it, so it is
// tunerd's own, owner-only directory, and a fallback under /tmp is unpredictable.
#pragma once

#include <cstdlib>
#include <functional>
#include <string>

#include "model/result.hpp"

namespace tuner {

struct SocketDirectory {
    std::string path;
    bool temporary = false;  // made by mkdtemp under the temp root: tunerd removes it at exit
};

// The first of these whose path leaves room for "/w<id>.sock" in a socket address (sun_path
// holds 108 bytes): $RUNTIME_DIRECTORY (systemd's RuntimeDirectory=, its first entry), then
// state_dir/run; both are created 0700 if missing, must be a directory (not a symbolic link)
// that tunerd's user owns, and are narrowed to 0700. Else a new directory that mkdtemp makes
// under `temp_root` (tunerd-XXXXXX: a random name, created 0700 in one step). Errors name the
// directory and the step that failed.
Result<SocketDirectory> prepare_socket_directory(
    const std::string& state_dir,
    const std::function<const char*(const char*)>& getenv_fn = std::getenv,
    const std::string& temp_root = "/tmp");

}  // namespace tuner
