// Chat-template parity checker: renders every case written by tests/tooling/chat_render.js (or by
// chat_python_reference.py) with troupe's chat templates and compares with the reference's output;
// names the first difference.
// usage: chat_parity_check TEMPLATES.json CASES.jsonl [REFERENCE-NAME]
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "engine/chat/chat_template.hpp"

using namespace troupe::engine::chat;

namespace {

std::string read_file(const char* path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const value& field(const value& obj, const char* key) {
  static const value missing;
  const value* v = obj.as_dict().find(key);
  return v ? *v : missing;
}

// The text around the first byte where a and b differ, for the report.
void report_difference(const std::string& id, const std::string& want, const std::string& got) {
  size_t i = 0;
  while (i < want.size() && i < got.size() && want[i] == got[i]) ++i;
  size_t from = i > 60 ? i - 60 : 0;
  auto show = [&](const std::string& s) {
    auto r = to_json(value(s.substr(from, 120)));
    return r ? *r : std::string("?");
  };
  std::fprintf(stderr, "FAIL: %s\n  first difference at byte %zu (expected %zu bytes, got %zu)\n"
               "  expected: ...%s\n  got:      ...%s\n", id.c_str(), i, want.size(), got.size(),
               show(want).c_str(), show(got).c_str());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 && argc != 4) {
    std::fprintf(stderr, "usage: %s TEMPLATES.json CASES.jsonl [REFERENCE-NAME]\n", argv[0]);
    return 2;
  }
  const char* reference = argc == 4 ? argv[3] : "@huggingface/jinja";
  auto sources = value_from_json(read_file(argv[1]));
  if (!sources || !sources->is_dict()) {
    std::fprintf(stderr, "FAIL: cannot read %s\n", argv[1]);
    return 1;
  }
  std::map<std::string, chat_template> templates;
  for (const auto& [name, src] : sources->as_dict().entries) {
    auto t = chat_template::parse(src.as_string());
    if (!t) {
      std::fprintf(stderr, "FAIL: template %s does not parse: %s\n", name.c_str(), t.error().message.c_str());
      return 1;
    }
    templates.emplace(name, std::move(*t));
  }
  std::ifstream in(argv[2]);
  std::string line;
  int total = 0, failed = 0, errors = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto c = value_from_json(line);
    if (!c || !c->is_dict()) {
      std::fprintf(stderr, "FAIL: bad case line in %s\n", argv[2]);
      return 1;
    }
    ++total;
    const std::string id = field(*c, "id").str();
    auto messages = messages_from_value(field(*c, "messages"));
    if (!messages) {
      std::fprintf(stderr, "FAIL: %s: %s\n", id.c_str(), messages.error().message.c_str());
      return 1;
    }
    const chat_template& t = templates.at(field(*c, "template").str());
    auto out = apply_chat_template(t, *messages, field(*c, "add_generation_prompt").truthy(), field(*c, "bos").str(),
                                   field(*c, "eos").str(), field(*c, "extra"));
    const value& want_error = field(*c, "error");
    bool ok;
    if (want_error.is_string()) {
      ++errors;
      // A raise_exception() message must come back as is; other errors only need to be errors.
      ok = !out && (!field(*c, "raised").truthy() || out.error().message == want_error.as_string());
      if (!ok && failed == 0)
        std::fprintf(stderr, "FAIL: %s\n  expected the error: %s\n  got: %s\n", id.c_str(),
                     want_error.as_string().c_str(), out ? ("output " + *to_json(value(*out))).c_str()
                                                          : ("error " + out.error().message).c_str());
    } else {
      const std::string& want = field(*c, "expected").as_string();
      ok = out && *out == want;
      if (!ok && failed == 0) {
        if (!out) std::fprintf(stderr, "FAIL: %s\n  error: %s\n", id.c_str(), out.error().message.c_str());
        else report_difference(id, want, *out);
      }
    }
    if (!ok && failed > 0 && failed < 20) std::fprintf(stderr, "  also differs: %s\n", id.c_str());
    if (!ok) ++failed;
  }
  if (total == 0) {
    std::fprintf(stderr, "FAIL: no cases in %s\n", argv[2]);
    return 1;
  }
  if (failed) {
    std::fprintf(stderr, "%d of %d cases differ from %s\n", failed, total, reference);
    return 1;
  }
  std::printf("all %d cases match %s (%d of them expected errors)\n", total, reference, errors);
  return 0;
}
