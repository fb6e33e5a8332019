// server.io_threads = "auto" (see io_threads.hpp).
#include "policies/io_threads.hpp"

#include <algorithm>

namespace tuner::policies {

unsigned io_threads_for(unsigned configured, unsigned effective_cores) {
    if (configured != 0) return configured;
    return std::clamp(effective_cores / 2, 1u, kMaxAutoIoThreads);
}

}  // namespace tuner::policies
