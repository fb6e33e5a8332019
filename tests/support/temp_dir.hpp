// A private directory for a test, header-only so that every test target can use it.
#pragma once

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include <stdlib.h>

namespace tuner::test {

// A fresh directory under the system's temporary directory (its real path, so that socket paths
// built from it hold no symlink), removed with everything in it when it goes out of scope; owner
// permissions are restored first, since tests make parts of it read-only.
class TempDir {
public:
    explicit TempDir(const std::string& prefix = "tunerd-test") {
        std::string pattern =
            (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
        if (::mkdtemp(pattern.data()) == nullptr)
            throw std::runtime_error("mkdtemp " + pattern + ": " + std::strerror(errno));
        path_ = std::filesystem::canonical(pattern).string();
    }
    ~TempDir() {
        namespace fs = std::filesystem;
        std::error_code ec;
        ::chmod(path_.c_str(), 0700);
        for (auto it = fs::recursive_directory_iterator(path_, ec);
             !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
            if (it->is_directory(ec)) ::chmod(it->path().c_str(), 0700);
        }
        fs::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    [[nodiscard]] const std::string& path() const { return path_; }
    // The path of <dir>/<relative>.
    [[nodiscard]] std::string file(const std::string& relative) const {
        return path_ + "/" + relative;
    }
    // Writes `content` to <dir>/<relative>, creating the folders on the way; returns its path.
    std::string write(const std::string& relative, const std::string& content) const {
        const std::filesystem::path file = std::filesystem::path(path_) / relative;
        std::filesystem::create_directories(file.parent_path());
        std::ofstream(file) << content;
        return file.string();
    }
    void remove(const std::string& relative) const {
        std::filesystem::remove(std::filesystem::path(path_) / relative);
    }

private:
    std::string path_;
};

}  // namespace tuner::test
