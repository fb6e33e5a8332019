// Config validation: the range of each key and the rules between keys, each error at the line of
// the key that broke it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/tuner/config/test_support.hpp"
#include "tuner/config/load.hpp"

namespace tuner::config {
namespace {

using ::testing::HasSubstr;
using testing::issues_text;
using testing::single_issue;
using testing::valid_config;

// ---- single keys ----------------------------------------------------------------------------

TEST(ConfigRanges, WorkerBounds) {
    EXPECT_THAT(single_issue("[workers]\nmin = 0\n").message, HasSubstr("must be at least 1"));
    EXPECT_THAT(single_issue("[workers]\nmax = 1025\n").message,
                HasSubstr("must be between 1 and 1024, got 1025"));
    EXPECT_EQ(valid_config("[workers]\nmax = 1024\n").workers.max, 1024u);
    EXPECT_THAT(single_issue("[workers]\nthreads = 0\n").message, HasSubstr("at least 1"));
}

TEST(ConfigRanges, TargetUtilisationIsInZeroToOneInclusive) {
    EXPECT_THAT(single_issue("[policy]\ntarget_utilisation = 0.0\n").message,
                HasSubstr("must be in (0, 1], got 0.0"));
    EXPECT_THAT(single_issue("[policy]\ntarget_utilisation = 1.5\n").message,
                HasSubstr("must be in (0, 1], got 1.5"));
    EXPECT_DOUBLE_EQ(valid_config("[policy]\ntarget_utilisation = 1.0\n").policy.target_utilisation,
                     1.0);
}

TEST(ConfigRanges, MemoryShareIsStrictlyBetweenZeroAndOne) {
    EXPECT_THAT(single_issue("[database]\nmemory_share = 1.0\n").message,
                HasSubstr("must be in (0, 1)"));
    EXPECT_THAT(single_issue("[database]\nmemory_share = 0\n").message,
                HasSubstr("must be in (0, 1)"));
    EXPECT_DOUBLE_EQ(valid_config("[database]\nmemory_share = 0.5\n").database.memory_share, 0.5);
}

TEST(ConfigRanges, IntervalIsAtLeastOneHundredMilliseconds) {
    const auto issue = single_issue("[policy]\ninterval = \"50ms\"\nwindow = \"10s\"\n");
    EXPECT_EQ(issue.key, "policy.interval");
    EXPECT_THAT(issue.message, HasSubstr("must be between \"100ms\" and \"10m\", got \"50ms\""));
    EXPECT_EQ(valid_config("[policy]\ninterval = \"100ms\"\n").policy.interval, 100ms);
}

TEST(ConfigRanges, EveryTimeoutMustBeAboveZero) {
    const std::pair<const char*, const char*> timeouts[] = {
        {"server", "queue_timeout"},     {"server", "request_timeout"},
        {"server", "header_timeout"},    {"server", "keepalive_timeout"},
        {"server", "shutdown_timeout"},  {"workers", "startup_timeout"},
        {"workers", "drain_timeout"},    {"workers", "kill_timeout"},
        {"database", "connect_timeout"},
    };
    for (const auto& [section, key] : timeouts) {
        const auto issue = single_issue("[" + std::string(section) + "]\n" + key + " = \"0\"\n");
        EXPECT_EQ(issue.key, std::string(section) + "." + key);
        EXPECT_THAT(issue.message, HasSubstr("must be greater than 0")) << key;
    }
}

TEST(ConfigRanges, EveryDurationHasAnUpperBoundNamedWithKeyAndLine) {
    // A window of "1d" made every control cycle scan a day of latency histograms under the
    // dispatcher's lock; no duration had an upper bound.
    struct Bound {
        const char* section;
        const char* key;
        const char* largest;   // accepted
        const char* too_long;  // refused
        const char* message;
    };
    const Bound bounds[] = {
        {"server", "queue_timeout", "1h", "61m", "must be greater than 0 and at most \"1h\""},
        {"server", "request_timeout", "1h", "1d", "must be greater than 0 and at most \"1h\""},
        {"server", "header_timeout", "1h", "2h", "must be greater than 0 and at most \"1h\""},
        {"server", "keepalive_timeout", "1h", "2h", "must be greater than 0 and at most \"1h\""},
        {"server", "shutdown_timeout", "1h", "2h", "must be greater than 0 and at most \"1h\""},
        {"workers", "startup_timeout", "1h", "2h", "must be greater than 0 and at most \"1h\""},
        {"workers", "drain_timeout", "1h", "2h", "must be greater than 0 and at most \"1h\""},
        {"workers", "kill_timeout", "1h", "2h", "must be greater than 0 and at most \"1h\""},
        {"database", "connect_timeout", "1h", "2h", "must be greater than 0 and at most \"1h\""},
        {"policy", "window", "10m", "1d", "must be greater than 0 and at most \"10m\""},
        {"policy", "scale_down_cooldown", "1h", "1d", "must be between \"0\" and \"1h\""},
        {"state", "retention", "3650d", "3651d", "must be greater than 0 and at most \"3650d\""},
    };
    for (const auto& b : bounds) {
        const std::string head = "[" + std::string(b.section) + "]\n# line 2\n" + b.key + " = ";
        const auto issue = single_issue(head + "\"" + b.too_long + "\"\n");
        EXPECT_EQ(issue.key, std::string(b.section) + "." + b.key);
        EXPECT_EQ(issue.line, 3u) << b.key;
        EXPECT_THAT(issue.message,
                    HasSubstr(std::string(b.message) + ", got \"" + b.too_long + "\""))
            << b.key;
        EXPECT_THAT(issue.to_string(), HasSubstr("test.toml:3:")) << issue.to_string();
        valid_config(head + "\"" + b.largest + "\"\n");
    }
    // The interval may be as long as the longest window, which it must not exceed (rules).
    const auto interval = single_issue("[policy]\ninterval = \"11m\"\nwindow = \"10m\"\n");
    EXPECT_EQ(interval.key, "policy.interval");
    EXPECT_EQ(interval.line, 2u);
    EXPECT_THAT(interval.message, HasSubstr("must be between \"100ms\" and \"10m\", got \"11m\""));
    valid_config("[policy]\ninterval = \"10m\"\nwindow = \"10m\"\n");
}

TEST(ConfigRanges, IoThreadsFromOneToSixtyFourOrAuto) {
    EXPECT_THAT(single_issue("[server]\nio_threads = 0\n").message,
                HasSubstr("\"auto\" or between 1 and 64, got 0"));
    EXPECT_THAT(single_issue("[server]\nio_threads = 65\n").message,
                HasSubstr("between 1 and 64, got 65"));
    EXPECT_THAT(single_issue("[server]\nio_threads = \"many\"\n").message,
                HasSubstr("must be \"auto\" or a number of threads"));
    EXPECT_EQ(valid_config("[server]\nio_threads = 64\n").server.io_threads, 64u);
    EXPECT_EQ(valid_config("[server]\nio_threads = \"auto\"\n").server.io_threads, 0u);
    EXPECT_EQ(valid_config("").server.io_threads, 0u) << "the default is auto";
}

TEST(ConfigRanges, PssEveryIsAtLeastOne) {
    EXPECT_EQ(single_issue("[policy]\npss_every = 0\n").key, "policy.pss_every");
}

TEST(ConfigRanges, HeaderLimitIsFromOneKilobyteToSixtyFour) {
    EXPECT_THAT(single_issue("[server]\nmax_header_size = \"100B\"\n").message,
                HasSubstr("must be between \"1KB\" and \"64KB\""));
    // Beast keeps a field in at most 64 KiB and throws on a longer one: no limit may let one in.
    const auto issue = single_issue("[server]\n\nmax_header_size = \"128KB\"\n");
    EXPECT_THAT(issue.message, HasSubstr("must be between \"1KB\" and \"64KB\", got \"128KB\""));
    EXPECT_EQ(issue.key, "server.max_header_size");
    EXPECT_EQ(issue.line, 3u);
    EXPECT_EQ(valid_config("[server]\nmax_header_size = \"64KB\"\n").server.max_header_size_bytes,
              64 * KiB);
}

TEST(ConfigRanges, HealthPathIsAbsolute) {
    EXPECT_THAT(single_issue("[workers]\nhealth_path = \"healthz\"\n").message,
                HasSubstr("must start with \"/\""));
    EXPECT_EQ(valid_config("[workers]\nhealth_path = \"/healthz\"\n").workers.health_path,
              "/healthz");
}

TEST(ConfigRanges, PreloadIsModuleColonCallable) {
    for (const char* bad : {"app", "app:", ":app", "1app:app", "app:app()", "my-app:app",
                            "app..x:app", "app:app.", "app:app app"}) {
        const auto issue = single_issue(std::string("[workers]\npreload = \"") + bad + "\"\n");
        EXPECT_EQ(issue.key, "workers.preload") << bad;
        EXPECT_EQ(issue.line, 2u) << bad;
        EXPECT_THAT(issue.message, HasSubstr("must be \"module:callable\"")) << bad;
    }
    const auto c = valid_config("[workers]\npreload = \"mysite.wsgi:application\"\n");
    EXPECT_EQ(c.workers.preload, "mysite.wsgi:application");
    EXPECT_TRUE(c.workers.uses_preload());
    EXPECT_FALSE(c.workers.is_builtin_demo());
    EXPECT_EQ(c.workers.server, "gunicorn");
    EXPECT_EQ(c.workers.python, "/usr/bin/python3");
    EXPECT_FALSE(valid_config("").workers.uses_preload());
}

TEST(ConfigRanges, PreloadServerAndPython) {
    const auto server = single_issue("[workers]\nserver = \"uwsgi\"\n");
    EXPECT_EQ(server.key, "workers.server");
    EXPECT_THAT(server.message, HasSubstr("gunicorn"));
    EXPECT_THAT(server.message, HasSubstr("waitress"));
    EXPECT_EQ(valid_config("[workers]\nserver = \"waitress\"\n").workers.server, "waitress");
    EXPECT_EQ(valid_config("[workers]\nserver = \"gunicorn\"\n").workers.server, "gunicorn");
    const auto python = single_issue("[workers]\n\npython = \"python3\"\n");
    EXPECT_EQ(python.key, "workers.python");
    EXPECT_EQ(python.line, 3u);
    EXPECT_THAT(python.message, HasSubstr("must be an absolute path"));
    EXPECT_EQ(valid_config("[workers]\npython = \"/srv/venv/bin/python\"\n").workers.python,
              "/srv/venv/bin/python");
}

TEST(ConfigRanges, ListenAddressesMustParse) {
    const auto issue = single_issue("[admin]\nlisten = \"localhost\"\n");
    EXPECT_EQ(issue.key, "admin.listen");
    EXPECT_THAT(issue.message, HasSubstr("missing port"));
    EXPECT_EQ(single_issue("[server]\nlisten = \"127.0.0.1:99999\"\n").key, "server.listen");
}

// ---- rules between keys ---------------------------------------------------------------------

TEST(ConfigRules, NonLoopbackAdminNeedsATokenFile) {
    const auto issue = single_issue("[admin]\nlisten = \"0.0.0.0:9464\"\n");
    EXPECT_EQ(issue.key, "admin.listen");
    EXPECT_EQ(issue.line, 2u);
    EXPECT_THAT(issue.message, HasSubstr("set admin.token_file"));
    valid_config("[admin]\nlisten = \"0.0.0.0:9464\"\ntoken_file = \"/etc/tunerd/token\"\n");
    valid_config("[admin]\nlisten = \"[::1]:9464\"\n");
    valid_config("[admin]\nlisten = \"localhost:0\"\n");
}

TEST(ConfigRules, ErrorPointsAtTheLaterOfTheTwoKeys) {
    auto issue = single_issue("[workers]\nmax = 2\nmin = 3\n");
    EXPECT_EQ(issue.key, "workers.min");
    EXPECT_EQ(issue.line, 3u);
    EXPECT_THAT(issue.message, HasSubstr("workers.min 3 is above workers.max 2"));

    issue = single_issue("[workers]\nmin = 3\nmax = 2\n");
    EXPECT_EQ(issue.key, "workers.max");
    EXPECT_EQ(issue.line, 3u);
}

TEST(ConfigRules, ErrorPointsAtTheOneKeyTheFileSet) {
    // max defaults to 64; only min is in the file.
    const auto issue = single_issue("[log]\nlevel = \"info\"\n[workers]\nmin = 65\n");
    EXPECT_EQ(issue.key, "workers.min");
    EXPECT_EQ(issue.line, 4u);
}

TEST(ConfigRules, CountWithinBoundsInFixedMode) {
    const auto issue = single_issue("[workers]\nmode = \"fixed\"\nmax = 4\ncount = 5\n");
    EXPECT_EQ(issue.key, "workers.count");
    EXPECT_EQ(issue.line, 4u);
    EXPECT_THAT(issue.message,
                HasSubstr("workers.count 5 is outside workers.min..workers.max (1..4)"));
    // The default count 2 is checked against bounds the file set, at the later key (mode).
    EXPECT_EQ(single_issue("[workers]\nmin = 3\nmode = \"fixed\"\n").key, "workers.mode");
    EXPECT_EQ(valid_config("[workers]\nmode = \"fixed\"\ncount = 4\nmax = 4\n").workers.count, 4u);
}

TEST(ConfigRules, CountIsCheckedOutsideFixedModeOnlyWhenSet) {
    // Adaptive mode does not use count: a default count above a small max is no error...
    EXPECT_EQ(valid_config("[workers]\nmax = 1\n").workers.max, 1u);
    // ...but a count the file sets must still make sense.
    EXPECT_EQ(single_issue("[workers]\ncount = 0\n").key, "workers.count");
}

TEST(ConfigRules, ThreadsMaxIsAtLeastThreads) {
    const auto issue = single_issue("[workers]\nthreads_max = 2\nthreads = 4\n");
    EXPECT_EQ(issue.key, "workers.threads");
    EXPECT_EQ(issue.line, 3u);
    EXPECT_THAT(issue.message, HasSubstr("workers.threads_max 2 is below workers.threads 4"));
    // Unset threads_max follows threads.
    EXPECT_EQ(valid_config("[workers]\nthreads = 4\n").workers.effective_threads_max(), 4u);
}

TEST(ConfigRules, WindowIsAtLeastTheInterval) {
    const auto issue = single_issue("[policy]\ninterval = \"2s\"\nwindow = \"1s\"\n");
    EXPECT_EQ(issue.key, "policy.window");
    EXPECT_THAT(issue.message,
                HasSubstr("policy.window \"1s\" is shorter than policy.interval \"2s\""));
    // The default window (10s) against a longer interval: the interval's line.
    EXPECT_EQ(single_issue("[policy]\ninterval = \"20s\"\n").key, "policy.interval");
}

TEST(ConfigRules, JitterNeedsMaxRequests) {
    const auto issue = single_issue("[workers]\nmax_requests_jitter = 50\n");
    EXPECT_EQ(issue.key, "workers.max_requests_jitter");
    EXPECT_THAT(issue.message, HasSubstr("needs workers.max_requests > 0"));
    valid_config("[workers]\nmax_requests = 1000\nmax_requests_jitter = 50\n");
}

TEST(ConfigRules, PreloadAndAnExplicitCommandExcludeEachOther) {
    const auto issue =
        single_issue("[workers]\ncommand = [\"gunicorn\", \"app:app\"]\npreload = \"app:app\"\n");
    EXPECT_EQ(issue.key, "workers.preload");
    EXPECT_EQ(issue.line, 3u);
    EXPECT_THAT(issue.message, HasSubstr("workers.command is not used"));
    // The default command (builtin:demo) is not in the way.
    valid_config("[workers]\npreload = \"app:app\"\n");
}

TEST(ConfigRules, ApplyModeNeedsAnAdminConnection) {
    const auto issue = single_issue("[database]\npostgres = \"apply\"\n");
    EXPECT_EQ(issue.key, "database.postgres");
    EXPECT_THAT(issue.message, HasSubstr("needs database.admin_url_file"));
    valid_config("[database]\npostgres = \"apply\"\nadmin_url_file = \"/etc/tunerd/pg\"\n");
}

TEST(ConfigRules, RemoteDatabaseNeedsItsMemoryUnlessTuningIsOff) {
    const auto issue =
        single_issue("[database]\nlocation = \"remote\"\npostgres = \"recommend\"\n");
    EXPECT_EQ(issue.key, "database.postgres");
    EXPECT_EQ(issue.line, 3u);
    EXPECT_THAT(issue.message, HasSubstr("needs database.memory"));
    valid_config("[database]\nlocation = \"remote\"\n");
    valid_config("[database]\nlocation = \"remote\"\npostgres = \"recommend\"\nmemory = \"2GB\"\n");
    EXPECT_EQ(single_issue("[database]\nlocation = \"remote\"\npostgres = \"recommend\"\n"
                           "memory = \"\"\n")
                  .key,
              "database.memory");
}

TEST(ConfigRules, RuleOverAValueThatFailedToReadIsSkipped) {
    // min is refused; the rule min <= max must not add a second error with the default min.
    const auto loaded = parse_config("[workers]\nmax = 0\nmin = \"x\"\n");
    EXPECT_EQ(loaded.errors.size(), 2u) << issues_text(loaded);
    const auto rules = parse_config("[policy]\ninterval = 5\nwindow = \"500ms\"\n");
    EXPECT_EQ(rules.errors.size(), 1u) << issues_text(rules);
}

TEST(ConfigRules, KeyBrokenByOneRuleIsStillCheckedByTheNext) {
    // postgres = "apply" breaks two rules (no admin_url_file, and remote without memory): both
    // are reported, at the same key.
    const auto loaded = parse_config("[database]\nlocation = \"remote\"\npostgres = \"apply\"\n");
    ASSERT_EQ(loaded.errors.size(), 2u) << issues_text(loaded);
    EXPECT_THAT(loaded.errors[0].message, HasSubstr("needs database.admin_url_file"));
    EXPECT_THAT(loaded.errors[1].message, HasSubstr("needs database.memory"));
    EXPECT_EQ(loaded.errors[1].key, "database.postgres");
}

TEST(ConfigRules, CrossKeyErrorsAreCollectedWithTheOthers) {
    const auto loaded = parse_config(
        "[workers]\nmin = 5\nmax = 2\nmax_requests_jitter = 9\n"
        "[database]\npostgres = \"apply\"\n[log]\nlevel = \"loud\"\n");
    ASSERT_EQ(loaded.errors.size(), 4u) << issues_text(loaded);
    EXPECT_EQ(loaded.errors[0].key, "workers.max");
    EXPECT_EQ(loaded.errors[1].key, "workers.max_requests_jitter");
    EXPECT_EQ(loaded.errors[2].key, "database.postgres");
    EXPECT_EQ(loaded.errors[3].key, "log.level");
}

}  // namespace
}  // namespace tuner::config
