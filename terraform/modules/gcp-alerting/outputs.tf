output "alert_policies" {
  description = "Every alert policy created: its id by a readable key."
  value = merge(
    { for k, p in google_monitoring_alert_policy.redis_error_budget_burn : "redis_error_budget_burn_${k}" => p.id },
    {
      redis_connection_errors = google_monitoring_alert_policy.redis_connection_errors.id
      redis_latency_p99       = google_monitoring_alert_policy.redis_latency_p99.id
      redis_slow_operations   = google_monitoring_alert_policy.redis_slow_operations.id
      function_5xx            = google_monitoring_alert_policy.function_5xx.id
    },
    { for k, p in google_monitoring_alert_policy.redis_health_probe : "redis_health_probe_${k}" => p.id },
    { for p in google_monitoring_alert_policy.redis_memory : "redis_memory" => p.id },
    { for p in google_monitoring_alert_policy.redis_clients : "redis_clients" => p.id },
    { for p in google_monitoring_alert_policy.redis_evictions : "redis_evictions" => p.id },
  )
}

output "uptime_checks" {
  description = "The /redis-health uptime check of each function: its check id."
  value       = { for k, c in google_monitoring_uptime_check_config.redis_health : k => c.uptime_check_id }
}

output "log_metrics" {
  description = "The log-based metrics created over the functions' metrics line."
  value       = concat([for m in google_logging_metric.count : m.name], [for m in google_logging_metric.latency : m.name])
}

output "notification_channels" {
  description = "Channel ids of each route (page, notify). Ids only: no address or key."
  value       = local.routes
}
