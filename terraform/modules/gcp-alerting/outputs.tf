output "alert_policies" {
  description = "Every alert policy created: its id by a readable key."
  value = merge(
    { for k, p in google_monitoring_alert_policy.page : k => p.id },
    { for k, p in google_monitoring_alert_policy.notify : k => p.id },
    { for k, p in google_monitoring_alert_policy.redis_health_probe : "redis_health_probe_${k}" => p.id },
  )
}

output "uptime_checks" {
  description = "The /redis-health uptime check of each function: its check id."
  value       = { for k, c in google_monitoring_uptime_check_config.redis_health : k => c.uptime_check_id }
}

output "log_metrics" {
  description = "The log-based metrics created over the functions' metrics line (empty when manage_log_metrics is false)."
  value       = [for m in google_logging_metric.count : m.name]
}

output "notification_channels" {
  description = "Channel ids of each route (page, notify). Ids only: no address or key."
  value       = local.routes
}

output "dashboard" {
  description = "The dashboard's id."
  value       = google_monitoring_dashboard.redis_functions.id
}

output "prometheus_rules" {
  description = "The alert queries as a Prometheus rule file (what promtool evaluates offline)."
  value       = module.core.gcp_prometheus_rules
}
