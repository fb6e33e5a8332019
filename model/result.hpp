// Errors as values: a Result<T> holds either a T or an Error that says what failed and where
// (a file path, a config key with its line, a socket address). Nothing in the control loop throws.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace tuner {

struct Error {
    std::string what;   // what failed, with the offending content quoted: "not a number: \"abc\""
    std::string where;  // the file, key or address it concerns: "/sys/fs/cgroup/cpu.max"

    [[nodiscard]] std::string to_string() const {
        return where.empty() ? what : where + ": " + what;
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

}  // namespace tuner
