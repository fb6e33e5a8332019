// The front's coarse deadlines (server/deadline.hpp): an armed deadline fires its action about
// when due (never more than a tick late, in a generous bound), a disarmed or re-armed one does
// not fire early, and settle() turns the cancellation it caused into timed_out.
#include "server/deadline.hpp"

#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
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

}  // namespace
}  // namespace tuner::server
