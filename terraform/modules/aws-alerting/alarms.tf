# CloudWatch alarms. The specifications come from alerting-core (rendered in
# terraform/tests/rendered/alerts.json, where the contract test evaluates
# them with a sliding-window evaluator). Every alarm that notifies carries a
# severity tag (critical pages, warning notifies), a runbook tag and a
# runbook link in its description (files in terraform/runbooks/), the
# environment tag, alarm_actions and ok_actions. Alarms with
# actions_enabled = false are the parts of a composite alarm.
#
# One cause pages once: every SLO burn of every function is a composite
# alarm on the notify route; the environment's page is ONE composite alarm,
# ALARM of any paging burn, on the page route; the cause alarms that page
# (ElastiCache memory, connections) are composite alarms whose actions that
# page suppresses while it is in ALARM (ActionsSuppressor). The probes live
# in us-east-1 (Route 53 metrics exist only there) and a composite alarm
# cannot span regions: they page once per environment through their own
# composite alarm there (see docs/operations.md, "Routing").
#
# The functions' metrics come from their metrics line (Embedded Metric
# Format, namespace var.metric_namespace, dimensions service and
# environment, and environment alone for the environment-wide alarms).

module "core" {
  source = "../alerting-core"

  environment = var.environment
  # This module's own validation of var.pagerduty_endpoint refuses an environment of
  # var.pager_required_environments without a pager (one error, on the
  # variable the user sets).
  pager_required_environments = []
  # Whether an endpoint is set is not a secret (the URL is).
  pager_configured = nonsensitive(var.pagerduty_endpoint != null)
  functions = {
    for name, f in var.functions : name => {
      lambda_function      = f.lambda_function
      reserved_concurrency = f.reserved_concurrency
    }
  }
  metric_namespace                 = var.metric_namespace
  request_availability_objective   = var.request_availability_objective
  request_latency_objective        = var.request_latency_objective
  redis_availability_objective     = var.redis_availability_objective
  redis_latency_objective          = var.redis_latency_objective
  burn_rate_tiers                  = var.burn_rate_tiers
  connection_error_ratio_threshold = var.connection_error_ratio_threshold
  latency_p99_threshold_ms         = var.latency_p99_threshold_ms
  heartbeat_minutes                = var.heartbeat_minutes
  instance_ratio_threshold         = var.instance_ratio_threshold
  account_concurrency_limit        = var.account_concurrency_limit
  elasticache_nodes                = var.elasticache_nodes
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

# --- SLO burns: a long-window and a short-window alarm per function, SLO
# and tier, and their composite (notify).

resource "aws_cloudwatch_metric_alarm" "slo_window" {
  # checkov:skip=CKV_AWS_319:A window of a composite alarm: the composite alarm notifies, this one must not.
  for_each = module.core.aws_windows

  alarm_name          = "${var.name_prefix}-${each.key}"
  alarm_description   = "Window (${each.value.seconds}s) of the ${each.value.burn} burn alarm of ${each.value.function} (${var.environment})."
  comparison_operator = "GreaterThanThreshold"
  threshold           = each.value.threshold
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  actions_enabled     = false

  metric_query {
    id          = "ratio"
    expression  = each.value.expression
    label       = "bad / total"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = each.value.metrics
    content {
      id = metric_query.value.id
      metric {
        namespace   = metric_query.value.namespace
        metric_name = metric_query.value.metric_name
        dimensions  = metric_query.value.dimensions
        period      = each.value.seconds
        stat        = metric_query.value.stat
      }
    }
  }

  tags = merge(var.tags, { environment = var.environment })
}

resource "aws_cloudwatch_composite_alarm" "slo_burn" {
  for_each = module.core.aws_burns

  alarm_name        = "${var.name_prefix}-${each.key}"
  alarm_description = "${each.value.description} Runbook (start with its five-minute triage): ${var.runbook_base_url}/${each.value.runbook}"
  alarm_rule        = "ALARM(\"${aws_cloudwatch_metric_alarm.slo_window[each.value.long].alarm_name}\") AND ALARM(\"${aws_cloudwatch_metric_alarm.slo_window[each.value.short].alarm_name}\")"
  alarm_actions     = [local.route.warning]
  ok_actions        = [local.route.warning]

  tags = merge(var.tags, {
    severity    = "warning"
    tier        = each.value.tier
    runbook     = "${var.runbook_base_url}/${each.value.runbook}"
    function    = each.value.function
    environment = local.environment_tag
  })
}

# --- The environment's one page: any paging burn of any function.

resource "aws_cloudwatch_composite_alarm" "slo_page" {
  alarm_name        = "${var.name_prefix}-slo-page"
  alarm_description = "${var.environment}: a user-facing SLO burns its error budget at a paging rate (the state reason names the burn alarms). Runbook (start with its five-minute triage): ${var.runbook_base_url}/slo-page.md"
  alarm_rule        = join(" OR ", [for k in module.core.aws_page_children : "ALARM(\"${aws_cloudwatch_composite_alarm.slo_burn[k].alarm_name}\")"])
  alarm_actions     = [local.route.critical]
  ok_actions        = [local.route.critical]

  tags = merge(var.tags, {
    severity    = "critical"
    tier        = "page"
    runbook     = "${var.runbook_base_url}/slo-page.md"
    environment = local.environment_tag
  })
}

# --- Causes, saturation and the heartbeat (notify).

resource "aws_cloudwatch_metric_alarm" "notify" {
  for_each = module.core.aws_notify

  alarm_name          = "${var.name_prefix}-${each.key}"
  alarm_description   = "${each.value.description} Runbook (start with its five-minute triage): ${var.runbook_base_url}/${each.value.runbook}"
  comparison_operator = each.value.comparison
  threshold           = each.value.threshold
  evaluation_periods  = each.value.evaluation_periods
  datapoints_to_alarm = each.value.datapoints_to_alarm
  treat_missing_data  = each.value.treat_missing_data
  alarm_actions       = [local.route.warning]
  ok_actions          = [local.route.warning]

  dynamic "metric_query" {
    for_each = each.value.expression == null ? [] : [each.value.expression]
    content {
      id          = "result"
      expression  = metric_query.value
      label       = each.key
      return_data = true
    }
  }

  dynamic "metric_query" {
    for_each = each.value.metrics
    content {
      id          = metric_query.value.id
      return_data = each.value.expression == null
      metric {
        namespace   = metric_query.value.namespace
        metric_name = metric_query.value.metric_name
        dimensions  = metric_query.value.dimensions
        period      = each.value.period
        stat        = metric_query.value.stat
      }
    }
  }

  tags = merge(var.tags, {
    severity    = "warning"
    tier        = "cause"
    runbook     = "${var.runbook_base_url}/${each.value.runbook}"
    environment = local.environment_tag
  })
}

# --- Causes that page, unless the SLO page is in ALARM: a metric alarm
# (actions disabled) and a composite alarm with ActionsSuppressor.

resource "aws_cloudwatch_metric_alarm" "page_cause" {
  # checkov:skip=CKV_AWS_319:Part of a composite alarm: the composite alarm pages, unless suppressed.
  for_each = module.core.aws_page_causes

  alarm_name          = "${var.name_prefix}-${each.key}-source"
  alarm_description   = "Source of the ${each.key} page (${var.environment})."
  comparison_operator = each.value.comparison
  threshold           = each.value.threshold
  evaluation_periods  = each.value.evaluation_periods
  datapoints_to_alarm = each.value.datapoints_to_alarm
  treat_missing_data  = each.value.treat_missing_data
  actions_enabled     = false

  dynamic "metric_query" {
    for_each = each.value.metrics
    content {
      id          = metric_query.value.id
      return_data = true
      metric {
        namespace   = metric_query.value.namespace
        metric_name = metric_query.value.metric_name
        dimensions  = metric_query.value.dimensions
        period      = each.value.period
        stat        = metric_query.value.stat
      }
    }
  }

  tags = merge(var.tags, { environment = var.environment })
}

resource "aws_cloudwatch_composite_alarm" "page_cause" {
  for_each = module.core.aws_page_causes

  alarm_name        = "${var.name_prefix}-${each.key}"
  alarm_description = "${each.value.description} Silent while ${aws_cloudwatch_composite_alarm.slo_page.alarm_name} is in ALARM. Runbook (start with its five-minute triage): ${var.runbook_base_url}/${each.value.runbook}"
  alarm_rule        = "ALARM(\"${aws_cloudwatch_metric_alarm.page_cause[each.key].alarm_name}\")"
  alarm_actions     = [local.route.critical]
  ok_actions        = [local.route.critical]

  actions_suppressor {
    alarm            = aws_cloudwatch_composite_alarm.slo_page.alarm_name
    wait_period      = 120
    extension_period = 300
  }

  tags = merge(var.tags, {
    severity    = "critical"
    tier        = "page"
    runbook     = "${var.runbook_base_url}/${each.value.runbook}"
    environment = local.environment_tag
  })
}

# --- Black-box probe of each function's /redis-health (Route 53 health
# check, for public hosts), paging once per environment through a composite
# alarm in us-east-1 that also takes the alarms of probes made elsewhere
# (var.probe_alarm_names: a signing canary of an IAM-private Function URL).

locals {
  route53_probed = { for k, f in var.functions : k => f if f.route53_probe }
}

resource "aws_route53_health_check" "redis_health" {
  for_each = local.route53_probed

  type              = "HTTPS_STR_MATCH"
  fqdn              = each.value.host
  port              = 443
  resource_path     = "${each.value.path_prefix}/redis-health"
  search_string     = "\"status\":\"healthy\""
  request_interval  = 30
  failure_threshold = 3
  measure_latency   = true
  enable_sni        = true

  tags = merge(var.tags, { Name = "${var.name_prefix}-${each.key}-redis-health", function = each.key, environment = var.environment })
}

resource "aws_cloudwatch_metric_alarm" "redis_health_probe" {
  # checkov:skip=CKV_AWS_319:Part of the probe page (a composite alarm): the composite alarm pages.
  provider = aws.us_east_1
  for_each = local.route53_probed

  alarm_name          = "${var.name_prefix}-${each.key}-redis-health-probe"
  alarm_description   = "${each.key} (${var.environment}): https://${each.value.host}${each.value.path_prefix}/redis-health is failing from the Route 53 checkers."
  namespace           = "AWS/Route53"
  metric_name         = "HealthCheckStatus"
  dimensions          = { HealthCheckId = aws_route53_health_check.redis_health[each.key].id }
  statistic           = "Minimum"
  period              = 60
  evaluation_periods  = 2
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  treat_missing_data  = "breaching"
  actions_enabled     = false

  tags = merge(var.tags, { function = each.key, environment = var.environment })
}

resource "aws_cloudwatch_composite_alarm" "probe_page" {
  provider = aws.us_east_1

  alarm_name        = "${var.name_prefix}-probe-page"
  alarm_description = "${var.environment}: the /redis-health probe of a function fails (the state reason names it). Runbook (start with its five-minute triage): ${var.runbook_base_url}/redis-health-probe.md"
  alarm_rule = join(" OR ", concat(
    [for k, a in aws_cloudwatch_metric_alarm.redis_health_probe : "ALARM(\"${a.alarm_name}\")"],
    [for name in var.probe_alarm_names : "ALARM(\"${name}\")"],
  ))

  lifecycle {
    precondition {
      condition     = length(local.route53_probed) + length(var.probe_alarm_names) > 0
      error_message = "every environment needs a probe: a function with route53_probe = true, or an alarm in probe_alarm_names."
    }
  }
  alarm_actions = [aws_sns_topic.probe_page.arn]
  ok_actions    = [aws_sns_topic.probe_page.arn]

  tags = merge(var.tags, {
    severity    = "critical"
    tier        = "page"
    runbook     = "${var.runbook_base_url}/redis-health-probe.md"
    environment = local.environment_tag
  })
}

locals {
  # The environment tag of the alarms that notify, as a plain string
  # (checkov evaluates tags = merge(var.tags, {...}) and needs it so).
  environment_tag = lower(var.environment)
}
