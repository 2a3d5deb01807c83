output "environment" {
  description = "The environment the alerts watch."
  value       = var.environment
}

output "slos" {
  description = "The SLOs: objective, whether they page, bad and total fields, runbook."
  value       = local.slos
}

output "burns" {
  description = "One burn-rate alert per SLO and tier: windows, factor, threshold (factor x budget), whether it pages."
  value       = local.burns
}

output "memorystore_instance_paths" {
  description = "The Memorystore instances as the instance_id label names them (projects/P/locations/R/instances/ID)."
  value       = local.memorystore_paths
}

output "gcp_alerts" {
  description = "Cloud Monitoring alert policies, by key: display name, severity, route (page, notify), tier (page, ticket, cause), runbook file, PromQL query, duration."
  value       = local.gcp_alerts
}

output "gcp_page_union" {
  description = "The PromQL union of everything that pages (burning page tiers, failing probes)."
  value       = local.gcp_page_union
}

output "gcp_prometheus_rules" {
  description = "gcp_alerts as a Prometheus rule file: what promtool evaluates offline (the series names are Cloud Monitoring's PromQL names)."
  value = yamlencode({
    groups = [{
      name     = "redis-functions-${var.environment}"
      interval = "1m"
      rules = [for k in sort(keys(local.gcp_alerts)) : {
        alert  = k
        expr   = local.gcp_alerts[k].query
        "for"  = local.gcp_alerts[k].duration
        labels = { severity = lower(local.gcp_alerts[k].severity), route = local.gcp_alerts[k].route, tier = local.gcp_alerts[k].tier }
      }]
    }]
  })
}

output "aws_windows" {
  description = "The window alarms of the SLO burns (actions disabled): metric-math expression, metrics, period, threshold."
  value       = local.aws_windows
}

output "aws_burns" {
  description = "One composite alarm per function, SLO and tier: the long and short window alarms, whether it pages."
  value       = local.aws_burns
}

output "aws_page_children" {
  description = "The burn composites the environment's page alarm combines (OR)."
  value       = local.aws_page_children
}

output "aws_notify" {
  description = "Alarms that notify: causes, saturation, heartbeat."
  value       = local.aws_notify
}

output "aws_page_causes" {
  description = "Cause alarms that page unless the SLO page is open (ActionsSuppressor)."
  value       = local.aws_page_causes
}

output "gcp_ratios" {
  description = "PromQL of each SLO's bad / total, by SLO and window (key slo@window), one series per function (label service)."
  value       = local.gcp_ratio
}

output "gcp_own_matchers" {
  description = "The label matchers that select this environment's series of the log-based metrics."
  value       = local.gcp_own
}
