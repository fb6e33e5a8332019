// Pressure stall information (PSI): /proc/pressure/{cpu,memory,io} or, preferred, the v2
// cgroup's {cpu,memory,io}.pressure. Absent PSI (kernels before 4.20, psi=0) is a normal case.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/result.hpp"
#include "model/snapshot.hpp"
#include "probes/cgroup_discovery.hpp"

namespace tuner::probes {

// "some avg10=0.12 avg60=0.30 avg300=0.05 total=12345\nfull avg10=..." (Documentation/
// accounting/psi.rst). "full" is absent for cpu on kernels before 5.13.
Result<PressureResource> parse_pressure(std::string_view content, const std::string& where);
// A pressure file; std::nullopt when absent.
Result<std::optional<PressureResource>> read_pressure_file(const std::string& path);

// The cgroup's pressure files when `unified` has any, else /proc/pressure; each failed read is
// a problem string and leaves that resource unset.
PressureInfo probe_pressure(const std::string& proc_root,
                            const std::optional<ControllerDir>& unified,
                            std::vector<std::string>& problems);

}  // namespace tuner::probes
