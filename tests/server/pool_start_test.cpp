// The pool's start as other threads see it: the shape it was given holds at once, before the
// I/O thread has run (tunerd starts the control thread, whose first cycle reads the pool, before
// its I/O thread takes the posted start).
#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include "server/dispatcher.hpp"
#include "server/pool.hpp"

namespace tuner::server {
namespace {

TEST(PoolStart, TheShapeHoldsBeforeTheIoThreadRuns) {
    boost::asio::io_context ioc;  // never run: the start stays posted, no worker is spawned
    Dispatcher dispatcher(16);
    PoolOptions options;
    options.workers.command = {"/bin/true"};
    options.socket_dir = "/nonexistent";
    WorkerPool pool(ioc, dispatcher, options);
    pool.start(5, 2);
    const PoolStatus status = pool.status();
    EXPECT_EQ(status.state.target, 5u);
    EXPECT_EQ(status.state.threads, 2u);
    EXPECT_EQ(status.state.ready, 0u);
    EXPECT_TRUE(status.state.workers.empty());
}

}  // namespace
}  // namespace tuner::server
