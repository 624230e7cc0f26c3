// Writes runtime_metrics in the Prometheus text format.
#include "net/metrics_text.hpp"

#include <charconv>
#include <cmath>

namespace troupe::net {

namespace {

std::string number(double d) {
  if (std::isinf(d)) return d > 0 ? "+Inf" : "-Inf";
  if (std::isnan(d)) return "NaN";
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d);
  return std::string(buf, end);
}

/// A label value with \, " and newlines escaped.
std::string label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

void head(std::string& out, const char* name, const char* type, const char* help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void sample(std::string& out, const char* name, const std::string& value, const std::string& labels = {}) {
  out += name;
  if (!labels.empty()) out += "{" + labels + "}";
  out += ' ';
  out += value;
  out += '\n';
}

void gauge(std::string& out, const char* name, double v, const char* help) {
  head(out, name, "gauge", help);
  sample(out, name, number(v));
}

void counter(std::string& out, const char* name, double v, const char* help) {
  head(out, name, "counter", help);
  sample(out, name, number(v));
}

void histogram_of(std::string& out, const std::string& name, const histogram& h, const char* help) {
  head(out, name.c_str(), "histogram", help);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < h.counts.size(); ++i) {
    cumulative += h.counts[i];
    const std::string le = i < h.bounds.size() ? number(h.bounds[i]) : "+Inf";
    sample(out, (name + "_bucket").c_str(), std::to_string(cumulative), "le=\"" + le + "\"");
  }
  if (h.counts.empty()) sample(out, (name + "_bucket").c_str(), std::to_string(h.count), "le=\"+Inf\"");
  sample(out, (name + "_sum").c_str(), number(h.sum));
  sample(out, (name + "_count").c_str(), std::to_string(h.count));
}

}  // namespace

std::string prometheus_text(const runtime_metrics& m) {
  std::string out;
  gauge(out, "troupe_requests_running", double(m.requests_running), "Requests being generated.");
  gauge(out, "troupe_requests_waiting", double(m.requests_waiting), "Requests admitted and waiting to run.");
  head(out, "troupe_requests_finished_total", "counter", "Requests finished, by finish reason.");
  for (const char* reason : {"stop", "length", "abort", "error"})
    if (!m.requests_finished.count(reason))
      sample(out, "troupe_requests_finished_total", "0", std::string("reason=\"") + reason + "\"");
  for (const auto& [reason, n] : m.requests_finished)
    sample(out, "troupe_requests_finished_total", std::to_string(n), "reason=\"" + label(reason) + "\"");
  counter(out, "troupe_requests_rejected_total", double(m.requests_rejected),
          "Requests the runtime refused (admission limits, invalid input).");
  gauge(out, "troupe_kv_blocks_used", double(m.kv_blocks_used), "KV cache blocks in use.");
  gauge(out, "troupe_kv_blocks_total", double(m.kv_blocks_total), "KV cache blocks in all.");
  counter(out, "troupe_prefix_cache_queries_total", double(m.prefix_cache_queries),
          "Prompt tokens looked up in the prefix cache.");
  counter(out, "troupe_prefix_cache_hits_total", double(m.prefix_cache_hits),
          "Prompt tokens found in the prefix cache.");
  gauge(out, "troupe_prefix_cache_hit_rate",
        m.prefix_cache_queries ? double(m.prefix_cache_hits) / double(m.prefix_cache_queries) : 0.0,
        "Prefix-cache hits over queries since start.");
  counter(out, "troupe_preemptions_total", double(m.preemptions), "Requests preempted for recompute.");
  counter(out, "troupe_prompt_tokens_total", double(m.prompt_tokens), "Prompt tokens processed.");
  counter(out, "troupe_generation_tokens_total", double(m.generation_tokens), "Tokens generated.");
  histogram_of(out, "troupe_time_to_first_token_seconds", m.time_to_first_token,
               "Time from arrival to the first output token.");
  histogram_of(out, "troupe_inter_token_latency_seconds", m.inter_token_latency,
               "Time between consecutive output tokens of a request.");
  histogram_of(out, "troupe_e2e_request_latency_seconds", m.e2e_latency,
               "Time from arrival to the end of a request.");
  histogram_of(out, "troupe_request_queue_time_seconds", m.queue_time,
               "Time a request waited before it first ran.");
  head(out, "troupe_mailbox_depth", "gauge", "Messages waiting in an actor's mailbox.");
  for (const auto& [actor, depth] : m.mailbox_depth)
    sample(out, "troupe_mailbox_depth", std::to_string(depth), "actor=\"" + label(actor) + "\"");
  return out;
}

}  // namespace troupe::net
