// What the probes found, as JSON (`tunerctl probe --json`, /health, /performance) and as text
// (`tunerctl probe`): cgroup, CPU, memory, PSI, a process tree and the seed formula's numbers.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "model/snapshot.hpp"
#include "policies/seed_formula.hpp"

namespace tuner::report {

// Each section on its own, so other endpoints can pick what they show.
nlohmann::json cgroup_json(const CgroupInfo& cgroup);
nlohmann::json cpu_json(const CpuInfo& cpu);
nlohmann::json memory_json(const MemoryInfo& memory);
nlohmann::json pressure_json(const PressureInfo& pressure);  // absent resources are null
nlohmann::json process_tree_json(const ProcessTreeSample& tree);
nlohmann::json seed_formula_json(const policies::SeedInputs& in, const policies::SeedResult& out);

// {"cgroup", "cpu", "memory", "pressure", "process", "seed_formula", "problems", "taken_at"}.
nlohmann::json probe_json(const Snapshot& snapshot, const policies::SeedInputs& in,
                          const policies::SeedResult& out);

// The same facts for people: one labelled line (or a few) per section.
std::string probe_text(const Snapshot& snapshot, const policies::SeedResult& seed);

}  // namespace tuner::report
