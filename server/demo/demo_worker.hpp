// The built-in demo app: what `workers.command = "builtin:demo"` runs. tunerd execs its own
// binary with the hidden `demo-worker` subcommand; the worker serves HTTP/1.1 on a Unix socket
// (or a TCP port), `threads` requests at once, each burning cpu_ms of CPU and waiting io_ms,
// while the process holds rss_mb of resident memory: a stand-in for a Python web worker.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "model/result.hpp"

namespace tuner::demo {

struct DemoOptions {
    std::string socket_path;            // listen here (Unix socket) ...
    std::optional<std::uint16_t> port;  // ... or on 127.0.0.1:port
    unsigned threads = 1;
    unsigned cpu_ms = 5;
    unsigned io_ms = 50;
    unsigned rss_mb = 20;
    unsigned worker_id = 0;
    // The APP_VERSION environment variable (workers.env), sent back as X-App-Version on every
    // response: what a deploy changes, so a rolling restart can be seen to take effect.
    std::string app_version;
};

// What one request may ask of the demo app, whoever sends it (it serves the public port):
// /work?cpu_ms= at most one second of CPU, /rss?mb= at most 256 MB. More gets 400; the defaults
// of the config (demo.cpu_ms, demo.rss_mb) are the operator's and not capped.
inline constexpr unsigned kMaxRequestCpuMs = 1000;
inline constexpr unsigned kMaxRequestRssMb = 256;
// /payload?size= at most 64 MB (a body to compress, or not; see run_demo_worker's routes).
inline constexpr unsigned kMaxPayloadBytes = 64U << 20;

// The bytes of /payload from `offset` on, `out.size()` of them: JSON records of one fixed
// length, numbered, as an API would list them (compressible like real JSON, about 8:1 at
// gzip 6). A function of the offset alone, so a test can check a body of any length piece by
// piece.
void demo_payload(std::uint64_t offset, std::span<char> out);

// Parses `demo-worker --socket P | --port N [--threads T] [--cpu-ms C] [--io-ms I]
// [--rss-mb R] [--worker-id W]` (argv[0] is "demo-worker").
Result<DemoOptions> parse_demo_args(int argc, char** argv);

// Serves until killed. Returns a process exit status (non-zero when it cannot listen).
int run_demo_worker(const DemoOptions& options);

// Spends `ms` of this thread's CPU time (not wall time: under contention it takes longer,
// as a real request would).
void burn_cpu_ms(unsigned ms);

}  // namespace tuner::demo
