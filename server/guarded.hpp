// The exception barrier of the I/O threads. A coroutine or a handler that throws must cost one
// connection or one job, never the daemon: Asio rethrows what a detached coroutine throws out of
// io_context::run(), which would end the process (std::terminate on a thread, or main's return).
#pragma once

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <exception>
#include <string>
#include <string_view>
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <spdlog/spdlog.h>

namespace tuner::server {

// What an exception says, for a log line: std::exception's what(), or "unknown exception".
inline std::string exception_text(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        return ex.what();
    } catch (...) {
        return "unknown exception";
    }
}

// co_spawn(..., detached), except that an exception the coroutine lets escape is logged
// (event=coroutine_failed task=<task>) and dropped: the coroutine's frame, and with it its
// connection, is gone; the io_context runs on.
template <class Executor, class Awaitable>
void spawn_guarded(Executor&& executor, Awaitable&& awaitable, std::string_view task) {
    boost::asio::co_spawn(std::forward<Executor>(executor), std::forward<Awaitable>(awaitable),
                          [task = std::string(task)](const std::exception_ptr& e) {
                              if (!e) return;
                              spdlog::error("event=coroutine_failed task={} error=\"{}\"", task,
                                            exception_text(e));
                          });
}

// io_context::run() until it returns normally: an exception thrown by a handler is logged
// (event=handler_failed thread=<thread>) and run() is called again, as Asio allows.
inline void run_guarded(boost::asio::io_context& ioc, std::string_view thread) {
    for (;;) {
        try {
            ioc.run();
            return;
        } catch (...) {
            spdlog::error("event=handler_failed thread={} error=\"{}\"", thread,
                          exception_text(std::current_exception()));
        }
    }
}

}  // namespace tuner::server
