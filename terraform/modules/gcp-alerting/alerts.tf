# Alert policies. The expressions come from alerting-core (PromQL, the same
# text promtool evaluates offline: terraform/tests/rendered/gcp-rules.yaml).
# Every policy carries a severity (CRITICAL pages, WARNING notifies), the
# channels of its route, the environment as a label, a runbook link under
# var.runbook_base_url (files in terraform/runbooks/) and auto-close.
#
# What groups incidents: Cloud Monitoring opens one incident per policy,
# condition and time series, and has no suppression between policies. So
# the page is one policy per environment whose query counts every burning
# page tier of every SLO and every failing probe into ONE series: one cause
# hitting every function opens one incident. The cause policies that page
# (Memorystore memory, clients) end in `unless on() (<the same union>)`, so
# they are silent while it is open. The burn policies per SLO and tier
# notify (they name the function and the SLO), the ticket tier too.

module "core" {
  source = "../alerting-core"

  environment = var.environment
  # This module's own validation of var.pagerduty_service_key refuses an environment of
  # var.pager_required_environments without a pager (one error, on the
  # variable the user sets).
  pager_required_environments = []
  # Whether a key is set is not a secret (the key is).
  pager_configured = nonsensitive(var.pagerduty_service_key != null)
  functions = {
    for name, f in var.functions : name => {
      cloud_run_service = f.cloud_run_service
      max_instances     = f.max_instances
      uptime_check_id   = google_monitoring_uptime_check_config.redis_health[name].uptime_check_id
    }
  }
  request_availability_objective   = var.request_availability_objective
  request_latency_objective        = var.request_latency_objective
  redis_availability_objective     = var.redis_availability_objective
  redis_latency_objective          = var.redis_latency_objective
  burn_rate_tiers                  = var.burn_rate_tiers
  connection_error_ratio_threshold = var.connection_error_ratio_threshold
  latency_p99_threshold_ms         = var.latency_p99_threshold_ms
  heartbeat_minutes                = var.heartbeat_minutes
  instance_ratio_threshold         = var.instance_ratio_threshold
  memorystore_project              = var.project_id
  memorystore_region               = var.memorystore_region
  memorystore_instances            = var.memorystore_instances
  redis_memory_warn_ratio          = var.redis_memory_warn_ratio
  redis_memory_page_ratio          = var.redis_memory_page_ratio
  redis_cpu_ratio_threshold        = var.redis_cpu_ratio_threshold
  redis_max_clients                = var.redis_max_clients
  redis_clients_ratio_threshold    = var.redis_clients_ratio_threshold
  redis_evictions_per_second       = var.redis_evictions_per_second
  queue_backlog_threshold          = var.queue_backlog_threshold
  queue_oldest_age_threshold_ms    = var.queue_oldest_age_threshold_ms
  queue_dead_letters_threshold     = var.queue_dead_letters_threshold
}

locals {
  page_alerts   = { for k, a in module.core.gcp_alerts : k => a if a.route == "page" }
  notify_alerts = { for k, a in module.core.gcp_alerts : k => a if a.route != "page" }
}

# --- What pages: the environment's SLO page, and the cause alerts that page
# unless it is open.

resource "google_monitoring_alert_policy" "page" {
  for_each = local.page_alerts

  project      = var.project_id
  display_name = each.value.name
  combiner     = "OR"
  severity     = "CRITICAL"

  conditions {
    display_name = each.value.name
    condition_prometheus_query_language {
      query               = each.value.query
      duration            = each.value.duration
      evaluation_interval = "60s"
    }
  }

  notification_channels = local.routes.page

  alert_strategy {
    auto_close = var.auto_close
  }

  documentation {
    subject   = each.value.name
    mime_type = "text/markdown"
    content   = "${each.value.summary} Runbook (start with its five-minute triage): ${var.runbook_base_url}/${each.value.runbook}"
    links {
      display_name = "Runbook"
      url          = "${var.runbook_base_url}/${each.value.runbook}"
    }
  }

  user_labels = {
    severity    = "critical"
    environment = var.environment
    tier        = each.value.tier
    alert       = replace(each.key, "_", "-")
  }

  depends_on = [google_logging_metric.count]
}

# --- What notifies: the burn of each SLO and tier (per function), the ticket
# tier, and the causes.

resource "google_monitoring_alert_policy" "notify" {
  for_each = local.notify_alerts

  project      = var.project_id
  display_name = each.value.name
  combiner     = "OR"
  severity     = "WARNING"

  conditions {
    display_name = each.value.name
    condition_prometheus_query_language {
      query               = each.value.query
      duration            = each.value.duration
      evaluation_interval = "60s"
    }
  }

  notification_channels = local.routes.notify

  alert_strategy {
    auto_close = var.auto_close
  }

  documentation {
    subject   = each.value.name
    mime_type = "text/markdown"
    content   = "${each.value.summary} Runbook (start with its five-minute triage): ${var.runbook_base_url}/${each.value.runbook}"
    links {
      display_name = "Runbook"
      url          = "${var.runbook_base_url}/${each.value.runbook}"
    }
  }

  user_labels = {
    severity    = "warning"
    environment = var.environment
    tier        = each.value.tier
    alert       = replace(each.key, "_", "-")
  }

  depends_on = [google_logging_metric.count]
}

# --- Black-box probe of each function's /redis-health. Its failure is part
# of the SLO page; this policy names the function (notify).

resource "google_monitoring_uptime_check_config" "redis_health" {
  for_each = var.functions

  project      = var.project_id
  display_name = "${var.environment} ${each.key} /redis-health"
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
    # A private service (Cloud Run IAM invoker check, the deploy path's
    # default) answers only authenticated callers: the check sends an ID
    # token of the Monitoring service agent, which needs roles/run.invoker.
    dynamic "service_agent_authentication" {
      for_each = var.authenticated_probes ? [1] : []
      content {
        type = "OIDC_TOKEN"
      }
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

  user_labels = {
    environment = var.environment
    function    = each.key
  }
}

resource "google_monitoring_alert_policy" "redis_health_probe" {
  for_each = var.functions

  project      = var.project_id
  display_name = "${var.environment}: ${each.key} /redis-health failing from several regions"
  combiner     = "OR"
  severity     = "WARNING"

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

  notification_channels = local.routes.notify

  alert_strategy {
    auto_close = var.auto_close
  }

  documentation {
    subject   = "${var.environment}: ${each.key} /redis-health is failing"
    mime_type = "text/markdown"
    content   = "The black-box probe of ${each.key} (https://${each.value.host}/redis-health) fails from more than one region. It pages through the environment's SLO page; this notification names the function. Runbook: ${var.runbook_base_url}/redis-health-probe.md"
    links {
      display_name = "Runbook"
      url          = "${var.runbook_base_url}/redis-health-probe.md"
    }
  }

  user_labels = {
    severity    = "warning"
    environment = var.environment
    tier        = "cause"
    function    = each.key
  }
}
