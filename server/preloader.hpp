// The preloading spawner's C++ side (workers.preload, issue 18): starting the Python preloader
// (python/tunerd_preload.py) with a control socket, and asking it for a worker. The preloader
// imports the WSGI app once; each worker is forked from it, reparented to tunerd (a child
// subreaper) and served by gunicorn on its own Unix socket, so the pool treats it as it treats a
// worker it exec'd: the same SpawnedProcess (pid = process group, stdout and stderr pipes).
//
// The control protocol: one JSON object per SOCK_SEQPACKET datagram of at most
// kPreloadMaxMessage bytes. Preloader -> tunerd once: {"ready": true, "pid": P} or
// {"ready": false, "error": "..."}. tunerd -> preloader: {"op": "spawn", "socket": PATH,
// "threads": N, "env": {...}} with the write ends of the worker's stdout and stderr passed by
// SCM_RIGHTS; answered {"ok": true, "pid": P} or {"ok": false, "error": "..."}.
#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/config.hpp"
#include "model/result.hpp"
#include "model/units.hpp"
#include "server/process.hpp"

namespace tuner::server {

inline constexpr std::size_t kPreloadMaxMessage = 65536;
// How long the I/O thread waits for the preloader to fork a worker: a fork of a large process
// takes milliseconds; a preloader that does not answer within this is killed and restarted.
inline constexpr auto kPreloadSpawnTimeout = std::chrono::seconds(1);
inline constexpr const char* kPreloaderScript = "tunerd_preload.py";

// ---- the protocol (pure) --------------------------------------------------------------------

std::string encode_spawn_request(const std::string& socket_path, unsigned threads,
                                 const std::map<std::string, std::string>& env);

struct PreloaderHello {
    bool ready = false;
    pid_t pid = -1;
    std::string error;  // when not ready: the import error
};
Result<PreloaderHello> parse_preloader_hello(std::string_view message);
// The worker's pid, or the preloader's refusal as an error.
Result<pid_t> parse_spawn_reply(std::string_view message);

// Where the preloader script is: beside the tunerd binary (the build tree), else
// <bindir>/../share/tunerd/ (an installed tunerd). std::nullopt when neither exists.
std::optional<std::string> find_preloader_script(const std::string& self_exe);

// python3 <script> --app module:app --server gunicorn
std::vector<std::string> preloader_argv(const PoolConfig& workers, const std::string& script);

// ---- the processes --------------------------------------------------------------------------

struct StartedPreloader {
    SpawnedProcess process;
    int control_fd = -1;  // tunerd's end of the control socket, close-on-exec, blocking
};
// Makes the control socket pair and spawns the preloader with its end as stdin. Also makes
// tunerd a child subreaper (PR_SET_CHILD_SUBREAPER), so the workers the preloader forks become
// tunerd's children.
Result<StartedPreloader> start_preloader(SpawnSpec spec);

// Non-blocking read of one message; std::nullopt when none is waiting. An error when the
// preloader closed its end or sent more than kPreloadMaxMessage.
Result<std::optional<std::string>> receive_control_message(int control_fd);

// Asks the preloader for a worker and waits at most `timeout` for its pid. Makes the worker's
// stdout and stderr pipes (tunerd keeps the read ends, non-blocking, close-on-exec). Synchronous:
// called on the I/O thread, like fork in spawn_process.
Result<SpawnedProcess> spawn_from_preloader(int control_fd, const std::string& request,
                                            Duration timeout);

}  // namespace tuner::server
