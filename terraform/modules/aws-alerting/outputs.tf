output "alarms" {
  description = "Every alarm that notifies or pages: its name by a readable key (composite alarms for the multi-window ones)."
  value = merge(
    { slo_page = aws_cloudwatch_composite_alarm.slo_page.alarm_name, probe_page = aws_cloudwatch_composite_alarm.probe_page.alarm_name },
    { for k, a in aws_cloudwatch_composite_alarm.slo_burn : "slo_burn_${k}" => a.alarm_name },
    { for k, a in aws_cloudwatch_metric_alarm.notify : k => a.alarm_name },
    { for k, a in aws_cloudwatch_composite_alarm.page_cause : k => a.alarm_name },
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

output "dashboard" {
  description = "The dashboard's name."
  value       = aws_cloudwatch_dashboard.redis_functions.dashboard_name
}
