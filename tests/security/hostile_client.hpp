// Clients that behave as attackers do, for the security suites: many connections that each send
// a request head and then an endless stream of bytes (a chunk extension, a trailer), while the
// daemon's resident memory is sampled.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace tuner::test {

// VmRSS of a process in bytes (0 when it cannot be read).
std::uint64_t rss_bytes(pid_t pid);

struct FloodOptions {
    unsigned connections = 50;
    std::size_t bytes_per_connection = 4 << 20;  // after the head; the flood stops when refused
};

struct FloodResult {
    std::uint64_t rss_before_bytes = 0;
    std::uint64_t peak_rss_bytes = 0;
    std::uint64_t rss_after_bytes = 0;
    unsigned answered_4xx = 0;  // connections that got an HTTP 4xx answer before closing
    unsigned connected = 0;
    [[nodiscard]] std::string summary() const;
};

// Opens `connections` connections at once to host:port, sends `head` and then filler bytes
// ('a') on each until bytes_per_connection are sent or the server stops taking them, then reads
// what the server answered. Samples `pid`'s RSS every 10 ms meanwhile.
FloodResult flood_while_sampling_rss(const std::string& host_port, const std::string& head,
                                     const FloodOptions& options, pid_t pid);

}  // namespace tuner::test
