// server.io_threads = "auto" (policies/io_threads.hpp): one thread on 1–3 cores, half the cores
// above, at most 4; a configured number is kept as it is.
#include "policies/io_threads.hpp"

#include <gtest/gtest.h>

namespace tuner::policies {
namespace {

TEST(IoThreads, AutoIsHalfTheCoresFromOneToFour) {
    EXPECT_EQ(io_threads_for(0, 1), 1u);
    EXPECT_EQ(io_threads_for(0, 2), 1u);
    EXPECT_EQ(io_threads_for(0, 3), 1u);
    EXPECT_EQ(io_threads_for(0, 4), 2u);
    EXPECT_EQ(io_threads_for(0, 6), 3u);
    EXPECT_EQ(io_threads_for(0, 8), 4u);
    EXPECT_EQ(io_threads_for(0, 64), kMaxAutoIoThreads);
    EXPECT_EQ(io_threads_for(0, 0), 1u) << "a probe that found nothing still gets a thread";
}

TEST(IoThreads, AConfiguredNumberIsKept) {
    EXPECT_EQ(io_threads_for(3, 1), 3u);
    EXPECT_EQ(io_threads_for(1, 16), 1u);
}

}  // namespace
}  // namespace tuner::policies
