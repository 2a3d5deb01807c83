# CloudWatch alarms. Every alarm that notifies carries a severity tag
# (critical pages, warning notifies), a runbook tag and a runbook link in its
# description (files in terraform/runbooks/), alarm_actions and ok_actions (an
# alarm closes itself, and says so, when its metric recovers). Alarms with
# actions_enabled = false are the windows of a composite alarm.
#
# The functions' metrics come from their metrics line (Embedded Metric Format,
# namespace var.metric_namespace, dimension service = the function's name).
# shared/tests/terraform_contract.rs fails when an alarm reads a metric the
# functions do not write.

locals {
  error_budget   = 1 - var.availability_objective
  latency_budget = 1 - var.latency_objective

  burn = {
    for pair in setproduct(keys(var.functions), keys(var.burn_rate_tiers)) :
    "${pair[0]}-${pair[1]}" => merge(var.burn_rate_tiers[pair[1]], { function = pair[0], tier = pair[1] })
  }

  # The windows of each burn-rate alarm: long and short.
  burn_windows = merge([
    for key, b in local.burn : {
      "${key}-long"  = merge(b, { window = "long", seconds = b.long_window_seconds })
      "${key}-short" = merge(b, { window = "short", seconds = b.short_window_seconds })
    }
  ]...)

  # The slow-operation share over 1 hour and 5 minutes, per function.
  slow_windows = merge([
    for name in keys(var.functions) : {
      "${name}-long"  = { function = name, window = "long", seconds = 3600 }
      "${name}-short" = { function = name, window = "short", seconds = 300 }
    }
  ]...)
}

# --- Redis error ratio: multi-window burn rate against the availability objective.

resource "aws_cloudwatch_metric_alarm" "error_burn_window" {
  # checkov:skip=CKV_AWS_319:A window of a composite alarm: the composite alarm notifies, this one must not.
  for_each = local.burn_windows

  alarm_name          = "${var.name_prefix}-${each.value.function}-redis-error-burn-${each.value.tier}-${each.value.window}"
  alarm_description   = "Window (${each.value.seconds}s) of the ${each.value.tier} error-budget burn alarm of ${each.value.function}."
  comparison_operator = "GreaterThanThreshold"
  threshold           = each.value.factor * local.error_budget
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  actions_enabled     = false

  metric_query {
    id          = "ratio"
    expression  = "IF(operations > 0, errors / operations, 0)"
    label       = "Redis error ratio"
    return_data = true
  }
  metric_query {
    id = "errors"
    metric {
      namespace   = var.metric_namespace
      metric_name = "redis_errors"
      dimensions  = { service = each.value.function }
      period      = each.value.seconds
      stat        = "Sum"
    }
  }
  metric_query {
    id = "operations"
    metric {
      namespace   = var.metric_namespace
      metric_name = "redis_operations"
      dimensions  = { service = each.value.function }
      period      = each.value.seconds
      stat        = "Sum"
    }
  }

  tags = var.tags
}

resource "aws_cloudwatch_composite_alarm" "error_burn" {
  for_each = local.burn

  alarm_name        = "${var.name_prefix}-${each.value.function}-redis-error-budget-burn-${each.value.tier}"
  alarm_description = "${each.value.function}: Redis errors burn the error budget of the ${var.availability_objective} objective ${each.value.factor}x too fast over ${each.value.long_window_seconds}s and ${each.value.short_window_seconds}s. Runbook: ${var.runbook_base_url}/redis-error-budget-burn.md"
  alarm_rule        = "ALARM(\"${aws_cloudwatch_metric_alarm.error_burn_window["${each.key}-long"].alarm_name}\") AND ALARM(\"${aws_cloudwatch_metric_alarm.error_burn_window["${each.key}-short"].alarm_name}\")"
  alarm_actions     = [each.value.page ? local.route.critical : local.route.warning]
  ok_actions        = [each.value.page ? local.route.critical : local.route.warning]

  tags = merge(var.tags, {
    severity = each.value.page ? "critical" : "warning"
    runbook  = "${var.runbook_base_url}/redis-error-budget-burn.md"
    function = each.value.function
  })
}

# --- Bursts of connection errors.

resource "aws_cloudwatch_metric_alarm" "connection_errors" {
  for_each = var.functions

  alarm_name          = "${var.name_prefix}-${each.key}-redis-connection-errors"
  alarm_description   = "${each.key}: more than ${var.connection_error_burst} Redis connection errors in 5 minutes. Runbook: ${var.runbook_base_url}/redis-connection-errors.md"
  namespace           = var.metric_namespace
  metric_name         = "redis_errors_connect"
  dimensions          = { service = each.key }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.connection_error_burst
  treat_missing_data  = "notBreaching"
  alarm_actions       = [local.route.critical]
  ok_actions          = [local.route.critical]

  tags = merge(var.tags, {
    severity = "critical"
    runbook  = "${var.runbook_base_url}/redis-connection-errors.md"
    function = each.key
  })
}

# --- Latency: the reported p99, and the share of slow operations.

resource "aws_cloudwatch_metric_alarm" "latency_p99" {
  for_each = var.functions

  alarm_name          = "${var.name_prefix}-${each.key}-redis-latency-p99"
  alarm_description   = "${each.key}: the reported Redis p99 stays above ${var.latency_p99_threshold_ms} ms for 15 minutes. Runbook: ${var.runbook_base_url}/redis-latency.md"
  namespace           = var.metric_namespace
  metric_name         = "redis_latency_p99_ms"
  dimensions          = { service = each.key }
  statistic           = "Average"
  period              = 300
  evaluation_periods  = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.latency_p99_threshold_ms
  treat_missing_data  = "notBreaching"
  alarm_actions       = [local.route.warning]
  ok_actions          = [local.route.warning]

  tags = merge(var.tags, {
    severity = "warning"
    runbook  = "${var.runbook_base_url}/redis-latency.md"
    function = each.key
  })
}

resource "aws_cloudwatch_metric_alarm" "slow_share_window" {
  # checkov:skip=CKV_AWS_319:A window of a composite alarm: the composite alarm notifies, this one must not.
  for_each = local.slow_windows

  alarm_name          = "${var.name_prefix}-${each.value.function}-redis-slow-share-${each.value.window}"
  alarm_description   = "Window (${each.value.seconds}s) of the slow-operation alarm of ${each.value.function}."
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.latency_burn_factor * local.latency_budget
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  actions_enabled     = false

  metric_query {
    id          = "share"
    expression  = "IF(operations > 0, slow / operations, 0)"
    label       = "Share of Redis operations of 100 ms or more"
    return_data = true
  }
  metric_query {
    id = "slow"
    metric {
      namespace   = var.metric_namespace
      metric_name = "redis_slow_operations"
      dimensions  = { service = each.value.function }
      period      = each.value.seconds
      stat        = "Sum"
    }
  }
  metric_query {
    id = "operations"
    metric {
      namespace   = var.metric_namespace
      metric_name = "redis_operations"
      dimensions  = { service = each.value.function }
      period      = each.value.seconds
      stat        = "Sum"
    }
  }

  tags = var.tags
}

resource "aws_cloudwatch_composite_alarm" "slow_operations" {
  for_each = var.functions

  alarm_name        = "${var.name_prefix}-${each.key}-redis-slow-operations"
  alarm_description = "${each.key}: more Redis operations than the ${var.latency_objective} latency objective allows take 100 ms or longer (${var.latency_burn_factor}x the budget over 1 hour and 5 minutes). Runbook: ${var.runbook_base_url}/redis-latency.md"
  alarm_rule        = "ALARM(\"${aws_cloudwatch_metric_alarm.slow_share_window["${each.key}-long"].alarm_name}\") AND ALARM(\"${aws_cloudwatch_metric_alarm.slow_share_window["${each.key}-short"].alarm_name}\")"
  alarm_actions     = [local.route.critical]
  ok_actions        = [local.route.critical]

  tags = merge(var.tags, {
    severity = "critical"
    runbook  = "${var.runbook_base_url}/redis-latency.md"
    function = each.key
  })
}

# --- Function 5xx responses.

resource "aws_cloudwatch_metric_alarm" "function_5xx" {
  for_each = var.functions

  alarm_name          = "${var.name_prefix}-${each.key}-5xx"
  alarm_description   = "${each.key}: more than ${var.http_5xx_ratio_threshold * 100}% of responses are 5xx over 5 minutes. Runbook: ${var.runbook_base_url}/function-5xx.md"
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.http_5xx_ratio_threshold
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = [local.route.critical]
  ok_actions          = [local.route.critical]

  metric_query {
    id          = "share"
    expression  = "IF(requests > 0, failed / requests, 0)"
    label       = "Share of 5xx responses"
    return_data = true
  }
  metric_query {
    id = "failed"
    metric {
      namespace   = var.metric_namespace
      metric_name = "http_responses_5xx"
      dimensions  = { service = each.key }
      period      = 300
      stat        = "Sum"
    }
  }
  metric_query {
    id = "requests"
    metric {
      namespace   = var.metric_namespace
      metric_name = "http_requests"
      dimensions  = { service = each.key }
      period      = 300
      stat        = "Sum"
    }
  }

  tags = merge(var.tags, {
    severity = "critical"
    runbook  = "${var.runbook_base_url}/function-5xx.md"
    function = each.key
  })
}

# --- Black-box probe of each function's /redis-health (Route 53 health check).

resource "aws_route53_health_check" "redis_health" {
  for_each = var.functions

  type              = "HTTPS_STR_MATCH"
  fqdn              = each.value.host
  port              = 443
  resource_path     = "${each.value.path_prefix}/redis-health"
  search_string     = "\"status\":\"healthy\""
  request_interval  = 30
  failure_threshold = 3
  measure_latency   = true
  enable_sni        = true

  tags = merge(var.tags, { Name = "${var.name_prefix}-${each.key}-redis-health", function = each.key })
}

resource "aws_cloudwatch_metric_alarm" "redis_health_probe" {
  provider = aws.us_east_1
  for_each = var.functions

  alarm_name          = "${var.name_prefix}-${each.key}-redis-health-probe"
  alarm_description   = "${each.key}: https://${each.value.host}${each.value.path_prefix}/redis-health is failing from the Route 53 checkers. Runbook: ${var.runbook_base_url}/redis-health-probe.md"
  namespace           = "AWS/Route53"
  metric_name         = "HealthCheckStatus"
  dimensions          = { HealthCheckId = aws_route53_health_check.redis_health[each.key].id }
  statistic           = "Minimum"
  period              = 60
  evaluation_periods  = 2
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  treat_missing_data  = "breaching"
  alarm_actions       = [aws_sns_topic.probe_page.arn]
  ok_actions          = [aws_sns_topic.probe_page.arn]

  tags = merge(var.tags, {
    severity = "critical"
    runbook  = "${var.runbook_base_url}/redis-health-probe.md"
    function = each.key
  })
}

# --- ElastiCache itself.

resource "aws_cloudwatch_metric_alarm" "redis_memory" {
  for_each = toset(var.elasticache_nodes)

  alarm_name          = "${var.name_prefix}-${each.key}-memory"
  alarm_description   = "ElastiCache ${each.key}: memory usage above ${var.redis_memory_percent_threshold}% of maxmemory for 10 minutes. Runbook: ${var.runbook_base_url}/redis-memory-pressure.md"
  namespace           = "AWS/ElastiCache"
  metric_name         = "DatabaseMemoryUsagePercentage"
  dimensions          = { CacheClusterId = each.key }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 10
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.redis_memory_percent_threshold
  treat_missing_data  = "missing"
  alarm_actions       = [local.route.warning]
  ok_actions          = [local.route.warning]

  tags = merge(var.tags, {
    severity = "warning"
    runbook  = "${var.runbook_base_url}/redis-memory-pressure.md"
  })
}

resource "aws_cloudwatch_metric_alarm" "redis_clients" {
  for_each = toset(var.elasticache_nodes)

  alarm_name          = "${var.name_prefix}-${each.key}-connections"
  alarm_description   = "ElastiCache ${each.key}: more than ${var.redis_clients_ratio_threshold * 100}% of maxclients (${var.redis_max_clients}) connected; new connections are about to be rejected. Runbook: ${var.runbook_base_url}/redis-connected-clients.md"
  namespace           = "AWS/ElastiCache"
  metric_name         = "CurrConnections"
  dimensions          = { CacheClusterId = each.key }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  comparison_operator = "GreaterThanThreshold"
  threshold           = floor(var.redis_clients_ratio_threshold * var.redis_max_clients)
  treat_missing_data  = "missing"
  alarm_actions       = [local.route.critical]
  ok_actions          = [local.route.critical]

  tags = merge(var.tags, {
    severity = "critical"
    runbook  = "${var.runbook_base_url}/redis-connected-clients.md"
  })
}

resource "aws_cloudwatch_metric_alarm" "redis_evictions" {
  for_each = toset(var.elasticache_nodes)

  alarm_name          = "${var.name_prefix}-${each.key}-evictions"
  alarm_description   = "ElastiCache ${each.key}: more than ${var.redis_evictions_per_5m} keys evicted per 5 minutes, twice in a row. Runbook: ${var.runbook_base_url}/redis-evictions.md"
  namespace           = "AWS/ElastiCache"
  metric_name         = "Evictions"
  dimensions          = { CacheClusterId = each.key }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 2
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.redis_evictions_per_5m
  treat_missing_data  = "notBreaching"
  alarm_actions       = [local.route.warning]
  ok_actions          = [local.route.warning]

  tags = merge(var.tags, {
    severity = "warning"
    runbook  = "${var.runbook_base_url}/redis-evictions.md"
  })
}
