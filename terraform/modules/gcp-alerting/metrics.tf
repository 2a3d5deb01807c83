# Log-based metrics over the functions' metrics line (one JSON line per
# interval and instance; see docs/operations.md, "The metric contract").
# Each metric is named after the line field it extracts, so that a query
# reading logging_googleapis_com:user_<field> reads exactly that field. The
# values are distributions: their _sum in PromQL is the total of the field,
# their _count the number of lines (the heartbeat). Labels: service and
# environment, extracted from the line. They are per project, shared by the
# environments of the project (manage_log_metrics in one instance only).

locals {
  # The value of jsonPayload.event on the metrics line.
  metrics_event = "redis_metrics"

  # Counters on the metrics line that the alerts and the dashboard read.
  counted_fields = var.manage_log_metrics ? toset([
    "redis_operations",
    "redis_errors",
    "redis_errors_connect",
    "redis_errors_timeout",
    "redis_errors_auth",
    "redis_slow_operations",
    "redis_circuit_rejections",
    "redis_operations_ge_10ms",
    "redis_operations_ge_25ms",
    "redis_operations_ge_50ms",
    "redis_operations_ge_100ms",
    "redis_operations_ge_250ms",
    "redis_operations_ge_1000ms",
    "http_requests",
    "http_user_requests",
    "http_user_responses_5xx",
    "http_user_slow_requests",
    "http_probe_requests",
    "cold_starts",
    # Queue gauges: on the lines of intervals in which a queue was read;
    # _sum / _count is their mean over those lines.
    "queue_backlog",
    "queue_oldest_age_ms",
    "queue_dead_letters",
  ]) : toset([])
}

resource "google_logging_metric" "count" {
  for_each = local.counted_fields

  project         = var.project_id
  name            = each.key
  description     = "Sum of jsonPayload.${each.key} over the functions' metrics lines, by service and environment."
  filter          = "jsonPayload.event=\"${local.metrics_event}\" AND jsonPayload.${each.key}>=0"
  value_extractor = "EXTRACT(jsonPayload.${each.key})"
  label_extractors = {
    service     = "EXTRACT(jsonPayload.service)"
    environment = "EXTRACT(jsonPayload.environment)"
  }

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "1"
    display_name = "Redis functions: ${each.key}"
    labels {
      key         = "service"
      value_type  = "STRING"
      description = "The function (crate name)."
    }
    labels {
      key         = "environment"
      value_type  = "STRING"
      description = "The environment (DEPLOY_ENVIRONMENT)."
    }
  }

  bucket_options {
    exponential_buckets {
      num_finite_buckets = 32
      growth_factor      = 2
      scale              = 1
    }
  }
}
