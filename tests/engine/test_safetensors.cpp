// Tests for safetensors reading and weight_store: the bundled model, F32/F16/BF16, shards with an
// index, and broken files that must give errors naming the file and the problem.
#include <catch2/catch.hpp>

#include "engine/model/weight_store.hpp"
#include "tests/data/safetensors_writer.hpp"

namespace fs = std::filesystem;
using namespace troupe::engine;
using namespace troupe::testing;
using troupe::kernels::dtype;

namespace {

/// The error of opening DIR (empty when it opens).
std::string open_error(const fs::path& dir) {
  auto s = weight_store::open(dir);
  return s ? std::string() : s.error().message;
}

/// The error of a model folder whose model.safetensors holds BYTES.
std::string file_error(const std::string& bytes) {
  temp_dir d;
  d.write("model.safetensors", bytes);
  return open_error(d.path);
}

std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  const std::string& offsets) {
  return "\"" + name + "\": {\"dtype\": \"" + dtype + "\", \"shape\": " + shape +
         ", \"data_offsets\": " + offsets + "}";
}

float f32_at(const tensor_view& v, size_t i) {
  float f;
  std::memcpy(&f, v.data + 4 * i, 4);
  return f;
}

}  // namespace

TEST_CASE("the bundled stories260k weights map with exact shapes and values") {
  auto s = weight_store::open(TROUPE_DEFAULT_MODEL);
  INFO((s ? std::string() : s.error().message));
  REQUIRE(s);
  const weight_store& w = **s;
  CHECK(w.file_count() == 1);
  CHECK(w.tensors().size() == 2 + 5 * 9);  // embeddings, final norm, 9 per layer (tied: no lm_head)
  auto emb = w.get("model.embed_tokens.weight", {512, 64});
  REQUIRE(emb);
  CHECK((*emb)->type == dtype::f32);
  CHECK((*emb)->nbytes == 512 * 64 * 4);
  CHECK((*emb)->numel() == 512 * 64);
  CHECK((*emb)->file == fs::path(TROUPE_DEFAULT_MODEL) / "model.safetensors");
  const tensor_view* k = w.find("model.layers.4.self_attn.k_proj.weight");
  REQUIRE(k);
  CHECK(k->shape == std::vector<int64_t>{32, 64});
  CHECK(w.find("lm_head.weight") == nullptr);
  auto wrong = w.get("model.norm.weight", {65});
  REQUIRE_FALSE(wrong);
  CHECK_THAT(wrong.error().message, Catch::Contains("model.safetensors") &&
                                        Catch::Contains("model.norm.weight") &&
                                        Catch::Contains("[64]") && Catch::Contains("[65]"));
  auto missing = w.get("lm_head.weight", {512, 64});
  REQUIRE_FALSE(missing);
  CHECK_THAT(missing.error().message,
             Catch::Contains("lm_head.weight") && Catch::Contains("missing"));
}

TEST_CASE("F32, F16 and BF16 tensors read back exactly") {
  temp_dir d;
  d.write("model.safetensors",
          safetensors_file({{"a", "F32", {2, 2}, f32_bytes({1.5f, -2.0f, 0.25f, 1e6f})},
                            {"h", "F16", {3}, u16_bytes({0x3C00, 0xC000, 0x3800})},
                            {"b", "BF16", {1, 2}, u16_bytes({0x3F80, 0xC0A0})},
                            {"scalar", "F32", {}, f32_bytes({7.0f})},
                            {"empty", "F16", {0, 4}, ""}}));
  auto s = weight_store::open(d.path);
  INFO((s ? std::string() : s.error().message));
  REQUIRE(s);
  const weight_store& w = **s;
  REQUIRE(w.tensors().size() == 5);
  CHECK(w.tensors()[0].name == "a");  // header order
  auto a = w.get("a", {2, 2});
  REQUIRE(a);
  CHECK(f32_at(**a, 0) == 1.5f);
  CHECK(f32_at(**a, 3) == 1e6f);
  float out[3];
  const tensor_view* h = w.find("h");
  REQUIRE(h);
  CHECK(h->type == dtype::f16);
  troupe::kernels::to_float(h->type, h->data, out, 3);
  CHECK(out[0] == 1.0f);
  CHECK(out[1] == -2.0f);
  CHECK(out[2] == 0.5f);
  const tensor_view* b = w.find("b");
  REQUIRE(b);
  CHECK(b->type == dtype::bf16);
  CHECK(b->nbytes == 4);
  troupe::kernels::to_float(b->type, b->data, out, 2);
  CHECK(out[0] == 1.0f);
  CHECK(out[1] == -5.0f);
  const tensor_view* sc = w.find("scalar");
  REQUIRE(sc);
  CHECK(sc->shape.empty());
  CHECK(sc->numel() == 1);
  CHECK(f32_at(*sc, 0) == 7.0f);
  const tensor_view* e = w.find("empty");
  REQUIRE(e);
  CHECK(e->nbytes == 0);
  CHECK(e->numel() == 0);
  CHECK(w.find("__metadata__") == nullptr);
}

TEST_CASE("sharded weights: each shard mapped once, tensors found through the index") {
  temp_dir d;
  d.write("model-00001-of-00002.safetensors",
          safetensors_file({iota_f32("x.weight", {2, 3}), iota_f32("y.weight", {4})}));
  d.write("model-00002-of-00002.safetensors", safetensors_file({iota_f32("z.weight", {5})}));
  d.write("model.safetensors.index.json", R"({"metadata": {"total_size": 60}, "weight_map": {
      "x.weight": "model-00001-of-00002.safetensors",
      "z.weight": "model-00002-of-00002.safetensors",
      "y.weight": "model-00001-of-00002.safetensors"}})");
  auto s = weight_store::open(d.path);
  INFO((s ? std::string() : s.error().message));
  REQUIRE(s);
  CHECK((*s)->file_count() == 2);
  CHECK((*s)->tensors().size() == 3);
  auto z = (*s)->get("z.weight", {5});
  REQUIRE(z);
  CHECK((*z)->file == d.path / "model-00002-of-00002.safetensors");
  CHECK(f32_at(**z, 4) == 4.0f);
  auto x = (*s)->get("x.weight", {2, 3});
  REQUIRE(x);
  CHECK(f32_at(**x, 5) == 5.0f);

  SECTION("a tensor listed in the index but absent from its shard") {
    d.write("model.safetensors.index.json", R"({"weight_map": {
        "x.weight": "model-00001-of-00002.safetensors",
        "w.weight": "model-00002-of-00002.safetensors"}})");
    CHECK_THAT(open_error(d.path), Catch::Contains("model-00002-of-00002.safetensors") &&
                                       Catch::Contains("w.weight") &&
                                       Catch::Contains("missing from this shard"));
  }
  SECTION("an index pointing to a missing shard") {
    d.write("model.safetensors.index.json",
            R"({"weight_map": {"x.weight": "model-00009-of-00009.safetensors"}})");
    CHECK_THAT(open_error(d.path), Catch::Contains("model.safetensors.index.json") &&
                                       Catch::Contains("model-00009-of-00009.safetensors") &&
                                       Catch::Contains("does not exist"));
  }
  SECTION("an index whose shard name leaves the folder") {
    d.write("model.safetensors.index.json", R"({"weight_map": {"x.weight": "../../etc/passwd"}})");
    CHECK_THAT(open_error(d.path), Catch::Contains("not a plain file name"));
  }
  SECTION("an index that is not JSON or has no weight_map") {
    d.write("model.safetensors.index.json", "{\"weight_map\": ");
    CHECK_THAT(open_error(d.path), Catch::Contains("index.json") && Catch::Contains("not valid JSON"));
    d.write("model.safetensors.index.json", R"({"metadata": {}})");
    CHECK_THAT(open_error(d.path), Catch::Contains("weight_map"));
  }
  SECTION("the same tensor in two shards") {
    d.write("model-00002-of-00002.safetensors", safetensors_file({iota_f32("x.weight", {2, 3})}));
    d.write("model.safetensors.index.json", R"({"weight_map": {
        "x.weight": "model-00001-of-00002.safetensors",
        "q.weight": "model-00002-of-00002.safetensors"}})");
    CHECK_THAT(open_error(d.path), Catch::Contains("x.weight") && Catch::Contains("also in"));
  }
}

TEST_CASE("missing folder, missing files, empty and truncated files") {
  CHECK_THAT(open_error("/nonexistent/troupe/model"),
             Catch::Contains("/nonexistent/troupe/model") && Catch::Contains("no such directory"));
  temp_dir d;
  CHECK_THAT(open_error(d.path), Catch::Contains(d.path.string()) &&
                                     Catch::Contains("no model.safetensors"));
  CHECK_THAT(file_error(""), Catch::Contains("model.safetensors") && Catch::Contains("too small"));
  CHECK_THAT(file_error("\x10\x00\x00"), Catch::Contains("too small"));
  std::string good = safetensors_file({iota_f32("t", {4, 4})});
  CHECK_THAT(file_error(good.substr(0, good.size() - 1)),
             Catch::Contains("model.safetensors") && Catch::Contains("\"t\"") &&
                 Catch::Contains("outside the data section"));
  CHECK_THAT(file_error(good.substr(0, 40)), Catch::Contains("exceeds the file size"));
  CHECK_THAT(file_error(safetensors_file("{}", "", 1'000'000)),
             Catch::Contains("header length 1000000 exceeds the file size"));
  CHECK_THAT(file_error(safetensors_file("{}", "", INT64_MAX)),
             Catch::Contains("exceeds the file size"));
  fs::create_directory(d.path / "model.safetensors");
  CHECK_THAT(open_error(d.path), Catch::Contains("not a regular file"));
}

TEST_CASE("corrupt headers are rejected with the tensor and the problem named") {
  auto err = [](const std::string& header, const std::string& data) {
    return file_error(safetensors_file(header, data));
  };
  const std::string data16(16, '\0');
  CHECK_THAT(err("not json at all", data16),
             Catch::Contains("model.safetensors") && Catch::Contains("not valid JSON"));
  CHECK_THAT(err("[1, 2]", ""), Catch::Contains("not a JSON object"));
  CHECK_THAT(err("{" + entry("t", "F32", "[4]", "[0, 32]") + "}", data16),
             Catch::Contains("\"t\"") && Catch::Contains("outside the data section"));
  CHECK_THAT(err("{" + entry("t", "F32", "[2]", "[8, 0]") + "}", data16),
             Catch::Contains("\"t\"") && Catch::Contains("begin 8 is after end 0"));
  CHECK_THAT(err("{" + entry("t", "F32", "[3]", "[0, 16]") + "}", data16),
             Catch::Contains("\"t\"") && Catch::Contains("span 16 bytes") &&
                 Catch::Contains("needs 12 bytes"));
  CHECK_THAT(err("{" + entry("t", "I8", "[16]", "[0, 16]") + "}", data16),
             Catch::Contains("\"t\"") && Catch::Contains("unsupported dtype \"I8\""));
  CHECK_THAT(err("{" + entry("t", "F64", "[2]", "[0, 16]") + "}", data16),
             Catch::Contains("unsupported dtype \"F64\""));
  CHECK_THAT(err("{" + entry("t", "F32", "[4294967296, 4294967296, 16]", "[0, 16]") + "}", data16),
             Catch::Contains("\"t\"") && Catch::Contains("overflows"));
  CHECK_THAT(err("{" + entry("t", "F32", "[4611686018427387904]", "[0, 16]") + "}", data16),
             Catch::Contains("overflows"));
  CHECK_THAT(err("{" + entry("t", "F32", "[-4]", "[0, 16]") + "}", data16),
             Catch::Contains("non-negative"));
  CHECK_THAT(err("{" + entry("t", "F32", "[4]", "[0, -16]") + "}", data16),
             Catch::Contains("non-negative"));
  CHECK_THAT(err("{" + entry("t", "F32", "[4]", "[0]") + "}", data16),
             Catch::Contains("exactly two"));
  CHECK_THAT(err("{" + entry("t", "F32", "[4]", "[0, 18446744073709551615]") + "}", data16),
             Catch::Contains("outside the data section"));
  CHECK_THAT(err(R"({"t": {"shape": [4], "data_offsets": [0, 16]}})", data16),
             Catch::Contains("dtype"));
  CHECK_THAT(err(R"({"t": {"dtype": "F32", "data_offsets": [0, 16]}})", data16),
             Catch::Contains("shape"));
  CHECK_THAT(err(R"({"t": [1, 2]})", data16), Catch::Contains("not an object"));
  CHECK_THAT(err("{" + entry("a", "F32", "[4]", "[0, 16]") + ", " +
                 entry("b", "F32", "[2]", "[8, 16]") + "}", data16),
             Catch::Contains("overlap"));
  CHECK_THAT(err("{" + entry("a", "F32", "[2]", "[0, 8]") + ", " +
                 entry("a", "F32", "[2]", "[8, 16]") + "}", data16),
             Catch::Contains("appears twice"));
}

TEST_CASE("a single file is preferred over an index, as transformers does") {
  temp_dir d;
  d.write("model.safetensors", safetensors_file({iota_f32("only", {2})}));
  d.write("model.safetensors.index.json", R"({"weight_map": {"x": "missing.safetensors"}})");
  auto s = weight_store::open(d.path);
  REQUIRE(s);
  CHECK((*s)->find("only") != nullptr);
}

TEST_CASE("every truncation and many header corruptions give an error or in-bounds views") {
  temp_dir d;
  const fs::path path = d.path / "model.safetensors";
  const std::string good = safetensors_file({{"a", "BF16", {3}, u16_bytes({1, 2, 3})},
                                             iota_f32("b.weight", {2, 2})});
  for (size_t n = 0; n < good.size(); ++n) {
    d.write("model.safetensors", good.substr(0, n));
    auto s = weight_store::open(d.path);
    INFO("prefix of " << n << " bytes");
    REQUIRE_FALSE(s);
    CHECK_THAT(s.error().message, Catch::Contains("model.safetensors"));
  }
  const size_t header_end = 8 + size_t(uint8_t(good[0]));
  int accepted = 0;
  for (size_t i = 0; i < header_end; ++i) {
    for (char c : std::string("0159\"{}[]-,:e \xff")) {
      std::string bad = good;
      bad[i] = c;
      d.write("model.safetensors", bad);
      auto file = mapped_file::open(path);
      REQUIRE(file);
      auto views = read_safetensors(**file);
      if (!views) {
        CHECK_THAT(views.error().message, Catch::Contains("model.safetensors"));
        continue;
      }
      ++accepted;
      const std::byte* begin = (*file)->data() + 8;
      const std::byte* end = (*file)->data() + (*file)->size();
      for (const tensor_view& v : *views) {
        INFO("byte " << i << " set to " << int(c) << ", tensor " << v.name);
        CHECK(v.data >= begin);
        CHECK(v.data + v.nbytes <= end);
        CHECK(uint64_t(v.numel()) * troupe::kernels::dtype_size(v.type) == v.nbytes);
      }
    }
  }
  CHECK(accepted > 0);  // e.g. changes inside __metadata__ or to a tensor name keep the file valid
}
