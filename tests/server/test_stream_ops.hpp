// How the front's session steps cancel and close a beast::test::stream (for the unit tests and
// the front's fuzz targets, which run the steps over test streams).
#pragma once

#include <boost/beast/_experimental/test/stream.hpp>

#include "server/exchange.hpp"

namespace tuner::server {

// The test streams have no cancel: ending our input (close_remote) ends a pending read, which is
// what a deadline needs, and leaves the stream writable (a 408 can still go out); a parked test
// connection is never found closed by a look.
template <>
struct StreamOps<boost::beast::test::stream> {
    static void cancel(boost::beast::test::stream& s) { s.close_remote(); }
    static void shutdown_send(boost::beast::test::stream& s) { s.close(); }
    static void close(boost::beast::test::stream& s) { s.close(); }
    static bool peer_done(boost::beast::test::stream&) { return false; }
    // A test stream takes a write at once (up to its write_size: the rest then goes out
    // asynchronously), or fails it as the test injected.
    template <class ConstBuffers>
    static std::size_t write_now(boost::beast::test::stream& s, const ConstBuffers& buffers,
                                 boost::system::error_code& ec) {
        return s.write_some(buffers, ec);
    }
};

}  // namespace tuner::server
