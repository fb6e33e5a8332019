// postgres-state.json: load, atomic save, lock (see state.hpp).
#include "tuner/postgres/state.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tuner/postgres/values.hpp"

namespace tuner::postgres {
namespace {

constexpr int kFormat = 1;

std::string errno_text(const std::string& what) {
    return what + ": " + std::strerror(errno);
}

std::string join(const std::string& dir, const char* name) {
    if (dir.empty() || dir.back() == '/') return dir + name;
    return dir + "/" + name;
}

}  // namespace

std::string postgres_state_path(const std::string& state_dir) {
    return join(state_dir, "postgres-state.json");
}

std::string postgres_snippet_path(const std::string& state_dir) {
    return join(state_dir, "postgres-tunerd.conf");
}

Result<PostgresState> load_postgres_state(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        if (errno == ENOENT) return PostgresState{};
        return make_error(path, errno_text("cannot read"));
    }
    std::stringstream buffer;
    buffer << in.rdbuf();
    const std::string text = buffer.str();
    const auto json = nlohmann::json::parse(text, nullptr, false);
    if (json.is_discarded() || !json.is_object())
        return make_error(path,
                          "not a JSON object (tunerd's PostgreSQL state is damaged; "
                          "compare postgresql.auto.conf by hand before removing it)");
    PostgresState state;
    try {
        if (json.value("format", 0) != kFormat)
            return make_error(path,
                              "unknown format " + json.value("format", nlohmann::json{}).dump());
        if (json.contains("rolled_back_at_ms") && !json["rolled_back_at_ms"].is_null()) {
            state.rolled_back_at = WallClock::time_point(
                std::chrono::milliseconds(json["rolled_back_at_ms"].get<std::int64_t>()));
        }
        for (const auto& [name, entry] : json.at("settings").items()) {
            // A name goes into ALTER SYSTEM unquoted (it takes no parameters): a file that holds
            // anything but a setting name was not written by tunerd, and nothing in it is used.
            if (!is_setting_name(name)) {
                return make_error(
                    path, "setting name " +
                              nlohmann::json(name).dump(-1, ' ', false,
                                                        nlohmann::json::error_handler_t::replace) +
                              " is not a PostgreSQL setting name (letters, digits, '_' and '.'); "
                              "refusing the whole file: it was not written by tunerd");
            }
            SettingRecord record;
            record.original = entry.at("original").get<std::string>();
            record.original_in_auto_conf = entry.at("original_in_auto_conf").get<bool>();
            if (entry.contains("last_applied") && !entry["last_applied"].is_null())
                record.last_applied = entry["last_applied"].get<std::string>();
            state.settings[name] = std::move(record);
        }
    } catch (const nlohmann::json::exception& e) {
        return make_error(path, std::string("malformed state: ") + e.what());
    }
    return state;
}

Status save_postgres_state(const std::string& path, const PostgresState& state) {
    nlohmann::json json;
    json["format"] = kFormat;
    json["rolled_back_at_ms"] =
        state.rolled_back_at ? nlohmann::json(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                  state.rolled_back_at->time_since_epoch())
                                                  .count())
                             : nlohmann::json(nullptr);
    json["settings"] = nlohmann::json::object();
    for (const auto& [name, record] : state.settings) {
        json["settings"][name] = {
            {"original", record.original},
            {"original_in_auto_conf", record.original_in_auto_conf},
            {"last_applied",
             record.last_applied ? nlohmann::json(*record.last_applied) : nlohmann::json(nullptr)}};
    }
    return write_file_atomically(path, json.dump(2) + "\n");
}

Status write_file_atomically(const std::string& path, const std::string& content) {
    const std::string tmp = path + ".tmp." + std::to_string(::getpid());
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return make_error(tmp, errno_text("cannot create"));
    std::size_t written = 0;
    while (written < content.size()) {
        const ssize_t n = ::write(fd, content.data() + written, content.size() - written);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            const Error e = make_error(tmp, errno_text("cannot write"));
            ::close(fd);
            ::unlink(tmp.c_str());
            return e;
        }
        written += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
        const Error e = make_error(tmp, errno_text("cannot flush"));
        ::unlink(tmp.c_str());
        return e;
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const Error e = make_error(path, errno_text("cannot replace"));
        ::unlink(tmp.c_str());
        return e;
    }
    return {};
}

Result<StateLock> StateLock::acquire(const std::string& state_dir) {
    const std::string path = join(state_dir, "postgres-state.lock");
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return make_error(path, errno_text("cannot open lock file"));
    while (::flock(fd, LOCK_EX) != 0) {
        if (errno == EINTR) continue;
        const Error e = make_error(path, errno_text("cannot lock"));
        ::close(fd);
        return e;
    }
    return StateLock(fd);
}

StateLock::StateLock(StateLock&& other) noexcept : fd_(other.fd_) {
    other.fd_ = -1;
}

StateLock::~StateLock() {
    if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

}  // namespace tuner::postgres
