// `troupe serve`: the OpenAI-compatible HTTP server over the in-process runtime, with a JSON config file,
// flags that override it, and a graceful shutdown on SIGINT/SIGTERM.
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include <sys/resource.h>
#include <unistd.h>
#include <simdjson.h>

#include "actors/runtime.hpp"
#include "app/commands.hpp"
#include "config/model_config.hpp"
#include "kernels/backend_factory.hpp"
#include "net/server.hpp"

namespace troupe::app {

namespace {

int stop_pipe[2] = {-1, -1};  // the signal handler writes, run_serve reads

struct serve_args {
  std::string model = TROUPE_DEFAULT_MODEL;
  std::string host = "127.0.0.1";
  int port = 8000;
  std::string served_model_name;
  int32_t max_num_seqs = 256;
  int32_t max_num_batched_tokens = 2048;
  double admission_reserve = 0.7;
  int64_t max_model_len = 0;
  int64_t kv_cache_blocks = 0;
  double gpu_memory_utilization = 0.9;
  int32_t max_waiting = 256;
  int32_t steps_in_flight = 2;
  std::string api_key;
  std::string config;
  int http_threads = 2048;
  int threads = 0;
  double grace_seconds = 30.0;
  std::string device = "auto";  // cpu, cuda, cuda:N or auto
  std::string dtype = "auto";   // the CUDA compute type
};

/// The executors' backend maker for --device/--dtype; checks once that the device can be used.
expected<std::function<std::unique_ptr<kernels::backend>()>> backend_maker(const serve_args& a) {
  auto cfg = config::load_model_config(a.model);
  if (!cfg) return cfg.error();
  auto compute = kernels::parse_compute_dtype(a.dtype, cfg->dtype);
  if (!compute) return compute.error();
  std::string note;
  auto probe = kernels::make_backend(a.device, *compute, a.threads, &note);
  if (!probe) return probe.error();
  std::printf("troupe: %s\n", note.c_str());
  return std::function<std::unique_ptr<kernels::backend>()>(
      [device = a.device, type = *compute, threads = a.threads]() -> std::unique_ptr<kernels::backend> {
        auto be = kernels::make_backend(device, type, threads);
        return be ? std::move(*be) : nullptr;
      });
}

/// Reads the --config file (a JSON object with the flags' names, dashes or underscores) into `a`,
/// skipping the options given on the command line: flags override the file.
expected<void> apply_config_file(serve_args& a, const CLI::App& cmd) {
  std::ifstream in(a.config);
  if (!in) return make_error(a.config, ": cannot open the config file");
  std::stringstream ss;
  ss << in.rdbuf();
  simdjson::dom::parser parser;
  simdjson::padded_string text(ss.str());
  simdjson::dom::object obj;
  if (auto err = parser.parse(text).get_object().get(obj))
    return make_error(a.config, ": not a JSON object (", simdjson::error_message(err), ")");
  for (auto field : obj) {
    std::string key(field.key);
    for (char& c : key)
      if (c == '_') c = '-';
    const CLI::Option* flag = cmd.get_option_no_throw("--" + key);
    if (flag == nullptr || key == "config") return make_error(a.config, ": unknown key \"", field.key, "\"");
    if (flag->count() > 0) continue;
    const auto wrong = [&](const char* what) { return make_error(a.config, ": \"", field.key, "\" must be ", what); };
    std::string_view s;
    int64_t i;
    double d;
    if (key == "model" || key == "host" || key == "served-model-name" || key == "api-key" || key == "device" ||
        key == "dtype") {
      if (field.value.get_string().get(s) != simdjson::SUCCESS) return wrong("a string");
      std::string& dst = key == "model" ? a.model : key == "host" ? a.host
                       : key == "served-model-name" ? a.served_model_name : key == "api-key" ? a.api_key
                       : key == "device" ? a.device : a.dtype;
      dst = std::string(s);
    } else if (key == "grace-seconds") {
      if (field.value.get_double().get(d) != simdjson::SUCCESS || d < 0) return wrong("a number >= 0");
      a.grace_seconds = d;
    } else if (key == "admission-reserve") {
      if (field.value.get_double().get(d) != simdjson::SUCCESS || !(d >= 0 && d <= 1)) return wrong("a number in [0, 1]");
      a.admission_reserve = d;
    } else if (key == "gpu-memory-utilization") {
      if (field.value.get_double().get(d) != simdjson::SUCCESS || !(d > 0 && d <= 1)) return wrong("a number in (0, 1]");
      a.gpu_memory_utilization = d;
    } else {
      if (field.value.get_int64().get(i) != simdjson::SUCCESS || i < 0 || i > INT32_MAX)
        return wrong("a non-negative integer");
      if (key == "port") a.port = int(i);
      else if (key == "max-num-seqs") a.max_num_seqs = int32_t(i);
      else if (key == "max-num-batched-tokens") a.max_num_batched_tokens = int32_t(i);
      else if (key == "max-model-len") a.max_model_len = i;
      else if (key == "kv-cache-blocks") a.kv_cache_blocks = i;
      else if (key == "max-waiting") a.max_waiting = int32_t(i);
      else if (key == "steps-in-flight") a.steps_in_flight = int32_t(i);
      else if (key == "http-threads") a.http_threads = int(i);
      else if (key == "threads") a.threads = int(i);
    }
  }
  return {};
}

int run_serve(serve_args a, const CLI::App& cmd) {
  if (!a.config.empty()) {
    if (auto ok = apply_config_file(a, cmd); !ok) {
      std::fprintf(stderr, "troupe: %s\n", ok.error().message.c_str());
      return 2;
    }
  }
  if (a.port < 0 || a.port > 65535) {
    std::fprintf(stderr, "troupe: --port must be in [0, 65535], got %d\n", a.port);
    return 2;
  }
  while (a.model.size() > 1 && a.model.back() == '/') a.model.pop_back();

  // SIGINT/SIGTERM may land on any thread (libraries start their own before main): the handler
  // only writes the signal's number to a pipe that this thread waits on.
  if (pipe(stop_pipe) != 0) {
    std::perror("troupe: pipe");
    return 1;
  }
  struct sigaction on_stop {};
  on_stop.sa_handler = [](int sig) {
    const char c = char(sig);
    [[maybe_unused]] auto n = write(stop_pipe[1], &c, 1);
  };
  sigemptyset(&on_stop.sa_mask);
  sigaction(SIGINT, &on_stop, nullptr);
  sigaction(SIGTERM, &on_stop, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  // One descriptor per connection: allow as many as the hard limit does.
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }

  net::server_options so;
  so.host = a.host;
  so.port = a.port;
  so.api_key = a.api_key;
  so.http_threads = a.http_threads;
  net::http_server server(so);
  auto port = server.bind();
  if (!port) {
    std::fprintf(stderr, "troupe: %s\n", port.error().message.c_str());
    return 1;
  }
  server.start();
  std::printf("troupe: listening on http://%s:%d (loading %s)\n", a.host.c_str(), *port, a.model.c_str());
  std::fflush(stdout);

  runtime_options ro;
  ro.model_dir = a.model;
  ro.served_model_name = a.served_model_name;
  ro.engine.max_num_seqs = a.max_num_seqs;
  ro.engine.max_num_batched_tokens = a.max_num_batched_tokens;
  ro.engine.admission_reserve = a.admission_reserve;
  ro.engine.max_model_len = a.max_model_len;
  ro.engine.kv_cache_blocks = a.kv_cache_blocks;
  ro.engine.gpu_memory_utilization = a.gpu_memory_utilization;
  ro.max_waiting = a.max_waiting;
  ro.steps_in_flight = a.steps_in_flight;
  ro.cpu_threads = a.threads;
  auto maker = backend_maker(a);
  if (!maker) {
    std::fprintf(stderr, "troupe: cannot start: %s\n", maker.error().message.c_str());
    server.stop();
    return 1;
  }
  ro.backend_factory = std::move(*maker);
  auto rt = runtime::start(ro);
  if (!rt) {
    std::fprintf(stderr, "troupe: cannot start: %s\n", rt.error().message.c_str());
    server.stop();
    return 1;
  }
  server.attach(**rt);
  std::printf("troupe: ready: serving %s on http://%s:%d (POST /v1/completions, /v1/chat/completions)\n",
              (*rt)->served_model_name().c_str(), a.host.c_str(), *port);
  std::fflush(stdout);

  char sig = 0;
  while (read(stop_pipe[0], &sig, 1) < 0 && errno == EINTR) {
  }
  std::printf("troupe: %s: draining (up to %.0f s), then exiting\n", sig == SIGINT ? "SIGINT" : "SIGTERM",
              a.grace_seconds);
  std::fflush(stdout);
  server.begin_drain();
  (*rt)->drain(std::chrono::milliseconds(int64_t(a.grace_seconds * 1000)));
  // Let the handlers write what the drained requests produced before the connections close.
  for (int i = 0; i < 200 && server.in_flight() > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  server.stop();
  rt->reset();
  std::printf("troupe: stopped\n");
  return 0;
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto args = std::make_shared<serve_args>();
  auto* cmd = app.add_subcommand("serve", "Serve a model over an OpenAI-compatible HTTP API");
  cmd->add_option("--model", args->model, "Hugging Face model folder")->capture_default_str();
  cmd->add_option("--host", args->host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", args->port, "Port to listen on (0: any free port)")->capture_default_str();
  cmd->add_option("--served-model-name", args->served_model_name, "Model name in the API (default: folder name)");
  cmd->add_option("--max-num-seqs", args->max_num_seqs, "Requests running at once, at most")->capture_default_str();
  cmd->add_option("--max-num-batched-tokens", args->max_num_batched_tokens, "Tokens per scheduler step, at most")
      ->capture_default_str();
  cmd->add_option("--max-model-len", args->max_model_len, "Prompt + output tokens, at most (0: the model's)");
  cmd->add_option("--admission-reserve", args->admission_reserve,
                  "Fraction of the running requests' room to grow (to max_tokens) that admission keeps free in the KV "
                  "cache, adapting from there; 0 admits what fits now")
      ->capture_default_str();
  cmd->add_option("--kv-cache-blocks", args->kv_cache_blocks,
                  "KV cache blocks (0: sized automatically; on a GPU from its free memory)");
  cmd->add_option("--gpu-memory-utilization", args->gpu_memory_utilization,
                  "On a GPU, the fraction of its memory the engine may use in all (weights, activations, KV cache)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--max-waiting", args->max_waiting, "Requests waiting to run, at most (then 429)")
      ->capture_default_str();
  cmd->add_option("--steps-in-flight", args->steps_in_flight,
                  "Scheduler steps sent to the executor ahead of their results (1: one at a time)")
      ->capture_default_str();
  cmd->add_option("--api-key", args->api_key, "Require 'Authorization: Bearer KEY' on /v1/*");
  cmd->add_option("--config", args->config, "JSON file with these options (flags override it)");
  cmd->add_option("--http-threads", args->http_threads, "HTTP connection threads (one per open connection)")
      ->capture_default_str();
  cmd->add_option("--threads", args->threads, "CPU backend threads (0: every core)");
  cmd->add_option("--device", args->device, "cpu, cuda, cuda:N, or auto (a GPU when one is usable)")
      ->capture_default_str();
  cmd->add_option("--dtype", args->dtype, "CUDA compute type: auto (from config.json), bfloat16 or float16")
      ->capture_default_str();
  cmd->add_option("--grace-seconds", args->grace_seconds, "On SIGINT/SIGTERM, let requests finish this long")
      ->capture_default_str();
  cmd->callback([args, cmd] {
    if (int rc = run_serve(*args, *cmd); rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace troupe::app
