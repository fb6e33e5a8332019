// Logging as DESIGN says: spdlog to stderr, one line per event with key=value fields. Under
// journald (JOURNAL_STREAM names our stderr) lines carry no timestamp but a <N> priority
// prefix, which journald turns into the entry's priority.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "model/log_text.hpp"  // log_quote

namespace tuner {

// True when stderr is the journal stream systemd gave us.
bool stderr_is_journal();

// Sets up the default logger; `level` is one of trace, debug, info, warn, error, critical, off.
void setup_logging(std::string_view level);

// Changes the level of the running logger (config reload); false for an unknown name.
bool set_log_level(std::string_view level);

}  // namespace tuner
