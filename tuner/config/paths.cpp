// Where tunerd finds its config and keeps its state (see load.hpp).
#include <pwd.h>
#include <unistd.h>

#include <string>
#include <string_view>

#include "tuner/config/load.hpp"

namespace tuner::config {
namespace {

std::string home_directory(const std::function<const char*(const char*)>& getenv_fn) {
    const char* home = getenv_fn("HOME");
    if (home != nullptr && *home != '\0') return home;
    // A service started without HOME (some init systems) still has a passwd entry.
    if (const passwd* entry = ::getpwuid(::geteuid());
        entry != nullptr && entry->pw_dir != nullptr) {
        return entry->pw_dir;
    }
    return "/tmp/tunerd-" + std::to_string(::geteuid());
}

}  // namespace

std::string default_config_path() {
    return "/etc/tunerd/tunerd.toml";
}

std::string resolve_state_dir(const StateConfig& state,
                              const std::function<const char*(const char*)>& getenv_fn,
                              bool is_root) {
    if (!state.dir.empty()) return state.dir;
    // systemd's StateDirectory= sets $STATE_DIRECTORY, colon-separated when it names several.
    if (const char* from_systemd = getenv_fn("STATE_DIRECTORY"); from_systemd != nullptr) {
        const std::string_view listed(from_systemd);
        const auto first = listed.substr(0, listed.find(':'));
        if (!first.empty()) return std::string(first);
    }
    if (is_root) return "/var/lib/tunerd";
    // XDG Base Directory: per-user state lives under ~/.local/state.
    return home_directory(getenv_fn) + "/.local/state/tunerd";
}

}  // namespace tuner::config
