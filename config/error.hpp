// Error values and expected<T>: how troupe reports expected failures without exceptions across layers.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace troupe {

/// What kind of failure an error is, for layers that must answer differently (the HTTP layer maps
/// them to status codes); most errors need no kind beyond their message.
enum class errc {
  unspecified,
  invalid_argument,    ///< the caller's input is wrong (HTTP 400)
  not_found,           ///< the named thing does not exist (404)
  resource_exhausted,  ///< admission limits reached: try again later (429)
  unavailable,         ///< not ready or shutting down (503)
  internal,            ///< a failure of ours or of the device (500)
};

/// An expected failure: a message that names what was wrong (and where, e.g. the file).
struct error {
  std::string message;
  errc code = errc::unspecified;
};

/// Either a value or an error. A small stand-in for C++23 std::expected that nvcc also accepts.
template <class T>
class expected {
 public:
  expected(T value) : v_(std::move(value)) {}
  expected(troupe::error err) : v_(std::move(err)) {}

  explicit operator bool() const { return v_.index() == 0; }
  bool has_value() const { return v_.index() == 0; }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const troupe::error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, troupe::error> v_;
};

/// expected<void>: success or an error.
template <>
class expected<void> {
 public:
  expected() = default;
  expected(troupe::error err) : err_(std::move(err)), ok_(false) {}
  explicit operator bool() const { return ok_; }
  bool has_value() const { return ok_; }
  const troupe::error& error() const { return err_; }

 private:
  troupe::error err_;
  bool ok_ = true;
};

inline std::string to_text(const std::string& s) { return s; }
inline std::string to_text(std::string_view s) { return std::string(s); }
inline std::string to_text(const char* s) { return s; }
inline std::string to_text(const std::filesystem::path& p) { return p.string(); }
inline std::string to_text(char c) { return std::string(1, c); }
template <class N>
  requires std::is_arithmetic_v<N>
std::string to_text(N n) { return std::to_string(n); }

/// Builds an error from pieces, e.g. make_error("file ", path, ": truncated").
template <class... Ts>
error make_error(Ts&&... parts) {
  std::string s;
  ((s += to_text(std::forward<Ts>(parts))), ...);
  return error{std::move(s)};
}

/// An error of the given kind built from pieces.
template <class... Ts>
error make_error_code(errc code, Ts&&... parts) {
  error e = make_error(std::forward<Ts>(parts)...);
  e.code = code;
  return e;
}

[[noreturn]] inline void check_failed(const char* expr, const char* file, int line) {
  std::fprintf(stderr, "troupe: invariant broken: %s at %s:%d\n", expr, file, line);
  std::abort();
}

}  // namespace troupe

/// Aborts with file:line when an invariant does not hold (bugs, never bad input).
#define TROUPE_CHECK(cond) \
  ((cond) ? (void)0 : ::troupe::check_failed(#cond, __FILE__, __LINE__))
