// Fuzz target: the shared parsers of kernel text formats (probes/text_parse.hpp). The input is
// "<key>\0<content>" (without a NUL: the content, with the key "key"); every parser gets the
// content, the keyed ones look for the key. What must hold: no crash; quote() stays short;
// trim() returns a part of its input; a CPU list counts at least one CPU.
#include <cstddef>
#include <cstdint>
#include <string>

#include "probes/text_parse.hpp"
#include "tests/fuzz/fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace tuner::probes;
    const auto parts = tuner::fuzz::split_parts(tuner::fuzz::as_text(data, size), 2);
    const std::string_view key = parts.size() == 2 ? parts[0] : std::string_view("key");
    const std::string_view content = parts.back();
    const std::string where = "fuzz";

    // 120 characters, each at most 2 once escaped, the quotes and an ellipsis.
    FUZZ_CHECK(quote(content).size() <= 2 * 120 + 2 + 3, "quote() is not bounded");
    const std::string_view trimmed = trim(content);
    FUZZ_CHECK(
        trimmed.empty() || (trimmed.data() >= content.data() &&
                            trimmed.data() + trimmed.size() <= content.data() + content.size()),
        "trim() left its input");
    (void)parse_u64(content, where);
    (void)parse_i64(content, where);
    (void)parse_double(content, where);
    (void)parse_single_u64(content, where);
    (void)find_keyed_u64(content, key, where);
    (void)find_kb_field_bytes(content, key, where);
    if (const auto cpus = count_cpu_list(content, where)) {
        FUZZ_CHECK(*cpus >= 1, "a CPU list of no CPU");
    }
    return 0;
}
