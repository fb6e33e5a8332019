// The built-in demo app serves the public port: what one request may make it spend is capped
// (/work?cpu_ms= at most 1000, /rss?mb= at most 256). Over a real socket to the real binary:
// beyond the caps is 400 at once, nothing is spent, the daemon and its worker live.
#include <gtest/gtest.h>

#include "tests/integration/tuner_test_support.hpp"
#include "tests/support/tunerd_process.hpp"

namespace tuner::test {
namespace {

using namespace std::chrono_literals;

TEST(DemoApp, CpuAndMemoryBeyondTheCapsGet400AndTheWorkerLives) {
    TunerdProcess tunerd({.config = "[workers]\nmode = \"fixed\"\ncount = 1\nthreads = 2\n"});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    const auto workers = tunerd.ready_worker_pids();
    ASSERT_EQ(workers.size(), 1u);

    // The report's requests: 64 GB of ballast, a minute of CPU.
    const auto started = std::chrono::steady_clock::now();
    auto rss = tunerd.get("/rss?mb=65536");
    ASSERT_TRUE(rss.ok()) << rss.error().to_string();
    EXPECT_EQ(rss->status, 400) << rss->body;
    auto work = tunerd.get("/work?cpu_ms=60000");
    ASSERT_TRUE(work.ok()) << work.error().to_string();
    EXPECT_EQ(work->status, 400) << work->body;
    EXPECT_LT(std::chrono::steady_clock::now() - started, 2s) << "refused without working";

    // At the caps, served.
    work = tunerd.get("/work?cpu_ms=1000&io_ms=0");
    ASSERT_TRUE(work.ok());
    EXPECT_EQ(work->status, 200) << work->body;
    rss = tunerd.get("/rss?mb=0");
    ASSERT_TRUE(rss.ok());
    EXPECT_EQ(rss->status, 200) << rss->body;

    EXPECT_TRUE(tunerd.running()) << tunerd.log();
    EXPECT_EQ(tunerd.ready_worker_pids(), workers) << "the worker was not replaced";
}

}  // namespace
}  // namespace tuner::test
