// The one table of tuning rules: every rule name that appears in a Decision has a row here with
// the knob it moves, what it does and where its formula comes from (docs/policies.md in detail).
#pragma once

#include <optional>
#include <span>
#include <string_view>

namespace tuner::policies {

struct PolicyInfo {
    std::string_view name;  // the Decision's rule, e.g. "littles_law"
    std::string_view knob;  // the knob it moves (model/knobs.hpp), or the subsystem of several
    std::string_view description;  // when it fires and what it does, one line
    std::string_view source;       // the citation of its formula
};

// Rule names of the worker policies, spelled once (the table and the controller use these).
namespace rule {
inline constexpr std::string_view seed_formula = "seed_formula";
inline constexpr std::string_view fixed = "fixed";
inline constexpr std::string_view littles_law = "littles_law";
inline constexpr std::string_view queue_growth = "queue_growth";
inline constexpr std::string_view cpu_knee = "cpu_knee";
inline constexpr std::string_view scale_down = "scale_down";
inline constexpr std::string_view memory_ceiling = "memory_ceiling";
inline constexpr std::string_view memory_pressure = "memory_pressure";
inline constexpr std::string_view bounds = "bounds";
inline constexpr std::string_view threads_wait_share = "threads_wait_share";
inline constexpr std::string_view threads_cpu_contention = "threads_cpu_contention";
inline constexpr std::string_view manual = "manual";
// The front's compression level (compression_level.hpp).
inline constexpr std::string_view compression_cpu_saturated = "compression_cpu_saturated";
inline constexpr std::string_view compression_headroom = "compression_headroom";
// The front's micro-cache capacity (cache_capacity.hpp).
inline constexpr std::string_view cache_memory_pressure = "cache_memory_pressure";
inline constexpr std::string_view cache_headroom = "cache_headroom";
// Rules of the daemon and the database policies (they spell them in their own files).
inline constexpr std::string_view config_reload = "config_reload";
inline constexpr std::string_view db_pool = "db_pool";
inline constexpr std::string_view db_pool_connections = "db_pool_connections";
inline constexpr std::string_view pgtune_web = "pgtune_web";
inline constexpr std::string_view rollback = "rollback";
}  // namespace rule

// Every rule, in the order docs/policies.md presents them. Adding a rule = its file + one row.
std::span<const PolicyInfo> policy_table();

// The row of a rule, or nullopt when no such rule is registered.
std::optional<PolicyInfo> find_policy(std::string_view name);

}  // namespace tuner::policies
