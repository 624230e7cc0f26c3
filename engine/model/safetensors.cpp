// Memory-maps safetensors files and checks their headers as untrusted input.
#include "engine/model/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include <simdjson.h>

namespace troupe::engine {
namespace {

namespace fs = std::filesystem;
using simdjson::dom::element;

// The safetensors library refuses headers beyond 100 MB; so do we.
constexpr uint64_t max_header_bytes = 100'000'000;

/// A non-negative JSON integer (int64 or uint64), or nothing.
std::optional<uint64_t> as_unsigned(element e) {
  if (e.is_int64()) {
    int64_t v = int64_t(e);
    if (v >= 0) return uint64_t(v);
    return std::nullopt;
  }
  if (e.is_uint64()) return uint64_t(e);
  return std::nullopt;
}

std::optional<kernels::dtype> parse_dtype(std::string_view s) {
  if (s == "F32") return kernels::dtype::f32;
  if (s == "F16") return kernels::dtype::f16;
  if (s == "BF16") return kernels::dtype::bf16;
  return std::nullopt;
}

/// Checks one header entry against the data section and fills VIEW.
expected<void> read_entry(const mapped_file& file, std::string_view name, element entry,
                          const std::byte* data_section, uint64_t data_size, tensor_view& view) {
  auto bad = [&](auto&&... what) {
    return make_error(file.path(), ": tensor \"", name, "\": ", what...);
  };
  if (!entry.is_object()) return bad("header entry is not an object");
  element dtype_e, shape_e, offsets_e;
  std::string_view dtype_s;
  if (entry["dtype"].get(dtype_e) || dtype_e.get(dtype_s)) return bad("missing or non-string dtype");
  if (entry["shape"].get(shape_e) || !shape_e.is_array()) return bad("missing or non-list shape");
  if (entry["data_offsets"].get(offsets_e) || !offsets_e.is_array())
    return bad("missing or non-list data_offsets");
  auto type = parse_dtype(dtype_s);
  if (!type) return bad("unsupported dtype \"", dtype_s, "\" (supported: F32, F16, BF16)");

  view.name = std::string(name);
  view.type = *type;
  view.file = file.path();
  uint64_t numel = 1;
  bool overflow = false;
  for (element dim : simdjson::dom::array(shape_e)) {
    auto d = as_unsigned(dim);
    if (!d) return bad("shape entries must be non-negative integers");
    if (*d > uint64_t(INT64_MAX)) return bad("shape entry ", *d, " is too large");
    view.shape.push_back(int64_t(*d));
    overflow |= __builtin_mul_overflow(numel, *d, &numel);
  }
  uint64_t nbytes = 0;
  overflow |= __builtin_mul_overflow(numel, uint64_t(kernels::dtype_size(*type)), &nbytes);
  if (overflow || numel > uint64_t(INT64_MAX))
    return bad("shape ", shape_to_string(view.shape), " overflows the element count");

  simdjson::dom::array offsets(offsets_e);
  if (offsets.size() != 2) return bad("data_offsets must hold exactly two integers");
  element b_e, e_e;
  std::optional<uint64_t> begin, end;
  if (!offsets.at(0).get(b_e) && !offsets.at(1).get(e_e)) {
    begin = as_unsigned(b_e);
    end = as_unsigned(e_e);
  }
  if (!begin || !end) return bad("data_offsets must be non-negative integers");
  if (*begin > *end) return bad("data_offsets begin ", *begin, " is after end ", *end);
  if (*end > data_size)
    return bad("data_offsets [", *begin, ", ", *end, "] lie outside the data section of ",
               data_size, " bytes (file truncated?)");
  if (*end - *begin != nbytes)
    return bad("data_offsets span ", *end - *begin, " bytes but shape ",
               shape_to_string(view.shape), " of ", dtype_s, " needs ", nbytes, " bytes");
  view.data = data_section + *begin;
  view.nbytes = size_t(nbytes);
  return {};
}

/// Tensors may not share bytes (the safetensors library refuses such files too).
expected<void> check_no_overlap(const mapped_file& file, std::vector<tensor_view> views) {
  std::sort(views.begin(), views.end(),
            [](const tensor_view& a, const tensor_view& b) { return a.data < b.data; });
  const tensor_view* prev = nullptr;
  for (const tensor_view& v : views) {
    if (v.nbytes == 0) continue;
    if (prev && prev->data + prev->nbytes > v.data)
      return make_error(file.path(), ": tensors \"", prev->name, "\" and \"", v.name,
                        "\" overlap in the data section");
    prev = &v;
  }
  return {};
}

}  // namespace

int64_t tensor_view::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_to_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

expected<std::unique_ptr<mapped_file>> mapped_file::open(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error(path, ": cannot open file (", std::strerror(errno), ")");
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return make_error(path, ": not a regular file");
  }
  std::unique_ptr<mapped_file> f(new mapped_file());
  f->path_ = path;
  f->size_ = size_t(st.st_size);
  if (f->size_ > 0) {
    void* p = ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      f->size_ = 0;
      return make_error(path, ": cannot memory-map file (", std::strerror(e), ")");
    }
    f->data_ = static_cast<const std::byte*>(p);
  }
  ::close(fd);
  return f;
}

mapped_file::~mapped_file() {
  if (data_) ::munmap(const_cast<std::byte*>(data_), size_);
}

expected<std::vector<tensor_view>> read_safetensors(const mapped_file& file) {
  const uint64_t size = file.size();
  if (size < 8)
    return make_error(file.path(), ": file too small (", size,
                      " bytes) for a safetensors header; is it empty or truncated?");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = header_len << 8 | uint64_t(file.data()[i]);
  if (header_len > size - 8)
    return make_error(file.path(), ": header length ", header_len, " exceeds the file size (",
                      size, " bytes); the file is truncated or not safetensors");
  if (header_len > max_header_bytes)
    return make_error(file.path(), ": header length ", header_len, " exceeds the limit of ",
                      max_header_bytes, " bytes");
  simdjson::padded_string header(reinterpret_cast<const char*>(file.data()) + 8,
                                 size_t(header_len));
  simdjson::dom::parser parser;
  element doc;
  simdjson::dom::object root;
  if (auto err = parser.parse(header).get(doc))
    return make_error(file.path(), ": header is not valid JSON (", simdjson::error_message(err), ")");
  if (doc.get(root)) return make_error(file.path(), ": header is not a JSON object");

  const std::byte* data_section = file.data() + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;
  std::vector<tensor_view> views;
  std::set<std::string_view> seen;
  for (auto field : root) {
    if (field.key == "__metadata__") continue;
    if (!seen.insert(field.key).second)
      return make_error(file.path(), ": tensor \"", field.key, "\" appears twice in the header");
    tensor_view v;
    if (auto ok = read_entry(file, field.key, field.value, data_section, data_size, v); !ok)
      return ok.error();
    views.push_back(std::move(v));
  }
  if (auto ok = check_no_overlap(file, views); !ok) return ok.error();
  return views;
}

}  // namespace troupe::engine
