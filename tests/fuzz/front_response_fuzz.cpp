// Fuzz target: the bytes a worker answers the front with (server/exchange.hpp), for a few fixed
// client scenarios. The first byte chooses the setting, the rest are the workers' answers, one
// per request they receive, separated by NUL bytes (requests beyond them get a plain 200):
//   bits 0-2  what the client sends: two pipelined GETs; HEAD then GET; a POST with
//             Content-Length then GET; an HTTP/1.0 GET; a chunked POST then GET; a POST with
//             Expect: 100-continue; OPTIONS then DELETE; three GETs, the first two of one
//             target (the micro-cache is on: a storable first answer answers the second)
//   bit 3     the worker closes each connection after its answer
//   bit 4     the first connect to the worker is refused
//   bits 5-6  how much the front gets per read from the worker: any, 1, 7 or 64 bytes
//   bit 7     the front gets the client's bytes one at a time
// The invariants are those of front_harness.hpp; a response cut short by the worker may end
// what the client receives.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tests/fuzz/front_harness.hpp"

namespace {

using namespace tuner::fuzz;

constexpr const char* kScenarios[] = {
    "GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\n\r\n",
    "HEAD /a HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\n\r\n",
    "POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nbody"
    "GET /b HTTP/1.1\r\nHost: t\r\n\r\n",
    "GET /a HTTP/1.0\r\n\r\n",
    "POST /a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n\r\n"
    "GET /b HTTP/1.1\r\nHost: t\r\n\r\n",
    "POST /a HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody",
    "OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\nDELETE /b HTTP/1.1\r\nHost: t\r\n\r\n",
    "GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /a HTTP/1.1\r\nHost: t\r\n\r\n"
    "GET /c HTTP/1.1\r\nHost: t\r\n\r\n",
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const unsigned flags = data[0];
    static constexpr std::size_t kReadSizes[] = {0, 1, 7, 64};
    const auto parts = split_parts(as_text(data + 1, size - 1), 16);
    std::vector<std::string> answers(parts.begin(), parts.end());

    FrontRun run;
    run.config = untimed_config();
    run.config.max_body_size_bytes = 4096;
    // The micro-cache reads the workers' Cache-Control, Expires, Date, Age and Vary.
    run.config.cache.size_bytes = 1 << 20;
    run.config.cache.max_entry_size_bytes = 8192;
    run.upstream_read_size = kReadSizes[(flags >> 5) & 3];
    run.workers->close_after_answer = flags & 0x08;
    run.workers->refuse_connects = (flags & 0x10) ? 1 : 0;
    run.workers->answer = [answers](std::size_t n, const RequestLine& request) {
        if (n < answers.size()) return answers[n];
        return std::string(request.method == "HEAD"
                               ? "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
                               : "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    };

    Client client;
    client.bytes = kScenarios[flags & 7];
    client.read_size = (flags & 0x80) ? 1 : 0;
    run_front(run, {client}, /*may_end_cut=*/true);
    return 0;
}
