# Alert policies. Every policy carries a severity (CRITICAL pages, WARNING
# notifies), the notification channels of its route, a runbook link under
# var.runbook_base_url (files in terraform/runbooks/) and auto-close.
#
# The queries read the log-based metrics of metrics.tf (PromQL names
# logging_googleapis_com:user_<field>_sum), the uptime checks below, and
# Memorystore's own metrics. shared/tests/terraform_contract.rs fails when a
# query reads a field the functions do not write.

locals {
  error_budget   = 1 - var.availability_objective
  latency_budget = 1 - var.latency_objective

  memorystore_filter = length(var.memorystore_instances) == 0 ? "" : join(" OR ", [
    for id in var.memorystore_instances : "resource.label.instance_id=\"${id}\""
  ])
}

# --- Redis error ratio: multi-window burn rate against the availability objective.

resource "google_monitoring_alert_policy" "redis_error_budget_burn" {
  for_each = var.burn_rate_tiers

  project      = var.project_id
  display_name = "Redis error budget burn (${each.key}): errors over ${each.value.long_window} and ${each.value.short_window} above ${each.value.factor}x budget"
  combiner     = "OR"
  severity     = each.value.page ? "CRITICAL" : "WARNING"

  conditions {
    display_name = "error ratio > ${each.value.factor} x ${local.error_budget} over ${each.value.long_window} and ${each.value.short_window}"
    condition_prometheus_query_language {
      query               = <<-EOT
        (
          sum by (service) (rate(logging_googleapis_com:user_redis_errors_sum[${each.value.long_window}]))
          /
          sum by (service) (rate(logging_googleapis_com:user_redis_operations_sum[${each.value.long_window}]))
        ) > ${each.value.factor * local.error_budget}
        and
        (
          sum by (service) (rate(logging_googleapis_com:user_redis_errors_sum[${each.value.short_window}]))
          /
          sum by (service) (rate(logging_googleapis_com:user_redis_operations_sum[${each.value.short_window}]))
        ) > ${each.value.factor * local.error_budget}
      EOT
      duration            = "0s"
      evaluation_interval = "60s"
    }
  }

  notification_channels = each.value.page ? local.routes.page : local.routes.notify

  alert_strategy {
    auto_close = var.auto_close
  }

  documentation {
    subject   = "Redis error budget burning (${each.key}) in $${metric.label.service}"
    mime_type = "text/markdown"
    content   = "Redis operations of a function fail fast enough to spend the error budget of the ${var.availability_objective} availability objective ${each.value.factor} times too fast. Runbook: ${var.runbook_base_url}/redis-error-budget-burn.md"
    links {
      display_name = "Runbook"
      url          = "${var.runbook_base_url}/redis-error-budget-burn.md"
    }
  }

  user_labels = {
    severity = each.value.page ? "critical" : "warning"
    signal   = "redis-errors"
  }

  depends_on = [google_logging_metric.count]
}

# --- Bursts of connection errors (Redis unreachable, refused, TLS, DNS).

resource "google_monitoring_alert_policy" "redis_connection_errors" {
  project      = var.project_id
  display_name = "Redis connection errors: more than ${var.connection_error_burst} in 5 minutes"
  combiner     = "OR"
  severity     = "CRITICAL"

  conditions {
    display_name = "redis_errors_connect > ${var.connection_error_burst} in 5m"
    condition_prometheus_query_language {
      query               = "sum by (service) (increase(logging_googleapis_com:user_redis_errors_connect_sum[5m])) > ${var.connection_error_burst}"
      duration            = "0s"
      evaluation_interval = "60s"
    }
  }

  notification_channels = local.routes.page

  alert_strategy {
    auto_close = var.auto_close
  }

  documentation {
    subject   = "Redis connection errors in $${metric.label.service}"
    mime_type = "text/markdown"
    content   = "A function cannot connect to Redis. Runbook: ${var.runbook_base_url}/redis-connection-errors.md"
    links {
      display_name = "Runbook"
      url          = "${var.runbook_base_url}/redis-connection-errors.md"
    }
  }

  user_labels = {
    severity = "critical"
    signal   = "redis-connect"
  }

  depends_on = [google_logging_metric.count]
}

# --- Latency: the reported p99, and the share of slow operations.

resource "google_monitoring_alert_policy" "redis_latency_p99" {
  project      = var.project_id
  display_name = "Redis latency: p99 above ${var.latency_p99_threshold_ms} ms for 15 minutes"
  combiner     = "OR"
  severity     = "WARNING"

  conditions {
    display_name = "mean reported p99 > ${var.latency_p99_threshold_ms} ms"
    condition_prometheus_query_language {
      # The mean, over 5 minutes, of the p99 each instance reports per interval.
      query               = "sum by (service) (rate(logging_googleapis_com:user_redis_latency_p99_ms_sum[5m])) / sum by (service) (rate(logging_googleapis_com:user_redis_latency_p99_ms_count[5m])) > ${var.latency_p99_threshold_ms}"
      duration            = "900s"
      evaluation_interval = "60s"
    }
  }

  notification_channels = local.routes.notify

  alert_strategy {
    auto_close = var.auto_close
  }

  documentation {
    subject   = "Redis p99 latency high in $${metric.label.service}"
    mime_type = "text/markdown"
    content   = "Redis round trips of a function are slow. Runbook: ${var.runbook_base_url}/redis-latency.md"
    links {
      display_name = "Runbook"
      url          = "${var.runbook_base_url}/redis-latency.md"
    }
  }

  user_labels = {
    severity = "warning"
    signal   = "redis-latency"
  }

  depends_on = [google_logging_metric.latency]
}

resource "google_monitoring_alert_policy" "redis_slow_operations" {
  project      = var.project_id
  display_name = "Redis latency objective: slow operations burn the budget ${var.latency_burn_factor}x too fast"
  combiner     = "OR"
  severity     = "CRITICAL"

  conditions {
    display_name = "slow share > ${var.latency_burn_factor} x ${local.latency_budget} over 1h and 5m"
    condition_prometheus_query_language {
      query               = <<-EOT
        (
          sum by (service) (rate(logging_googleapis_com:user_redis_slow_operations_sum[1h]))
          /
          sum by (service) (rate(logging_googleapis_com:user_redis_operations_sum[1h]))
        ) > ${var.latency_burn_factor * local.latency_budget}
        and
        (
          sum by (service) (rate(logging_googleapis_com:user_redis_slow_operations_sum[5m]))
          /
          sum by (service) (rate(logging_googleapis_com:user_redis_operations_sum[5m]))
        ) > ${var.latency_burn_factor * local.latency_budget}
      EOT
      duration            = "0s"
      evaluation_interval = "60s"
    }
  }

  notification_channels = local.routes.page

  alert_strategy {
    auto_close = var.auto_close
  }

  documentation {
    subject   = "Too many slow Redis operations in $${metric.label.service}"
    mime_type = "text/markdown"
    content   = "More Redis operations than the ${var.latency_objective} latency objective allows take 100 ms or longer. Runbook: ${var.runbook_base_url}/redis-latency.md"
    links {
      display_name = "Runbook"
      url          = "${var.runbook_base_url}/redis-latency.md"
    }
  }

  user_labels = {
    severity = "critical"
    signal   = "redis-latency"
  }

  depends_on = [google_logging_metric.count]
}

# --- Function 5xx responses.

resource "google_monitoring_alert_policy" "function_5xx" {
  project      = var.project_id
  display_name = "Function 5xx responses above ${var.http_5xx_ratio_threshold * 100}%"
  combiner     = "OR"
  severity     = "CRITICAL"

  conditions {
    display_name = "5xx share > ${var.http_5xx_ratio_threshold} over 5m"
    condition_prometheus_query_language {
      query               = "sum by (service) (rate(logging_googleapis_com:user_http_responses_5xx_sum[5m])) / sum by (service) (rate(logging_googleapis_com:user_http_requests_sum[5m])) > ${var.http_5xx_ratio_threshold}"
      duration            = "300s"
      evaluation_interval = "60s"
    }
  }

  notification_channels = local.routes.page

  alert_strategy {
    auto_close = var.auto_close
  }

  documentation {
    subject   = "5xx responses from $${metric.label.service}"
    mime_type = "text/markdown"
    content   = "A function answers too many requests with 5xx. Runbook: ${var.runbook_base_url}/function-5xx.md"
    links {
      display_name = "Runbook"
      url          = "${var.runbook_base_url}/function-5xx.md"
    }
  }

  user_labels = {
    severity = "critical"
    signal   = "http-5xx"
  }

  depends_on = [google_logging_metric.count]
}

# --- Black-box probe of each function's /redis-health.

resource "google_monitoring_uptime_check_config" "redis_health" {
  for_each = var.functions

  project      = var.project_id
  display_name = "${each.key} /redis-health"
  timeout      = "10s"
  period       = var.uptime_check_period

  http_check {
    path           = "/redis-health"
    port           = 443
    use_ssl        = true
    validate_ssl   = true
    request_method = "GET"
    accepted_response_status_codes {
      status_value = 200
    }
  }

  content_matchers {
    content = "\"status\":\"healthy\""
    matcher = "CONTAINS_STRING"
  }

  monitored_resource {
    type = "uptime_url"
    labels = {
      project_id = var.project_id
      host       = each.value.host
    }
  }
}

resource "google_monitoring_alert_policy" "redis_health_probe" {
  for_each = var.functions

  project      = var.project_id
  display_name = "${each.key}: /redis-health failing from several regions"
  combiner     = "OR"
  severity     = "CRITICAL"

  conditions {
    display_name = "uptime check ${each.key} /redis-health failed"
    condition_threshold {
      filter          = "metric.type=\"monitoring.googleapis.com/uptime_check/check_passed\" AND resource.type=\"uptime_url\" AND metric.label.check_id=\"${google_monitoring_uptime_check_config.redis_health[each.key].uptime_check_id}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 1
      duration        = "120s"
      aggregations {
        alignment_period     = "120s"
        per_series_aligner   = "ALIGN_NEXT_OLDER"
        cross_series_reducer = "REDUCE_COUNT_FALSE"
        group_by_fields      = ["resource.label.host"]
      }
      trigger {
        count = 1
      }
    }
  }

  notification_channels = local.routes.page

  alert_strategy {
    auto_close = var.auto_close
  }

  documentation {
    subject   = "${each.key} /redis-health is failing"
    mime_type = "text/markdown"
    content   = "The black-box probe of ${each.key} (https://${each.value.host}/redis-health) fails from more than one region. Runbook: ${var.runbook_base_url}/redis-health-probe.md"
    links {
      display_name = "Runbook"
      url          = "${var.runbook_base_url}/redis-health-probe.md"
    }
  }

  user_labels = {
    severity = "critical"
    signal   = "redis-health"
    function = each.key
  }
}

# --- Memorystore itself.

resource "google_monitoring_alert_policy" "redis_memory" {
  count = length(var.memorystore_instances) == 0 ? 0 : 1

  project      = var.project_id
  display_name = "Memorystore memory usage above ${var.redis_memory_ratio_threshold * 100}%"
  combiner     = "OR"
  severity     = "WARNING"

  conditions {
    display_name = "memory usage ratio > ${var.redis_memory_ratio_threshold}"
    condition_threshold {
      filter          = "resource.type=\"redis_instance\" AND metric.type=\"redis.googleapis.com/stats/memory/usage_ratio\" AND (${local.memorystore_filter})"
      comparison      = "COMPARISON_GT"
      threshold_value = var.redis_memory_ratio_threshold
      duration        = "600s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
      trigger {
        count = 1
      }
    }
  }

  notification_channels = local.routes.notify

  alert_strategy {
    auto_close = var.auto_close
  }

  documentation {
    subject   = "Memorystore memory pressure"
    mime_type = "text/markdown"
    content   = "A Memorystore instance is close to maxmemory. Runbook: ${var.runbook_base_url}/redis-memory-pressure.md"
    links {
      display_name = "Runbook"
      url          = "${var.runbook_base_url}/redis-memory-pressure.md"
    }
  }

  user_labels = {
    severity = "warning"
    signal   = "redis-memory"
  }
}

resource "google_monitoring_alert_policy" "redis_clients" {
  count = length(var.memorystore_instances) == 0 ? 0 : 1

  project      = var.project_id
  display_name = "Memorystore connected clients near maxclients, or connections rejected"
  combiner     = "OR"
  severity     = "CRITICAL"

  conditions {
    display_name = "connected clients > ${var.redis_clients_ratio_threshold} x ${var.redis_max_clients}"
    condition_threshold {
      filter          = "resource.type=\"redis_instance\" AND metric.type=\"redis.googleapis.com/clients/connected\" AND (${local.memorystore_filter})"
      comparison      = "COMPARISON_GT"
      threshold_value = floor(var.redis_clients_ratio_threshold * var.redis_max_clients)
      duration        = "300s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
      trigger {
        count = 1
      }
    }
  }

  conditions {
    display_name = "connections rejected (maxclients reached)"
    condition_threshold {
      filter          = "resource.type=\"redis_instance\" AND metric.type=\"redis.googleapis.com/stats/reject_connections_count\" AND (${local.memorystore_filter})"
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_DELTA"
      }
      trigger {
        count = 1
      }
    }
  }

  notification_channels = local.routes.page

  alert_strategy {
    auto_close = var.auto_close
  }

  documentation {
    subject   = "Memorystore clients near the limit"
    mime_type = "text/markdown"
    content   = "A Memorystore instance has nearly as many clients as maxclients allows, or is refusing connections. Runbook: ${var.runbook_base_url}/redis-connected-clients.md"
    links {
      display_name = "Runbook"
      url          = "${var.runbook_base_url}/redis-connected-clients.md"
    }
  }

  user_labels = {
    severity = "critical"
    signal   = "redis-clients"
  }
}

resource "google_monitoring_alert_policy" "redis_evictions" {
  count = length(var.memorystore_instances) == 0 ? 0 : 1

  project      = var.project_id
  display_name = "Memorystore evicting keys faster than ${var.redis_evictions_per_second}/s"
  combiner     = "OR"
  severity     = "WARNING"

  conditions {
    display_name = "evicted keys per second > ${var.redis_evictions_per_second}"
    condition_threshold {
      filter          = "resource.type=\"redis_instance\" AND metric.type=\"redis.googleapis.com/stats/evicted_keys\" AND (${local.memorystore_filter})"
      comparison      = "COMPARISON_GT"
      threshold_value = var.redis_evictions_per_second
      duration        = "600s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_RATE"
      }
      trigger {
        count = 1
      }
    }
  }

  notification_channels = local.routes.notify

  alert_strategy {
    auto_close = var.auto_close
  }

  documentation {
    subject   = "Memorystore evictions"
    mime_type = "text/markdown"
    content   = "A Memorystore instance is evicting keys: sessions and queued work may be lost. Runbook: ${var.runbook_base_url}/redis-evictions.md"
    links {
      display_name = "Runbook"
      url          = "${var.runbook_base_url}/redis-evictions.md"
    }
  }

  user_labels = {
    severity = "warning"
    signal   = "redis-evictions"
  }
}
