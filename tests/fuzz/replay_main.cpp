// The main of a fuzz target outside a fuzzing build: runs LLVMFuzzerTestOneInput once on every
// file of the directories (and files) given, so that the checked-in corpus is a regression test
// in the normal build (ctest FuzzCorpus.<target>). An input that crashes aborts the run. Files
// are taken in name order; a directory with no file is an error (a corpus that went missing
// must not pass as an empty success).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);
// Optional in a target, as in libFuzzer.
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc, char*** argv);

namespace {

namespace fs = std::filesystem;

std::vector<std::uint8_t> read_whole(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s <corpus dir or file>...\n", argv[0]);
        return 2;
    }
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    std::size_t total = 0;
    for (int i = 1; i < argc; ++i) {
        const fs::path arg = argv[i];
        std::vector<fs::path> files;
        std::error_code ec;
        if (fs::is_directory(arg, ec)) {
            for (const auto& entry : fs::recursive_directory_iterator(arg, ec)) {
                if (entry.is_regular_file()) files.push_back(entry.path());
            }
            if (files.empty()) {
                std::fprintf(stderr, "%s: no input in %s\n", argv[0], arg.c_str());
                return 1;
            }
        } else if (fs::is_regular_file(arg, ec)) {
            files.push_back(arg);
        } else {
            std::fprintf(stderr, "%s: no such file or directory: %s\n", argv[0], arg.c_str());
            return 1;
        }
        std::sort(files.begin(), files.end());
        for (const auto& file : files) {
            // Named before it runs: when an input crashes, the last name printed is the culprit.
            std::fprintf(stderr, "replay %s\n", file.c_str());
            const auto bytes = read_whole(file);
            LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
            ++total;
        }
    }
    std::printf("%s: %zu inputs replayed without a crash\n", argv[0], total);
    return 0;
}
