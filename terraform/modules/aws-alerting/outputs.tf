output "alarms" {
  description = "Every alarm that notifies: its name by a readable key (composite alarms for the multi-window ones)."
  value = merge(
    { for k, a in aws_cloudwatch_composite_alarm.error_burn : "redis_error_budget_burn_${k}" => a.alarm_name },
    { for k, a in aws_cloudwatch_metric_alarm.connection_errors : "redis_connection_errors_${k}" => a.alarm_name },
    { for k, a in aws_cloudwatch_metric_alarm.latency_p99 : "redis_latency_p99_${k}" => a.alarm_name },
    { for k, a in aws_cloudwatch_composite_alarm.slow_operations : "redis_slow_operations_${k}" => a.alarm_name },
    { for k, a in aws_cloudwatch_metric_alarm.function_5xx : "function_5xx_${k}" => a.alarm_name },
    { for k, a in aws_cloudwatch_metric_alarm.redis_health_probe : "redis_health_probe_${k}" => a.alarm_name },
    { for k, a in aws_cloudwatch_metric_alarm.redis_memory : "redis_memory_${k}" => a.alarm_name },
    { for k, a in aws_cloudwatch_metric_alarm.redis_clients : "redis_clients_${k}" => a.alarm_name },
    { for k, a in aws_cloudwatch_metric_alarm.redis_evictions : "redis_evictions_${k}" => a.alarm_name },
  )
}

output "health_checks" {
  description = "The Route 53 health check probing each function's /redis-health: its id."
  value       = { for k, h in aws_route53_health_check.redis_health : k => h.id }
}

output "topics" {
  description = "SNS topic ARNs of the routes: page, notify, and probe_page (us-east-1)."
  value       = local.topics
}
