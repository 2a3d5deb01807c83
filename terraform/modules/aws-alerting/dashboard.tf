# One dashboard per environment: the page and burn alarms, each SLO's
# bad / total per function, then the causes.

data "aws_region" "current" {}

locals {
  dashboard_slos = { for k, s in module.core.slos : k => s if s.source == "own" }

  slo_widgets = [
    for slo, s in local.dashboard_slos : {
      type = "metric"
      properties = {
        title  = "${s.title}: bad / total (objective ${s.objective})"
        region = data.aws_region.current.name
        period = 300
        view   = "timeSeries"
        metrics = concat(
          [for i, f in keys(var.functions) : [{
            id         = "e${i}"
            label      = f
            expression = "IF((${join(" + ", [for m in s.total : "${m}_${i}"])}) > 0, (${join(" + ", [for m in s.bad : "${m}_${i}"])}) / (${join(" + ", [for m in s.total : "${m}_${i}"])}), 0)"
          }]],
          flatten([for i, f in keys(var.functions) : [
            for m in distinct(concat(s.bad, s.total)) : [var.metric_namespace, m, "service", f, "environment", var.environment, { id = "${m}_${i}", stat = "Sum", visible = false }]
          ]]),
        )
      }
    }
  ]

  cause_widgets = concat(
    [
      {
        type = "metric"
        properties = {
          title   = "Lambda errors and throttles"
          region  = data.aws_region.current.name
          period  = 60
          stat    = "Sum"
          metrics = flatten([for name, f in var.functions : [["AWS/Lambda", "Errors", "FunctionName", coalesce(f.lambda_function, name)], ["AWS/Lambda", "Throttles", "FunctionName", coalesce(f.lambda_function, name)]]])
        }
      },
      {
        type = "metric"
        properties = {
          title   = "Lambda concurrent executions"
          region  = data.aws_region.current.name
          period  = 60
          stat    = "Maximum"
          metrics = concat([["AWS/Lambda", "ConcurrentExecutions"]], [for name, f in var.functions : ["AWS/Lambda", "ConcurrentExecutions", "FunctionName", coalesce(f.lambda_function, name)]])
        }
      },
      {
        type = "metric"
        properties = {
          title   = "User and probe requests (per minute)"
          region  = data.aws_region.current.name
          period  = 60
          stat    = "Sum"
          metrics = flatten([for name in keys(var.functions) : [[var.metric_namespace, "http_user_requests", "service", name, "environment", var.environment], [var.metric_namespace, "http_probe_requests", "service", name, "environment", var.environment]]])
        }
      },
      {
        type = "metric"
        properties = {
          title   = "Redis operations of ${var.latency_p99_threshold_ms} ms or more, and breaker rejections"
          region  = data.aws_region.current.name
          period  = 60
          stat    = "Sum"
          metrics = flatten([for name in keys(var.functions) : [[var.metric_namespace, "redis_operations_ge_${var.latency_p99_threshold_ms}ms", "service", name, "environment", var.environment], [var.metric_namespace, "redis_circuit_rejections", "service", name, "environment", var.environment]]])
        }
      },
      {
        type = "metric"
        properties = {
          title   = "Cold starts, and metrics lines (the heartbeat)"
          region  = data.aws_region.current.name
          period  = 300
          metrics = flatten([for name in keys(var.functions) : [[var.metric_namespace, "cold_starts", "service", name, "environment", var.environment, { stat = "Sum" }], [var.metric_namespace, "http_requests", "service", name, "environment", var.environment, { stat = "SampleCount", label = "${name} lines" }]]])
        }
      },
    ],
    length(var.elasticache_nodes) == 0 ? [] : [
      {
        type = "metric"
        properties = {
          title   = "ElastiCache memory (% of maxmemory), engine CPU (%), connections"
          region  = data.aws_region.current.name
          period  = 60
          stat    = "Maximum"
          metrics = flatten([for node in var.elasticache_nodes : [["AWS/ElastiCache", "DatabaseMemoryUsagePercentage", "CacheClusterId", node], ["AWS/ElastiCache", "EngineCPUUtilization", "CacheClusterId", node], ["AWS/ElastiCache", "CurrConnections", "CacheClusterId", node, { yAxis = "right" }]]])
        }
      },
    ],
  )

  widgets = concat(local.slo_widgets, local.cause_widgets)
}

resource "aws_cloudwatch_dashboard" "redis_functions" {
  dashboard_name = "${var.name_prefix}-slos"
  dashboard_body = jsonencode({
    widgets = concat(
      [{
        type   = "alarm"
        x      = 0
        y      = 0
        width  = 24
        height = 4
        properties = {
          title  = "${var.environment}: the page and the burns"
          alarms = concat([aws_cloudwatch_composite_alarm.slo_page.arn], [for k in module.core.aws_page_children : aws_cloudwatch_composite_alarm.slo_burn[k].arn])
        }
      }],
      [for i, w in local.widgets : merge(w, { x = (i % 2) * 12, y = 4 + floor(i / 2) * 6, width = 12, height = 6 })],
    )
  })
}
