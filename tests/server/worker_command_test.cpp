// Placeholders in a worker command: {socket}, {port}, {threads}, {worker_id}, in any argument,
// several in one argument, the same one twice.
#include <gtest/gtest.h>

#include "server/pool.hpp"

namespace tuner::server {
namespace {

const std::map<std::string, std::string> kValues = {
    {"socket", "/run/tunerd/w3.sock"}, {"port", "20003"}, {"threads", "4"}, {"worker_id", "3"}};

TEST(SubstituteCommand, ReplacesEachPlaceholderInEveryArgument) {
    const std::vector<std::string> command = {"/usr/bin/python3", "-m",        "gunicorn",
                                              "--threads",        "{threads}", "-b",
                                              "unix:{socket}",    "app:app"};
    const std::vector<std::string> expected = {
        "/usr/bin/python3",         "-m",     "gunicorn", "--threads", "4", "-b",
        "unix:/run/tunerd/w3.sock", "app:app"};
    EXPECT_EQ(substitute_command(command, kValues), expected);
}

TEST(SubstituteCommand, ReplacesSeveralPlaceholdersInOneArgument) {
    EXPECT_EQ(
        substitute_command({"--bind=127.0.0.1:{port} --name=w{worker_id}-{worker_id}"}, kValues),
        std::vector<std::string>{"--bind=127.0.0.1:20003 --name=w3-3"});
    EXPECT_EQ(substitute_command({"{threads}{threads}"}, kValues), std::vector<std::string>{"44"});
}

TEST(SubstituteCommand, LeavesUnknownPlaceholdersAndPlainBracesAlone) {
    const std::vector<std::string> command = {"app", "{unknown}", "{}", "{socket",
                                              "json={\"a\":1}"};
    EXPECT_EQ(substitute_command(command, kValues), command);
    EXPECT_TRUE(substitute_command({}, kValues).empty());
}

TEST(SubstituteCommand, NeverScansASubstitutedValueAgain) {
    // A value that itself looks like a placeholder stays as it is, whatever the names' order.
    const std::map<std::string, std::string> values = {{"socket", "/tmp/{port}.sock"},
                                                       {"port", "9"}};
    EXPECT_EQ(substitute_command({"unix:{socket}", "{port}"}, values),
              (std::vector<std::string>{"unix:/tmp/{port}.sock", "9"}));
}

}  // namespace
}  // namespace tuner::server
