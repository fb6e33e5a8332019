// Helpers shared by the server/ tests that run real processes: a scratch directory and reading
// a child's pipes to the end.
#pragma once

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <string>

#include <stdlib.h>

#include "tests/support/temp_dir.hpp"

namespace tuner::server::testing {

// A temporary directory removed with everything in it when the test ends.
using ScratchDir = tuner::test::TempDir;

// Reads the (possibly non-blocking) pipes until both reach end-of-file or the deadline passes
// (a safety net for a broken test, not a measurement). A negative fd counts as finished.
struct PipeOutput {
    std::string out;
    std::string err;
};
inline PipeOutput read_pipes_to_end(int out_fd, int err_fd,
                                    std::chrono::seconds limit = std::chrono::seconds(30)) {
    PipeOutput result;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    int fds[2] = {out_fd, err_fd};
    std::string* sinks[2] = {&result.out, &result.err};
    while ((fds[0] >= 0 || fds[1] >= 0) && std::chrono::steady_clock::now() < deadline) {
        pollfd pfd[2] = {{fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}};
        if (::poll(pfd, 2, 100) < 0 && errno != EINTR) break;
        for (int i = 0; i < 2; ++i) {
            if (fds[i] < 0 || pfd[i].revents == 0) continue;
            char buf[4096];
            const ssize_t n = ::read(fds[i], buf, sizeof buf);
            if (n > 0) {
                sinks[i]->append(buf, static_cast<std::size_t>(n));
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                fds[i] = -1;  // end of file
            }
        }
    }
    return result;
}

// Reads one line (without its newline) from a pipe, waiting up to `limit` for it.
inline std::string read_line(int fd, std::chrono::seconds limit = std::chrono::seconds(30)) {
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
        pollfd pfd{fd, POLLIN, 0};
        if (::poll(&pfd, 1, 100) <= 0) continue;
        char c;
        const ssize_t n = ::read(fd, &c, 1);
        if (n == 0) break;
        if (n < 0) continue;
        if (c == '\n') return line;
        line += c;
    }
    return line;
}

}  // namespace tuner::server::testing
