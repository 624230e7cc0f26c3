// Tests for expected<T> and make_error.
#include <catch2/catch.hpp>

#include "config/error.hpp"

using troupe::expected;

TEST_CASE("expected holds a value or an error") {
  expected<int> ok = 3;
  REQUIRE(ok);
  CHECK(*ok == 3);
  expected<int> bad = troupe::make_error("file ", std::string("x.json"), ": field ", 7, " missing");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message == "file x.json: field 7 missing");
  expected<void> v;
  CHECK(v);
  expected<void> e = troupe::error{"boom"};
  CHECK_FALSE(e);
  CHECK(e.error().message == "boom");
}

TEST_CASE("errors can carry a kind for the layers that answer differently") {
  auto e = troupe::make_error_code(troupe::errc::resource_exhausted, "queue full: ", 12, " waiting");
  CHECK(e.code == troupe::errc::resource_exhausted);
  CHECK(e.message == "queue full: 12 waiting");
  CHECK(troupe::make_error("x").code == troupe::errc::unspecified);
}
