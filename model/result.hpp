// Errors as values: a Result<T> holds either a T or an Error that says what failed and where
// (a file path, a config key with its line, a socket address). Nothing in the control loop throws.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace tuner {

struct Error {
    std::string what;   // what failed, with the offending content quoted: "not a number: \"abc\""
    std::string where;  // the file, key or address it concerns: "/sys/fs/cgroup/cpu.max"
    int code = 0;       // errno of the system call that failed; 0 when none did

    [[nodiscard]] std::string to_string() const {
        return where.empty() ? what : where + ": " + what;
    }

    // The same error as a caller sees it (oomd's SystemMaybe context): what the caller was doing
    // goes in front of `what`; `where` and `code` stay, so nothing is rebuilt from text.
    [[nodiscard]] Error context(std::string_view doing) const {
        Error e = *this;
        e.what = std::string(doing) + ": " + what;
        return e;
    }
    // The same error placed where the caller names it (a config key for an address it parsed);
    // an inner place is kept after it.
    [[nodiscard]] Error at(std::string_view outer) const {
        Error e = *this;
        e.where = where.empty() ? std::string(outer) : std::string(outer) + " (" + where + ")";
        return e;
    }
};

template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : data_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
    Result(Error error) : data_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

    [[nodiscard]] bool ok() const { return std::holds_alternative<T>(data_); }
    explicit operator bool() const { return ok(); }

    T& value() & { return std::get<T>(data_); }
    const T& value() const& { return std::get<T>(data_); }
    T&& value() && { return std::get<T>(std::move(data_)); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    [[nodiscard]] const Error& error() const { return std::get<Error>(data_); }

    template <typename U>
    [[nodiscard]] T value_or(U&& fallback) const& {
        return ok() ? value() : static_cast<T>(std::forward<U>(fallback));
    }

private:
    std::variant<T, Error> data_;
};

// Result<void>: success or an Error.
template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error error) : error_(std::move(error)), failed_(true) {}  // NOLINT

    [[nodiscard]] bool ok() const { return !failed_; }
    explicit operator bool() const { return ok(); }
    [[nodiscard]] const Error& error() const { return error_; }

private:
    Error error_;
    bool failed_ = false;
};

using Status = Result<void>;

inline Error make_error(std::string where, std::string what) {
    return Error{std::move(what), std::move(where)};
}

// A failed system call: `doing` (may be empty) and the errno's text, keeping the errno.
inline Error system_error(std::string where, std::string_view doing, int code = errno) {
    std::string what = std::strerror(code);
    if (!doing.empty()) what = std::string(doing) + ": " + what;
    return Error{std::move(what), std::move(where), code};
}

}  // namespace tuner
