// A request body held by the front: in memory up to its limit, past it in an unnamed spool file
// that nothing else can see, and a clear error when the spool cannot be written.
#include "server/request_body.hpp"

#include <sys/stat.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

namespace tuner::server {
namespace {

std::string read_all(const BufferedBody& body) {
    std::string out;
    std::array<char, 7> buf;  // small: many reads
    for (std::uint64_t offset = 0;;) {
        auto n = body.read_at(offset, buf);
        EXPECT_TRUE(n.ok());
        if (!n || *n == 0) break;
        out.append(buf.data(), *n);
        offset += *n;
    }
    return out;
}

std::size_t entries_in(const std::string& dir) {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++n;
    return n;
}

TEST(BufferedBody, StaysInMemoryUpToItsLimit) {
    BufferedBody body(10, ::testing::TempDir());
    ASSERT_TRUE(body.append({"hello", 5}).ok());
    ASSERT_TRUE(body.append({"world", 5}).ok());
    EXPECT_FALSE(body.spooled());
    EXPECT_EQ(body.size(), 10u);
    EXPECT_EQ(std::string(body.memory().data(), body.memory().size()), "helloworld");
}

TEST(BufferedBody, PastItsLimitMovesToAnUnnamedFileAndReadsBackWhole) {
    const std::string dir = ::testing::TempDir() + "spool-test";
    std::filesystem::create_directories(dir);
    const std::size_t before = entries_in(dir);
    {
        BufferedBody body(8, dir);
        ASSERT_TRUE(body.append({"0123", 4}).ok());
        ASSERT_TRUE(body.append({"456789abcdef", 12}).ok());
        ASSERT_TRUE(body.append({"!", 1}).ok());
        EXPECT_TRUE(body.spooled());
        EXPECT_EQ(body.size(), 17u);
        EXPECT_EQ(read_all(body), "0123456789abcdef!");
        EXPECT_EQ(entries_in(dir), before) << "the spool file has no name another user could open";
    }
    std::filesystem::remove_all(dir);
}

TEST(BufferedBody, SpoolFileIsPrivate) {
    auto fd = open_spool_file(::testing::TempDir());
    ASSERT_TRUE(fd.ok()) << fd.error().to_string();
    struct stat st {};
    ASSERT_EQ(::fstat(*fd, &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_EQ(st.st_nlink, 0u);
    ::close(*fd);
}

TEST(BufferedBody, SpoolThatCannotBeCreatedIsAnErrorNamingTheDirectory) {
    BufferedBody body(4, "/nonexistent/spool");
    ASSERT_TRUE(body.append({"1234", 4}).ok());
    const auto st = body.append({"5", 1});
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().where, "/nonexistent/spool");
    EXPECT_NE(st.error().what.find("cannot create a spool file"), std::string::npos);
    EXPECT_EQ(st.error().code, ENOENT);
}

TEST(SpoolBudget, TakesUpToItsCapExactlyAndNothingPastIt) {
    SpoolBudget budget;
    EXPECT_TRUE(budget.take(60, 100));
    EXPECT_TRUE(budget.take(40, 100));
    EXPECT_FALSE(budget.take(1, 100));
    EXPECT_EQ(budget.used(), 100u) << "a refused take takes nothing";
    EXPECT_FALSE(budget.fits(1, 100));
    budget.give_back(30);
    EXPECT_TRUE(budget.fits(30, 100));
    EXPECT_FALSE(budget.fits(31, 100));
    EXPECT_FALSE(budget.take(UINT64_MAX, 100)) << "no overflow past the cap";
    EXPECT_FALSE(budget.take(1, 50)) << "a cap lowered below what is held refuses all";
    EXPECT_FALSE(budget.fits(1, 50));
}

TEST(SpoolBudget, WarnsAtMostOnceAMinute) {
    SpoolBudget budget;
    const auto at = [](int s) { return LogThrottle::Clock::time_point(std::chrono::seconds(s)); };
    EXPECT_TRUE(budget.warnings.due(at(1000)));
    EXPECT_FALSE(budget.warnings.due(at(1000)));
    EXPECT_FALSE(budget.warnings.due(at(1059)));
    EXPECT_TRUE(budget.warnings.due(at(1060)));
}

TEST(BufferedBody, SpooledBytesAreTakenFromTheBudgetAndGivenBackWhenTheBodyEnds) {
    SpoolBudget budget;
    {
        BufferedBody in_memory(100, ::testing::TempDir(), &budget, 50);
        ASSERT_TRUE(in_memory.append({"0123456789", 10}).ok());
        EXPECT_EQ(budget.used(), 0u) << "memory is not the spool's";
        BufferedBody a(4, ::testing::TempDir(), &budget, 50);
        ASSERT_TRUE(a.append({"0123456789", 10}).ok());
        EXPECT_TRUE(a.spooled());
        EXPECT_EQ(budget.used(), 10u);
        BufferedBody b(4, ::testing::TempDir(), &budget, 50);
        ASSERT_TRUE(b.append(std::string(40, 'b')).ok());
        EXPECT_EQ(budget.used(), 50u);
        const auto st = b.append({"!", 1});
        ASSERT_FALSE(st.ok());
        EXPECT_EQ(st.error().code, kSpoolFull);
        EXPECT_NE(st.error().what.find("server.spool_max_size"), std::string::npos)
            << st.error().what;
        EXPECT_EQ(b.size(), 40u) << "nothing past the cap is written";
        EXPECT_EQ(budget.refused(), 1u);
    }
    EXPECT_EQ(budget.used(), 0u);
}

}  // namespace
}  // namespace tuner::server
