// Fuzz target: the bytes a client sends to the front (server/exchange.hpp), relayed to a
// well-behaved worker. The first byte chooses the setting, the rest is what the client sends:
//   bits 0-1  how much the front gets per read: any, 1, 7 or 64 bytes
//   bit 2     two clients send the same bytes to a worker with one thread (one waits in queue)
//   bits 3-4  the worker answers with Content-Length, chunked (extension and trailer), after a
//             100 Continue, or close-delimited (and closes)
//   bit 5     the worker closes each connection after its answer
//   bit 6     small limits: 512-byte header, 64-byte body (else 16 KB and 4 KB)
//   bit 7     the worker's body is 70 KB (streamed: above kWholeResponseMax) instead of 5 bytes
// The invariants are those of front_harness.hpp.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "tests/fuzz/front_harness.hpp"

namespace {

using namespace tuner::fuzz;

std::string answer(unsigned kind, bool large, const RequestLine& request) {
    const bool head = request.method == "HEAD";
    const std::string body = large ? std::string(70 * 1000, 'x') : std::string("hello");
    const std::string length = "Content-Length: " + std::to_string(body.size()) + "\r\n";
    switch (kind) {
        case 1: {
            std::string raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
            if (head) return raw;
            char size[32];
            std::snprintf(size, sizeof size, "%zx", body.size());
            return raw + size + ";ext=1\r\n" + body + "\r\n0\r\nX-Trailer: t\r\n\r\n";
        }
        case 2:
            return "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n" + length + "\r\n" +
                   (head ? "" : body);
        case 3:
            return "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + (head ? "" : body);
        default:
            return "HTTP/1.1 200 OK\r\n" + length + "\r\n" + (head ? "" : body);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const unsigned flags = data[0];
    static constexpr std::size_t kReadSizes[] = {0, 1, 7, 64};

    FrontRun run;
    run.config = untimed_config();
    const bool small = flags & 0x40;
    run.config.max_header_size_bytes = small ? 512 : 16 * 1024;
    run.config.max_body_size_bytes = small ? 64 : 4096;
    const unsigned kind = (flags >> 3) & 3;
    const bool large = flags & 0x80;
    run.workers->close_after_answer = (flags & 0x20) || kind == 3;
    run.workers->answer = [kind, large](std::size_t, const RequestLine& request) {
        return answer(kind, large, request);
    };

    Client client;
    client.bytes.assign(reinterpret_cast<const char*>(data + 1), size - 1);
    client.read_size = kReadSizes[flags & 3];
    std::vector<Client> clients{client};
    if (flags & 0x04) clients.push_back(client);
    run_front(run, clients);
    return 0;
}
