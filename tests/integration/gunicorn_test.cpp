// The Flask example (examples/flask) under gunicorn as real workers, run from the checked-in
// etc/examples/flask.toml: resize cycles and kill -9 of the gunicorn master and of its
// worker under load with zero failed requests, and the example's routes through the front.
#include <algorithm>
#include <fstream>
#include <map>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/load_generator.hpp"
#include "tests/support/pool_scenarios.hpp"
#include "tests/support/tunerd_process.hpp"

namespace tuner::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kExampleConfig = TUNER_SOURCE_DIR "/etc/examples/flask.toml";
constexpr const char* kExampleDir = TUNER_SOURCE_DIR "/examples/flask";

// Debian's Flask and gunicorn for /usr/bin/python3 (scripts/install-deps --test installs them).
std::string missing_python_packages() {
    auto r = run_command({"/usr/bin/python3", "-c", "import flask, gunicorn"}, {}, 30s);
    return r.exit_status == 0 ? "" : r.output;
}

// `make test` installs them (scripts/install-deps --test): their absence is a failure, never a
// silent skip.
#define REQUIRE_GUNICORN()                                                     \
    if (const auto missing = missing_python_packages(); !missing.empty())      \
    FAIL() << "needs python3-flask and python3-gunicorn for /usr/bin/python3 " \
              "(scripts/install-deps --test installs them): "                  \
           << missing

// The example config with [workers] keys replaced or added (each value TOML text), and its
// relative workers.dir made absolute (unless given) so it works from the test's directory.
std::string example_config(std::map<std::string, std::string> workers) {
    workers.emplace("dir", std::string("\"") + kExampleDir + "\"");
    // This suite runs the example as slots of `gunicorn -w 1`, each importing the app itself;
    // preload_test.cpp runs it as the example config does, preloaded.
    workers.emplace("preload", "\"\"");
    workers.emplace("command",
                    "[\"/usr/bin/python3\", \"-m\", \"gunicorn\", \"-w\", \"1\", \"--threads\", "
                    "\"{threads}\", \"-b\", \"unix:{socket}\", \"--chdir\", \".\", \"app:app\"]");
    // Python would write __pycache__ into the source tree.
    workers.emplace("env", "{ PYTHONDONTWRITEBYTECODE = \"1\" }");
    std::ifstream in(kExampleConfig);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    const auto header = std::find(lines.begin(), lines.end(), "[workers]");
    if (header == lines.end()) return "# no [workers] in " + std::string(kExampleConfig) + "\n";
    auto line = header + 1;
    for (; line != lines.end() && line->rfind('[', 0) != 0; ++line) {
        const auto key = line->substr(0, line->find_first_of(" ="));
        if (auto it = workers.find(key); it != workers.end()) {
            *line = key + " = " + it->second;
            workers.erase(it);
        }
    }
    std::vector<std::string> added;
    for (const auto& [key, value] : workers) added.push_back(key + " = " + value);
    lines.insert(header + 1, added.begin(), added.end());
    std::string out;
    for (const auto& l : lines) out += l + "\n";
    return out;
}

std::string fixed_flask_pool(unsigned workers) {
    return example_config(
        {{"mode", "\"fixed\""}, {"count", std::to_string(workers)}, {"max", "16"}});
}

TEST(Gunicorn, ExampleConfigIsValid) {
    auto r = run_command({TUNERD_BINARY, "--check-config", "--config", kExampleConfig});
    EXPECT_EQ(r.exit_status, 0) << r.output;
    EXPECT_NE(r.output.find("app:app"), std::string::npos) << r.output;
}

TEST(Gunicorn, ServesTheExampleRoutesThroughTheFront) {
    REQUIRE_GUNICORN();
    TunerdProcess tunerd({.config = fixed_flask_pool(2)});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    for (const std::string target : {"/", "/health", "/cpu?ms=5", "/io?ms=5"}) {
        auto r = tunerd.get(target);
        ASSERT_TRUE(r.ok()) << target << ": " << r.error().to_string();
        EXPECT_EQ(r->status, 200) << target << ": " << r->body;
    }
    auto io = tunerd.get("/io?ms=5");
    ASSERT_TRUE(io.ok());
    EXPECT_NE(io->body.find("\"io_ms\":5"), std::string::npos) << io->body;
    auto bad = tunerd.get("/cpu?ms=lots");
    ASSERT_TRUE(bad.ok());
    EXPECT_EQ(bad->status, 400) << bad->body;
    // Without a database the route says so, and the worker lives on.
    auto db = tunerd.get("/db");
    ASSERT_TRUE(db.ok());
    EXPECT_EQ(db->status, 503) << db->body;
    EXPECT_NE(db->body.find("no DATABASE_URL"), std::string::npos) << db->body;
    // Each slot is a gunicorn master with its one worker.
    for (pid_t master : tunerd.ready_worker_pids()) {
        EXPECT_EQ(child_pids(master).size(), 1u) << "master " << master;
    }
}

TEST(Gunicorn, ResizeCyclesUnderLoadFailNoRequest) {
    REQUIRE_GUNICORN();
    TunerdProcess tunerd({.config = fixed_flask_pool(1) + "[server]\nmax_queue = 256\n"});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    // POST, which the front never retries: nothing may depend on the retry path.
    auto load = scenario_load(tunerd, "/io?ms=20");
    load.method = "POST";
    const auto r = resize_cycles_under_load(tunerd, load, {1, 8, 2, 6, 1}, 2, 20s);
    EXPECT_TRUE(r.clean()) << r.describe() << "\n" << tunerd.log();
}

TEST(Gunicorn, KillNineOfMasterUnderLoadFailsNoGet) {
    REQUIRE_GUNICORN();
    TunerdProcess tunerd({.config = fixed_flask_pool(3)});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    const auto r = kill_busy_worker_under_load(tunerd, scenario_load(tunerd, "/io?ms=200"),
                                               KillTarget::worker, 30s, 1s);
    EXPECT_TRUE(r.clean()) << r.describe() << "\n" << tunerd.log();
    EXPECT_GE(r.retries, 1) << r.describe();
}

TEST(Gunicorn, KillNineOfMastersWorkerUnderLoadFailsNoGet) {
    REQUIRE_GUNICORN();
    TunerdProcess tunerd({.config = fixed_flask_pool(3)});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    const auto r = kill_busy_worker_under_load(tunerd, scenario_load(tunerd, "/io?ms=200"),
                                               KillTarget::grandchild, 30s, 1s);
    EXPECT_TRUE(r.clean()) << r.describe() << "\n" << tunerd.log();
    EXPECT_GE(r.retries, 1) << r.describe();
    // The master replaced its worker itself: not a crash for tunerd.
    EXPECT_EQ(tunerd.metric("tunerd_worker_crashes_total").value_or(-1), 0);
}

TEST(Gunicorn, AppThatFailsToImportShowsDegradedWithItsTraceback) {
    REQUIRE_GUNICORN();
    // The example's command in a directory whose app.py fails at import, as after a bad deploy:
    // gunicorn's worker cannot boot, so its master exits, again and again.
    TempDir app_dir;
    {
        std::ofstream app(app_dir.path() + "/app.py");
        app << "raise RuntimeError('settings module missing: deploy incomplete')\n";
    }
    auto config = example_config({{"dir", "\"" + app_dir.path() + "\""},
                                  {"mode", "\"fixed\""},
                                  {"count", "1"},
                                  {"startup_timeout", "\"120s\""}});
    TunerdProcess tunerd({.config = config, .wait_ready = false});
    ASSERT_TRUE(tunerd.start().ok()) << tunerd.log();
    const auto health = tunerd.wait_health("degraded", 60s);
    ASSERT_EQ(health["status"], "degraded") << health.dump(2) << "\n" << tunerd.log();
    const auto& crash = health["workers"]["last_crash"];
    EXPECT_NE(crash["exit"].get<std::string>().find("exited with status"), std::string::npos)
        << health.dump(2);
    EXPECT_NE(crash["stderr"].dump().find("deploy incomplete"), std::string::npos)
        << health.dump(2);
}

}  // namespace
}  // namespace tuner::test
