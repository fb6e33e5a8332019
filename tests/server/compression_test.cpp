// [compression]'s pure parts (server/compression.hpp): Accept-Encoding negotiation (RFC 9110
// §12.5.3), media type patterns, which responses are compressed, the levels in use, and the
// encoders, checked by decoding with zlib's and brotli's own decoders.
#include "server/compression.hpp"

#include <cstdio>
#include <string>

#include <gtest/gtest.h>

#include "server/demo/demo_worker.hpp"
#include "tests/support/decode.hpp"

namespace tuner::server {
namespace {

Coding negotiate(std::string_view header) {
    return negotiate_coding(header);
}

TEST(AcceptEncoding, NoFieldMeansNoCompression) {
    EXPECT_EQ(negotiate_coding(std::nullopt), Coding::identity);
    EXPECT_EQ(negotiate(""), Coding::identity) << "an empty field: identity only";
}

TEST(AcceptEncoding, PicksTheOnlyCodingListed) {
    EXPECT_EQ(negotiate("gzip"), Coding::gzip);
    EXPECT_EQ(negotiate("br"), Coding::br);
    EXPECT_EQ(negotiate("x-gzip"), Coding::gzip) << "RFC 9110 §8.4.1.3";
    EXPECT_EQ(negotiate("deflate"), Coding::identity);
    EXPECT_EQ(negotiate("identity"), Coding::identity);
}

TEST(AcceptEncoding, PrefersBrotliAtEqualQAndFollowsQValues) {
    EXPECT_EQ(negotiate("gzip, deflate, br"), Coding::br);
    EXPECT_EQ(negotiate("br;q=1, gzip;q=0.8"), Coding::br);
    EXPECT_EQ(negotiate("br;q=0.5, gzip;q=0.9"), Coding::gzip);
    EXPECT_EQ(negotiate("gzip;q=0.5, br;q=0.5"), Coding::br);
    EXPECT_EQ(negotiate("gzip;q=0.001, br;q=0"), Coding::gzip);
}

TEST(AcceptEncoding, QZeroMeansNotAcceptable) {
    EXPECT_EQ(negotiate("gzip;q=0"), Coding::identity);
    EXPECT_EQ(negotiate("br;q=0, gzip"), Coding::gzip);
    EXPECT_EQ(negotiate("*;q=0"), Coding::identity);
    EXPECT_EQ(negotiate("gzip;q=0.000"), Coding::identity);
}

TEST(AcceptEncoding, StarCoversWhatIsNotListed) {
    EXPECT_EQ(negotiate("*"), Coding::br);
    EXPECT_EQ(negotiate("br;q=0, *"), Coding::gzip);
    EXPECT_EQ(negotiate("*;q=0.5, gzip"), Coding::gzip);
    EXPECT_EQ(negotiate("identity;q=0, *;q=0.1"), Coding::br);
}

TEST(AcceptEncoding, IdentityPreferredByQWins) {
    EXPECT_EQ(negotiate("gzip;q=0.5, identity"), Coding::identity);
    EXPECT_EQ(negotiate("gzip;q=0.5, identity;q=0.5"), Coding::gzip) << "a tie compresses";
    EXPECT_EQ(negotiate("gzip, identity;q=0"), Coding::gzip);
    EXPECT_EQ(negotiate("identity;q=0"), Coding::identity) << "nothing else: sent as it is";
}

TEST(AcceptEncoding, CaseAndWhitespaceDoNotMatter) {
    EXPECT_EQ(negotiate("  GZIP ; Q=0.7 ,\tBr ;q=0.2 "), Coding::gzip);
    EXPECT_EQ(negotiate("Br"), Coding::br);
    EXPECT_EQ(negotiate(",, ,gzip,,"), Coding::gzip) << "empty list elements are allowed";
}

TEST(AcceptEncoding, MalformedElementsAreIgnored) {
    EXPECT_EQ(negotiate("br;q=2, gzip"), Coding::gzip) << "q above 1";
    EXPECT_EQ(negotiate("br;q=0.5x, gzip;q=0.1"), Coding::gzip);
    EXPECT_EQ(negotiate("br;q=1.5, gzip;q=0.1"), Coding::gzip);
    EXPECT_EQ(negotiate("br;q=0.12345"), Coding::identity) << "more than 3 decimals";
    EXPECT_EQ(negotiate("br;q=, gzip"), Coding::gzip);
    EXPECT_EQ(negotiate("b r, gzip"), Coding::gzip) << "not a token";
    EXPECT_EQ(negotiate("\"br\", gzip;q=0.3"), Coding::gzip);
    EXPECT_EQ(negotiate("br;level=5"), Coding::br) << "an unknown parameter is not a weight";
    EXPECT_EQ(negotiate(std::string("gz\0ip", 5)), Coding::identity);
}

TEST(AcceptEncoding, TheFirstMentionOfACodingCounts) {
    EXPECT_EQ(negotiate("br;q=0, br;q=1, gzip;q=0.2"), Coding::gzip);
}

TEST(AcceptEncoding, WorkIsBoundedByTheElementCap) {
    // A coding listed after kMaxAcceptEncodingElements elements is never looked at.
    std::string header;
    for (std::size_t i = 0; i < kMaxAcceptEncodingElements; ++i)
        header += "x" + std::to_string(i) + ",";
    EXPECT_EQ(negotiate(header + "gzip"), Coding::identity);
    EXPECT_EQ(negotiate(std::string(100000, ',') + "gzip"), Coding::gzip)
        << "empty elements cost nothing but the scan";
}

TEST(TypePattern, ValidatesTheThreeForms) {
    EXPECT_FALSE(type_pattern_problem("text/*"));
    EXPECT_FALSE(type_pattern_problem("application/json"));
    EXPECT_FALSE(type_pattern_problem("application/*+json"));
    EXPECT_FALSE(type_pattern_problem("image/svg+xml"));
    EXPECT_TRUE(type_pattern_problem("json"));
    EXPECT_TRUE(type_pattern_problem("*/*"));
    EXPECT_TRUE(type_pattern_problem("text/"));
    EXPECT_TRUE(type_pattern_problem("application/js*n"));
    EXPECT_TRUE(type_pattern_problem("application/*+"));
    EXPECT_TRUE(type_pattern_problem("text/html; charset=utf-8"));
}

TEST(TypePattern, MatchesTheMediaTypeWithoutItsParameters) {
    const std::vector<std::string> types = CompressionConfig{}.types;
    EXPECT_TRUE(type_matches(types, "text/html; charset=utf-8"));
    EXPECT_TRUE(type_matches(types, "Text/CSS"));
    EXPECT_TRUE(type_matches(types, "application/json"));
    EXPECT_TRUE(type_matches(types, "application/problem+json"));
    EXPECT_TRUE(type_matches(types, "application/atom+xml;charset=utf-8"));
    EXPECT_TRUE(type_matches(types, "image/svg+xml"));
    EXPECT_FALSE(type_matches(types, "image/png"));
    EXPECT_FALSE(type_matches(types, "application/octet-stream"));
    EXPECT_FALSE(type_matches(types, "application/+json")) << "a suffix needs a name before it";
    EXPECT_FALSE(type_matches(types, ""));
    EXPECT_FALSE(type_matches(types, "text"));
}

ResponseFacts json_response(std::optional<std::uint64_t> length = 4096) {
    ResponseFacts r;
    r.content_type = "application/json";
    r.content_length = length;
    return r;
}

TEST(CompressionPlan, CompressesAJsonResponseForAClientThatAccepts) {
    const CompressionConfig config;
    const auto plan = plan_compression(config, json_response(), Coding::gzip);
    EXPECT_TRUE(plan.vary);
    EXPECT_EQ(plan.coding, Coding::gzip);
    EXPECT_EQ(plan_compression(config, json_response(std::nullopt), Coding::br).coding, Coding::br)
        << "an unknown length (streamed) is compressed";
}

TEST(CompressionPlan, VariesButStaysPlainForAClientThatDoesNotAccept) {
    const auto plan = plan_compression({}, json_response(), Coding::identity);
    EXPECT_TRUE(plan.vary);
    EXPECT_EQ(plan.coding, Coding::identity);
}

TEST(CompressionPlan, LeavesAloneWhatMustNotBeCompressed) {
    const CompressionConfig config;
    auto check = [&](ResponseFacts r, const char* why) {
        const auto plan = plan_compression(config, r, Coding::gzip);
        EXPECT_EQ(plan.coding, Coding::identity) << why;
        EXPECT_FALSE(plan.vary) << why;
    };
    auto r = json_response();
    r.content_encoding = "gzip";
    check(r, "encoded by the app already");
    r = json_response();
    r.content_range = true;
    check(r, "a range");
    r = json_response();
    r.status = 206;
    check(r, "206");
    r.status = 204;
    check(r, "204");
    r.status = 304;
    check(r, "304");
    r.status = 404;
    check(r, "not a 2xx");
    r = json_response(1023);
    check(r, "below min_size");
    r = json_response();
    r.content_type = "image/png";
    check(r, "not a listed type");
    r.content_type = "";
    check(r, "no type");
    r = json_response();
    r.cache_control = "public, No-Transform, max-age=60";
    check(r, "Cache-Control: no-transform");
    CompressionConfig off;
    off.enabled = false;
    EXPECT_FALSE(plan_compression(off, json_response(), Coding::gzip).vary) << "disabled";
}

TEST(CompressionPlan, OtherSuccessfulStatusesWithContentAreCompressed) {
    auto r = json_response();
    r.status = 201;
    EXPECT_EQ(plan_compression({}, r, Coding::gzip).coding, Coding::gzip);
    r.head = true;
    r.status = 200;
    EXPECT_EQ(plan_compression({}, r, Coding::gzip).coding, Coding::gzip)
        << "a HEAD gets the header its GET would";
}

TEST(CompressionLevels, TheTunedLevelIsCappedAndBrotliFollowsItDown) {
    CompressionConfig config;  // gzip 6, brotli 4
    EXPECT_EQ(effective_levels(config, std::nullopt).gzip, 6u);
    EXPECT_EQ(effective_levels(config, std::nullopt).brotli, 4u);
    EXPECT_EQ(effective_levels(config, 5).gzip, 5u);
    EXPECT_EQ(effective_levels(config, 5).brotli, 3u);
    EXPECT_EQ(effective_levels(config, 1).brotli, 1u) << "brotli's floor is 1";
    EXPECT_EQ(effective_levels(config, 9).gzip, 6u) << "the configured level is the ceiling";
    config.brotli_level = 0;
    EXPECT_EQ(effective_levels(config, 3).brotli, 0u);
}

std::string payload(std::size_t n) {
    std::string s(n, '\0');
    demo::demo_payload(0, s);
    return s;
}

class EncoderRoundTrip : public ::testing::TestWithParam<Coding> {};

TEST_P(EncoderRoundTrip, WholeBodyDecodesToTheInputAndIsCounted) {
    CompressionCounters counters;
    const std::string input = payload(100000);
    std::string out;
    {
        auto encoder =
            Encoder::make(GetParam(), GetParam() == Coding::gzip ? 6 : 4, input.size(), counters);
        ASSERT_TRUE(encoder);
        EXPECT_EQ(counters.encoders.load(), 1);
        EXPECT_GT(counters.memory_bytes.load(), 0);
        ASSERT_TRUE(encoder->encode(input, Flush::finish, out));
        EXPECT_TRUE(encoder->finished());
    }
    EXPECT_EQ(counters.encoders.load(), 0);
    EXPECT_EQ(counters.memory_bytes.load(), 0) << "every byte given back";
    const auto decoded = test::decode_body(to_string(GetParam()), out);
    ASSERT_TRUE(decoded) << decoded.error().to_string();
    EXPECT_TRUE(*decoded == input) << decoded->size() << " bytes decoded";
    const auto stats = read_counters(counters);
    const auto& per = GetParam() == Coding::gzip ? stats.gzip : stats.br;
    EXPECT_EQ(per.responses, 1u);
    EXPECT_EQ(per.bytes_in, input.size());
    EXPECT_EQ(per.bytes_out, out.size());
    EXPECT_LT(out.size() * 4, input.size()) << "the demo payload compresses well";
    EXPECT_GT(per.cpu_seconds, 0.0);
}

TEST_P(EncoderRoundTrip, SyncFlushMakesEverythingSoFarDecodable) {
    CompressionCounters counters;
    auto encoder = Encoder::make(GetParam(), 6, std::nullopt, counters);
    ASSERT_TRUE(encoder);
    const std::string first = payload(3000);
    std::string out;
    ASSERT_TRUE(encoder->encode(first, Flush::sync, out));
    // The bytes so far decode to the first piece, though the stream has not ended.
    std::string seen;
    (void)test::decode_stream(to_string(GetParam()), out, [&](std::string_view piece) {
        seen.append(piece);
        return true;
    });
    EXPECT_TRUE(seen == first) << seen.size() << " bytes decodable after the flush";
    ASSERT_TRUE(encoder->encode(first, Flush::none, out));
    ASSERT_TRUE(encoder->encode({}, Flush::finish, out));
    const auto decoded = test::decode_body(to_string(GetParam()), out);
    ASSERT_TRUE(decoded) << decoded.error().to_string();
    EXPECT_TRUE(*decoded == first + first);
}

TEST_P(EncoderRoundTrip, EveryLevelRoundTrips) {
    const std::string input = payload(20000);
    const unsigned top = GetParam() == Coding::gzip ? 9 : 11;
    for (unsigned level = GetParam() == Coding::gzip ? 1 : 0; level <= top; ++level) {
        CompressionCounters counters;
        auto encoder = Encoder::make(GetParam(), level, std::nullopt, counters);
        ASSERT_TRUE(encoder);
        std::string out;
        ASSERT_TRUE(encoder->encode(input, Flush::finish, out)) << level;
        EXPECT_TRUE(test::decode_body(to_string(GetParam()), out).value_or("") == input) << level;
    }
}

TEST_P(EncoderRoundTrip, MemoryPerStreamIsBounded) {
    // docs/configuration.md quotes these: gzip ~256 KB at most, brotli 4 in the same range.
    const auto big =
        encoder_memory_bytes(GetParam(), GetParam() == Coding::gzip ? 6 : 4, std::nullopt);
    const auto small = encoder_memory_bytes(GetParam(), GetParam() == Coding::gzip ? 6 : 4, 2000);
    std::printf("[ measured ] %s: %lld bytes per stream, %lld for a 2 KB response\n",
                to_string(GetParam()), static_cast<long long>(big), static_cast<long long>(small));
    EXPECT_GT(big, 0);
    // zlib: 128 KB window + 128 KB hash at windowBits 15, memLevel 8; brotli 1.0.9 at quality 4
    // and lgwin 18: 256 KB ring buffer and its hash tables, about 2 MB.
    EXPECT_LE(big, GetParam() == Coding::gzip ? 300 * 1024 : 2200 * 1024);
    EXPECT_LT(small, big) << "a short response gets a smaller window";
}

INSTANTIATE_TEST_SUITE_P(Codings, EncoderRoundTrip, ::testing::Values(Coding::gzip, Coding::br),
                         [](const auto& info) { return std::string(to_string(info.param)); });

}  // namespace
}  // namespace tuner::server
