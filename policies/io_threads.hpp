// server.io_threads = "auto": how many threads run the front. The front's work per request is a
// few system calls; the app's is the rest, so the front gets at most half of the cores, and one
// thread on the 1–3 core machines tunerd is made for (a second thread there only takes CPU from
// the workers: measured in docs/benchmarks.md, "Front"). nginx's `worker_processes auto` takes
// one per core because nginx is the whole server there; here the workers are.
#pragma once

namespace tuner::policies {

inline constexpr unsigned kMaxAutoIoThreads = 4;

// `configured` is server.io_threads, 0 meaning "auto"; `effective_cores` from the CPU probe.
[[nodiscard]] unsigned io_threads_for(unsigned configured, unsigned effective_cores);

}  // namespace tuner::policies
