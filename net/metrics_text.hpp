// The Prometheus text exposition (format 0.0.4) of the runtime's metrics, for GET /metrics.
#pragma once

#include <string>

#include "actors/runtime.hpp"

namespace troupe::net {

/// Every metric with HELP and TYPE lines: gauges of running/waiting requests and KV blocks, counters
/// (finished requests by reason, rejections, preemptions, tokens, prefix-cache queries and hits), the
/// prefix-cache hit rate, latency histograms (cumulative buckets, _sum, _count) and mailbox depths.
std::string prometheus_text(const runtime_metrics& m);

}  // namespace troupe::net
