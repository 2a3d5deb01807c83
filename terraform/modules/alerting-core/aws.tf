# CloudWatch: the alarm specifications aws-alerting creates. Each SLO burn
# is a composite alarm of a long-window and a short-window metric-math alarm
# (actions disabled); the environment's page is one composite alarm over
# every paging burn (OR), and the cause alarms that page are composite alarms
# whose actions the page suppresses (ActionsSuppressor) while it fires.
# The functions' metrics come from the metrics line (Embedded Metric Format)
# with the dimensions service and environment; the environment-wide alarms
# read the dimension set [environment] the line also declares.

locals {
  aws_own_dimensions = { for name in keys(local.functions) : name => { service = name, environment = var.environment } }

  aws_slo_metrics = {
    for pair in setproduct(keys(local.functions), keys(local.slos)) : "${pair[0]}/${pair[1]}" => (
      local.slos[pair[1]].source == "own" ? {
        metrics = [
          for m in distinct(concat(local.slos[pair[1]].bad, local.slos[pair[1]].total)) : {
            id          = m
            namespace   = var.metric_namespace
            metric_name = m
            dimensions  = local.aws_own_dimensions[pair[0]]
            stat        = "Sum"
          }
        ]
        bad   = join(" + ", local.slos[pair[1]].bad)
        total = join(" + ", local.slos[pair[1]].total)
        } : {
        # Lambda's own counts: a throttle is not an invocation. Lambda
        # publishes no datapoint for a count that stayed at zero in a
        # period: FILL makes it 0 instead of missing (missing would make
        # the whole ratio missing, and the burn never fire).
        metrics = [
          for id, name in { errors = "Errors", throttles = "Throttles", invocations = "Invocations" } : {
            id                     = id
            namespace              = "AWS/Lambda"
            metric_name            = name
            dimensions             = { FunctionName = local.functions[pair[0]].lambda_function }
            stat                   = "Sum"
          }
        ]
        bad   = "FILL(errors, 0) + FILL(throttles, 0)"
        total = "FILL(invocations, 0) + FILL(throttles, 0)"
      }
    )
  }

  aws_windows = merge([
    for pair in setproduct(keys(local.functions), keys(local.burns)) : {
      for window in ["long", "short"] : "${pair[0]}-${pair[1]}-${window}" => {
        function   = pair[0]
        burn       = pair[1]
        window     = window
        seconds    = window == "long" ? local.burns[pair[1]].long_seconds : local.burns[pair[1]].short_seconds
        threshold  = tonumber(local.burns[pair[1]].threshold)
        expression = "IF((${local.aws_slo_metrics["${pair[0]}/${local.burns[pair[1]].slo}"].total}) > 0, (${local.aws_slo_metrics["${pair[0]}/${local.burns[pair[1]].slo}"].bad}) / (${local.aws_slo_metrics["${pair[0]}/${local.burns[pair[1]].slo}"].total}), 0)"
        metrics    = local.aws_slo_metrics["${pair[0]}/${local.burns[pair[1]].slo}"].metrics
      }
    }
  ]...)

  aws_burns = {
    for pair in setproduct(keys(local.functions), keys(local.burns)) : "${pair[0]}-${pair[1]}" => {
      function    = pair[0]
      burn        = pair[1]
      page        = local.burns[pair[1]].page
      tier        = local.burns[pair[1]].page ? "page" : "ticket"
      long        = "${pair[0]}-${pair[1]}-long"
      short       = "${pair[0]}-${pair[1]}-short"
      runbook     = local.burns[pair[1]].runbook
      description = "${pair[0]} (${var.environment}): ${local.burns[pair[1]].title} SLO burning (${local.burns[pair[1]].tier}): ${local.slos[local.burns[pair[1]].slo].what} above ${local.burns[pair[1]].factor} x ${local.burns[pair[1]].budget} over ${local.burns[pair[1]].long} and ${local.burns[pair[1]].short}."
    }
  }

  aws_page_children = sort([for k, b in local.aws_burns : k if b.page])

  # Single-metric or metric-math alarms that notify (causes, saturation, heartbeat).
  aws_notify = merge(
    {
      "redis-connection-errors" = {
        description         = "${var.environment}: Redis connection errors above ${format("%.6g", var.connection_error_ratio_threshold * 100)}% of operations over 5 minutes, across the functions."
        runbook             = "redis-connection-errors.md"
        comparison          = "GreaterThanThreshold"
        threshold           = var.connection_error_ratio_threshold
        period              = 300
        evaluation_periods  = 1
        datapoints_to_alarm = 1
        treat_missing_data  = "notBreaching"
        expression          = "IF(redis_operations > 0, redis_errors_connect / redis_operations, 0)"
        metrics = [for m in ["redis_errors_connect", "redis_operations"] : {
          id = m, namespace = var.metric_namespace, metric_name = m, dimensions = { environment = var.environment }, stat = "Sum"
        }]
      }
    },
    {
      # Queue gauges: the largest figure over the environment's lines in the
      # period (Maximum); a period without a line that read a queue is
      # missing data, not breaching.
      for key, q in {
        "queue-backlog" = {
          metric      = "queue_backlog", threshold = var.queue_backlog_threshold, periods = 3, runbook = "queue-backlog.md"
          description = "${var.environment}: a change queue's backlog (queue_backlog) above ${var.queue_backlog_threshold} for 15 minutes: consumers are not keeping up."
        }
        "queue-oldest-age" = {
          metric      = "queue_oldest_age_ms", threshold = var.queue_oldest_age_threshold_ms, periods = 1, runbook = "queue-oldest-age.md"
          description = "${var.environment}: a change queue's oldest item (queue_oldest_age_ms) older than ${var.queue_oldest_age_threshold_ms / 60000} minutes: something is stuck."
        }
        "queue-dead-letters" = {
          metric      = "queue_dead_letters", threshold = var.queue_dead_letters_threshold, periods = 1, runbook = "queue-dead-letters.md"
          description = "${var.environment}: change queues hold more than ${var.queue_dead_letters_threshold} dead letters (queue_dead_letters): changes that failed every delivery wait for an operator."
        }
        } : key => {
        description         = q.description
        runbook             = q.runbook
        comparison          = "GreaterThanThreshold"
        threshold           = q.threshold
        period              = 300
        evaluation_periods  = q.periods
        datapoints_to_alarm = q.periods
        treat_missing_data  = "notBreaching"
        expression          = null
        metrics = [{
          id = "gauge", namespace = var.metric_namespace, metric_name = q.metric, dimensions = { environment = var.environment }, stat = "Maximum"
        }]
      }
    },
    {
      for name in keys(local.functions) : "${name}-redis-latency-p99" => {
        description         = "${name} (${var.environment}): more than 1% of Redis operations took ${var.latency_p99_threshold_ms} ms or more for 15 minutes (the p99 of the distribution, not an average of p99s)."
        runbook             = "redis-latency.md"
        comparison          = "GreaterThanThreshold"
        threshold           = 0.01
        period              = 300
        evaluation_periods  = 3
        datapoints_to_alarm = 3
        treat_missing_data  = "notBreaching"
        expression          = "IF(redis_operations > 0, redis_operations_ge_${var.latency_p99_threshold_ms}ms / redis_operations, 0)"
        metrics = [for m in ["redis_operations_ge_${var.latency_p99_threshold_ms}ms", "redis_operations"] : {
          id = m, namespace = var.metric_namespace, metric_name = m, dimensions = local.aws_own_dimensions[name], stat = "Sum"
        }]
      }
    },
    {
      for name in keys(local.functions) : "${name}-metrics-heartbeat" => {
        description         = "${name} (${var.environment}): no metrics line for ${var.heartbeat_minutes} minutes although the probes call it: the alarms on its own counts are blind."
        runbook             = "metrics-heartbeat.md"
        comparison          = "LessThanThreshold"
        threshold           = 1
        period              = 300
        evaluation_periods  = var.heartbeat_minutes / 5
        datapoints_to_alarm = var.heartbeat_minutes / 5
        treat_missing_data  = "breaching"
        expression          = null
        metrics = [{
          id = "lines", namespace = var.metric_namespace, metric_name = "http_requests", dimensions = local.aws_own_dimensions[name], stat = "SampleCount"
        }]
      }
    },
    {
      for name, f in local.functions : "${name}-concurrency" => {
        description         = "${name} (${var.environment}): concurrent executions above ${format("%.6g", var.instance_ratio_threshold * 100)}% of its reserved concurrency (${f.reserved_concurrency}); beyond it Lambda throttles."
        runbook             = "function-saturation.md"
        comparison          = "GreaterThanThreshold"
        threshold           = floor(var.instance_ratio_threshold * f.reserved_concurrency)
        period              = 60
        evaluation_periods  = 5
        datapoints_to_alarm = 5
        treat_missing_data  = "notBreaching"
        expression          = null
        metrics = [{
          id = "concurrency", namespace = "AWS/Lambda", metric_name = "ConcurrentExecutions", dimensions = { FunctionName = f.lambda_function }, stat = "Maximum"
        }]
      } if f.reserved_concurrency != null
    },
    {
      "account-concurrency" = {
        description         = "${var.environment}: the account's concurrent executions above ${format("%.6g", var.instance_ratio_threshold * 100)}% of its limit (${var.account_concurrency_limit}); beyond it every function throttles."
        runbook             = "function-saturation.md"
        comparison          = "GreaterThanThreshold"
        threshold           = floor(var.instance_ratio_threshold * var.account_concurrency_limit)
        period              = 60
        evaluation_periods  = 5
        datapoints_to_alarm = 5
        treat_missing_data  = "notBreaching"
        expression          = null
        metrics = [{
          id = "concurrency", namespace = "AWS/Lambda", metric_name = "ConcurrentExecutions", dimensions = {}, stat = "Maximum"
        }]
      }
    },
    merge([
      for node in var.elasticache_nodes : {
        "${node}-memory" = {
          description         = "ElastiCache ${node}: memory above ${format("%.6g", var.redis_memory_warn_ratio * 100)}% of maxmemory for 10 minutes."
          runbook             = "redis-memory-pressure.md"
          comparison          = "GreaterThanThreshold"
          threshold           = var.redis_memory_warn_ratio * 100
          period              = 60
          evaluation_periods  = 10
          datapoints_to_alarm = 10
          treat_missing_data  = "missing"
          expression          = null
          metrics             = [{ id = "memory", namespace = "AWS/ElastiCache", metric_name = "DatabaseMemoryUsagePercentage", dimensions = { CacheClusterId = node }, stat = "Maximum" }]
        }
        "${node}-cpu" = {
          description         = "ElastiCache ${node}: Redis engine CPU above ${format("%.6g", var.redis_cpu_ratio_threshold * 100)}% for 15 minutes."
          runbook             = "redis-cpu.md"
          comparison          = "GreaterThanThreshold"
          threshold           = var.redis_cpu_ratio_threshold * 100
          period              = 300
          evaluation_periods  = 3
          datapoints_to_alarm = 3
          treat_missing_data  = "missing"
          expression          = null
          metrics             = [{ id = "cpu", namespace = "AWS/ElastiCache", metric_name = "EngineCPUUtilization", dimensions = { CacheClusterId = node }, stat = "Average" }]
        }
        "${node}-evictions" = {
          description         = "ElastiCache ${node}: more than ${var.redis_evictions_per_second} keys/s evicted over 5 minutes, twice in a row."
          runbook             = "redis-evictions.md"
          comparison          = "GreaterThanThreshold"
          threshold           = var.redis_evictions_per_second * 300
          period              = 300
          evaluation_periods  = 2
          datapoints_to_alarm = 2
          treat_missing_data  = "notBreaching"
          expression          = null
          metrics             = [{ id = "evictions", namespace = "AWS/ElastiCache", metric_name = "Evictions", dimensions = { CacheClusterId = node }, stat = "Sum" }]
        }
      }
    ]...),
  )

  # Cause alarms that page, each wrapped by aws-alerting in a composite
  # alarm whose actions the SLO page suppresses.
  aws_page_causes = merge([
    for node in var.elasticache_nodes : {
      "${node}-memory-page" = {
        description         = "ElastiCache ${node}: memory above ${format("%.6g", var.redis_memory_page_ratio * 100)}% of maxmemory for 5 minutes: evictions or OOM next."
        runbook             = "redis-memory-pressure.md"
        comparison          = "GreaterThanThreshold"
        threshold           = var.redis_memory_page_ratio * 100
        period              = 60
        evaluation_periods  = 5
        datapoints_to_alarm = 5
        treat_missing_data  = "missing"
        expression          = null
        metrics             = [{ id = "memory", namespace = "AWS/ElastiCache", metric_name = "DatabaseMemoryUsagePercentage", dimensions = { CacheClusterId = node }, stat = "Maximum" }]
      }
      "${node}-connections" = {
        description         = "ElastiCache ${node}: more than ${format("%.6g", var.redis_clients_ratio_threshold * 100)}% of maxclients (${var.redis_max_clients}) connected for 5 minutes; new connections are about to be refused."
        runbook             = "redis-connected-clients.md"
        comparison          = "GreaterThanThreshold"
        threshold           = floor(var.redis_clients_ratio_threshold * var.redis_max_clients)
        period              = 60
        evaluation_periods  = 5
        datapoints_to_alarm = 5
        treat_missing_data  = "missing"
        expression          = null
        metrics             = [{ id = "connections", namespace = "AWS/ElastiCache", metric_name = "CurrConnections", dimensions = { CacheClusterId = node }, stat = "Maximum" }]
      }
    }
  ]...)
}
