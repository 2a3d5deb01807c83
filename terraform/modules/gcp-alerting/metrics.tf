# Log-based metrics over the functions' metrics line (one JSON line per
# interval and instance; see docs/operations.md, "The metric contract").
# Each metric is named after the line field it extracts, so that a query
# reading logging_googleapis_com:user_<field> reads exactly that field. The
# values are distributions: their _sum in PromQL is the total of the field.

locals {
  # The value of jsonPayload.event on the metrics line.
  metrics_event = "redis_metrics"

  # Counters on the metrics line, summed by the alerts.
  counted_fields = toset([
    "redis_operations",
    "redis_errors",
    "redis_errors_connect",
    "redis_errors_timeout",
    "redis_errors_auth",
    "redis_slow_operations",
    "redis_circuit_rejections",
    "http_requests",
    "http_responses_5xx",
  ])

  # Durations on the metrics line, in milliseconds.
  latency_fields = toset([
    "redis_latency_p99_ms",
  ])
}

resource "google_logging_metric" "count" {
  for_each = local.counted_fields

  project         = var.project_id
  name            = each.key
  description     = "Sum of jsonPayload.${each.key} over the functions' metrics lines."
  filter          = "jsonPayload.event=\"${local.metrics_event}\" AND jsonPayload.${each.key}>=0"
  value_extractor = "EXTRACT(jsonPayload.${each.key})"
  label_extractors = {
    service = "EXTRACT(jsonPayload.service)"
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
  }

  bucket_options {
    exponential_buckets {
      num_finite_buckets = 32
      growth_factor      = 2
      scale              = 1
    }
  }
}

resource "google_logging_metric" "latency" {
  for_each = local.latency_fields

  project         = var.project_id
  name            = each.key
  description     = "jsonPayload.${each.key} of the functions' metrics lines (one value per interval and instance)."
  filter          = "jsonPayload.event=\"${local.metrics_event}\" AND jsonPayload.${each.key}>=0"
  value_extractor = "EXTRACT(jsonPayload.${each.key})"
  label_extractors = {
    service = "EXTRACT(jsonPayload.service)"
  }

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "ms"
    display_name = "Redis functions: ${each.key}"
    labels {
      key         = "service"
      value_type  = "STRING"
      description = "The function (crate name)."
    }
  }

  bucket_options {
    exponential_buckets {
      num_finite_buckets = 40
      growth_factor      = 1.5
      scale              = 0.05
    }
  }
}
