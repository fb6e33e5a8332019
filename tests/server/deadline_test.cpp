// The front's coarse deadlines (server/deadline.hpp): an armed deadline fires its action about
// when due (never more than a tick late, in a generous bound), a disarmed or re-armed one does
// not fire early, and settle() turns the cancellation it caused into timed_out; a deadline made
// on another thread (a session made by the accept loop) joins its watchdog only when armed.
#include "server/deadline.hpp"

#include <atomic>
#include <future>
#include <thread>

#include <boost/asio/error.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <gtest/gtest.h>

namespace tuner::server {
namespace {

using namespace std::chrono_literals;

TEST(Deadline, FiresItsActionOnceAfterTheTimeout) {
    boost::asio::io_context ioc;
    auto watchdog = std::make_shared<Watchdog>(ioc.get_executor());
    int fired = 0;
    Deadline d(watchdog, [&] { ++fired; });
    const auto start = Clock::now();
    d.arm(150ms);
    while (fired == 0 && Clock::now() - start < 5s) ioc.run_one_for(50ms);
    EXPECT_EQ(fired, 1);
    EXPECT_GE(Clock::now() - start, 150ms);
    EXPECT_TRUE(d.expired());
    ioc.run_for(300ms);
    EXPECT_EQ(fired, 1) << "once per arm";
    boost::system::error_code ec = boost::asio::error::operation_aborted;
    d.settle(ec);
    EXPECT_EQ(ec, boost::asio::error::timed_out);
}

TEST(Deadline, DisarmedAndReArmedDeadlinesDoNotFireEarly) {
    boost::asio::io_context ioc;
    auto watchdog = std::make_shared<Watchdog>(ioc.get_executor());
    int a_fired = 0, b_fired = 0;
    Deadline a(watchdog, [&] { ++a_fired; });
    Deadline b(watchdog, [&] { ++b_fired; });
    a.arm(100ms);
    a.disarm();
    b.arm(100ms);
    b.arm(10s);  // pushed back before it was due
    ioc.run_for(400ms);
    EXPECT_EQ(a_fired, 0);
    EXPECT_EQ(b_fired, 0);
    EXPECT_FALSE(b.expired());
    boost::system::error_code ec = boost::asio::error::operation_aborted;
    b.settle(ec);
    EXPECT_EQ(ec, boost::asio::error::operation_aborted) << "not ours: a plain cancellation";
    boost::system::error_code ok;
    b.settle(ok);
    EXPECT_FALSE(ok);
}

TEST(Deadline, ManyDeadlinesComeAndGo) {
    boost::asio::io_context ioc;
    auto watchdog = std::make_shared<Watchdog>(ioc.get_executor());
    int fired = 0;
    {
        std::vector<std::unique_ptr<Deadline>> all;
        for (int i = 0; i < 100; ++i) {
            all.push_back(std::make_unique<Deadline>(watchdog, [&] { ++fired; }));
            all.back()->arm(i % 2 == 0 ? 100ms : 1h);
        }
        EXPECT_EQ(watchdog->watched(), 100u);
        all.erase(all.begin(), all.begin() + 10);  // 5 due ones gone before they fired
        ioc.run_for(500ms);
        EXPECT_EQ(fired, 45);
    }
    EXPECT_EQ(watchdog->watched(), 0u);
}

// The front's accept loop makes each session, with its Deadlines, on the main thread for an I/O
// thread that arms and destroys them. Joining the watchdog at construction changed its entries
// from the accepting thread while its own thread changed them too (a data race under make
// test-tsan); a deadline now joins at its first arm, on the watchdog's thread.
TEST(Deadline, MadeOnAnotherThreadJoinsItsWatchdogWhenArmedOnItsThread) {
    boost::asio::io_context ioc(1);
    auto watchdog = std::make_shared<Watchdog>(ioc.get_executor());
    {
        Deadline never_armed(watchdog, [] {});
        EXPECT_EQ(watchdog->watched(), 0u);
    }
    auto work = boost::asio::make_work_guard(ioc);
    std::thread io([&] { ioc.run(); });
    std::atomic<int> armed{0};
    for (int i = 0; i < 500; ++i) {
        auto d = std::make_shared<Deadline>(watchdog, [] {});
        boost::asio::post(ioc, [d = std::move(d), &armed]() mutable {
            d->arm(1h);
            ++armed;
            d.reset();  // destroyed on the watchdog's thread, as a session's frame is
        });
    }
    std::promise<std::size_t> watched;
    boost::asio::post(ioc, [&] { watched.set_value(watchdog->watched()); });
    EXPECT_EQ(watched.get_future().get(), 0u);
    EXPECT_EQ(armed.load(), 500);
    work.reset();
    ioc.stop();
    io.join();
}

}  // namespace
}  // namespace tuner::server
