# The SLOs, their error budgets and the burn-rate tiers, shared by both
# clouds. Every expression the alerts evaluate is built from these.

locals {
  functions = {
    for name, f in var.functions : name => {
      cloud_run_service    = coalesce(f.cloud_run_service, replace(name, "_", "-"))
      max_instances        = f.max_instances
      lambda_function      = coalesce(f.lambda_function, name)
      reserved_concurrency = f.reserved_concurrency
      uptime_check_id      = f.uptime_check_id
    }
  }

  # A window in seconds as a PromQL duration (1h, 30m, 3d).
  tiers = {
    for name, t in var.burn_rate_tiers : name => merge(t, {
      long = (t.long_window_seconds % 86400 == 0 ? "${t.long_window_seconds / 86400}d" :
      t.long_window_seconds % 3600 == 0 ? "${t.long_window_seconds / 3600}h" : "${t.long_window_seconds / 60}m")
      short = (t.short_window_seconds % 86400 == 0 ? "${t.short_window_seconds / 86400}d" :
      t.short_window_seconds % 3600 == 0 ? "${t.short_window_seconds / 3600}h" : "${t.short_window_seconds / 60}m")
    })
  }

  # bad / total: fields of the metrics line (CloudWatch metrics of the same
  # names), summed. The request SLOs read the http_user_* counts, which
  # leave out the probe routes (/redis-health, /healthz): a Redis flap with
  # probe traffic only burns no request budget. The Redis SLI counts the
  # operations the open circuit breaker refused as failed ones, so with the
  # breaker open it reads failure, never 0 of 0.
  slos = {
    request_availability_platform = {
      title     = "Request availability, platform"
      objective = var.request_availability_objective
      pages     = true
      runbook   = "request-availability.md"
      source    = "platform"
      bad       = []
      total     = []
      what      = "requests the platform counts as failed: Cloud Run request_count with a 5xx or 429 response code; Lambda Errors + Throttles over Invocations + Throttles"
    }
    request_availability = {
      title     = "Request availability"
      objective = var.request_availability_objective
      pages     = true
      runbook   = "request-availability.md"
      source    = "own"
      bad       = ["http_user_responses_5xx"]
      total     = ["http_user_requests"]
      what      = "user requests the function answered 5xx (probe routes excluded)"
    }
    request_latency = {
      title     = "Request latency"
      objective = var.request_latency_objective
      pages     = true
      runbook   = "request-latency.md"
      source    = "own"
      bad       = ["http_user_slow_requests"]
      total     = ["http_user_requests"]
      what      = "user requests slower than http_slow_threshold_ms (probe routes excluded)"
    }
    redis_availability = {
      title     = "Redis availability"
      objective = var.redis_availability_objective
      pages     = true
      runbook   = "redis-availability.md"
      source    = "own"
      bad       = ["redis_errors", "redis_circuit_rejections"]
      total     = ["redis_operations", "redis_circuit_rejections"]
      what      = "Redis operations that failed or that the open circuit breaker refused"
    }
    redis_latency = {
      title     = "Redis latency"
      objective = var.redis_latency_objective
      pages     = false
      runbook   = "redis-latency.md"
      source    = "own"
      bad       = ["redis_slow_operations"]
      total     = ["redis_operations"]
      what      = "Redis operations of 100 ms or more (a cause: the request-latency SLO is the one that pages)"
    }
  }

  # One burn-rate alert per SLO and tier. threshold = factor x budget.
  burns = {
    for pair in setproduct(keys(local.slos), keys(local.tiers)) : "${pair[0]}_${pair[1]}" => {
      slo           = pair[0]
      tier          = pair[1]
      page          = local.slos[pair[0]].pages && local.tiers[pair[1]].page
      factor        = local.tiers[pair[1]].factor
      long          = local.tiers[pair[1]].long
      short         = local.tiers[pair[1]].short
      long_seconds  = local.tiers[pair[1]].long_window_seconds
      short_seconds = local.tiers[pair[1]].short_window_seconds
      budget        = format("%.6g", 1 - local.slos[pair[0]].objective)
      threshold     = format("%.6g", local.tiers[pair[1]].factor * (1 - local.slos[pair[0]].objective))
      runbook       = local.slos[pair[0]].runbook
      title         = local.slos[pair[0]].title
    }
  }

  # Memorystore: the instance_id label is the full name.
  memorystore_paths = [
    for id in var.memorystore_instances :
    startswith(id, "projects/") ? id : "projects/${var.memorystore_project}/locations/${var.memorystore_region}/instances/${id}"
  ]
}
