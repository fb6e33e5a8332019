// The [workers] keys with a syntax of their own: command (a command line or an argv array with
// {placeholders}), env (a table of strings) and ports ("20000-20999"). Internal to tuner_config.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "tuner/config/keys.hpp"

namespace tuner::config::detail {

// The placeholders tunerd substitutes in workers.command (DESIGN "Worker pool").
inline const std::vector<std::string_view>& command_placeholders() {
    static const std::vector<std::string_view> names = {"socket", "port", "threads", "worker_id"};
    return names;
}

ConfigKey command_key();
ConfigKey env_key();
ConfigKey ports_key();

}  // namespace tuner::config::detail
