# Cloud Monitoring: every condition is PromQL (condition_prometheus_query_language),
# over the log-based metrics of gcp-alerting (logging_googleapis_com:user_<field>_sum:
# the sum of the field over the metrics lines), Cloud Run's and Memorystore's
# own metrics and the uptime checks. The same queries are rendered into a
# Prometheus rule file (output gcp_prometheus_rules) that promtool evaluates
# offline against series replayed from metrics lines.
#
# Grouping: Cloud Monitoring opens one incident per policy, condition and
# time series, and cannot suppress one policy while another is open. So the
# page is ONE policy per environment whose query counts every burning page
# tier and every failing probe (one series: one incident, whatever the
# cause and however many functions it hits), and the cause policies that
# page end in `unless on() (<that union>)`: they are silent while it fires.

locals {
  # Log-based metrics can map to several monitored resource types; these
  # come from Cloud Run's logs. Every one is read for one environment.
  gcp_own = "monitored_resource=\"cloud_run_revision\",environment=\"${var.environment}\""
  gcp_run = "monitored_resource=\"cloud_run_revision\""

  gcp_windows  = distinct(flatten([for t in local.tiers : [t.long, t.short]]))
  gcp_own_slos = [for k, s in local.slos : k if s.source == "own"]

  # bad / total per SLO and window, one series per function (label service).
  gcp_ratio = merge(
    {
      for pair in setproduct(local.gcp_own_slos, local.gcp_windows) : "${pair[0]}@${pair[1]}" => format(
        "(%s) / (%s)",
        join(" + ", [for m in local.slos[pair[0]].bad : "sum by (service) (rate(logging_googleapis_com:user_${m}_sum{${local.gcp_own}}[${pair[1]}]))"]),
        join(" + ", [for m in local.slos[pair[0]].total : "sum by (service) (rate(logging_googleapis_com:user_${m}_sum{${local.gcp_own}}[${pair[1]}]))"]),
      )
    },
    {
      # Cloud Run's own count: 5xx and 429 (from the function or from Cloud
      # Run itself) over all requests, probes included.
      for w in local.gcp_windows : "request_availability_platform@${w}" => join(" or ", [
        for name, f in local.functions : format(
          "label_replace(sum(rate(run_googleapis_com:request_count{%s,service_name=\"%s\",response_code=~\"5..|429\"}[%s])) / sum(rate(run_googleapis_com:request_count{%s,service_name=\"%s\"}[%s])), \"service\", \"%s\", \"\", \"\")",
          local.gcp_run, f.cloud_run_service, w, local.gcp_run, f.cloud_run_service, w, name,
        )
      ])
    },
  )

  # The Workbook's condition: both windows above factor x budget.
  gcp_burn = {
    for k, b in local.burns : k => format(
      "((%s) > %s) and ((%s) > %s)",
      local.gcp_ratio["${b.slo}@${b.long}"], b.threshold, local.gcp_ratio["${b.slo}@${b.short}"], b.threshold,
    )
  }

  # A function's probe fails from more than one region for 2 minutes.
  gcp_probe = {
    for name, f in local.functions : name => format(
      "label_replace(count(max_over_time(monitoring_googleapis_com:uptime_check_check_passed{monitored_resource=\"uptime_url\",check_id=\"%s\"}[2m]) == 0) > 1, \"service\", \"%s\", \"\", \"\")",
      f.uptime_check_id, name,
    ) if f.uptime_check_id != null
  }

  # Everything that pages, as one union (labels service and slo).
  gcp_page_union = join("\nor\n", concat(
    [for k, b in local.burns : format("label_replace(%s, \"slo\", \"%s\", \"\", \"\")", local.gcp_burn[k], k) if b.page],
    [for name, q in local.gcp_probe : format("label_replace(%s, \"slo\", \"probe\", \"\", \"\")", q)],
  ))

  gcp_own_rate = {
    for pair in setproduct(
      ["redis_errors_connect", "redis_operations", "redis_operations_ge_${var.latency_p99_threshold_ms}ms"],
      ["", " by (service)"],
    ) : "${pair[0]}${pair[1]}" => "sum${pair[1]} (rate(logging_googleapis_com:user_${pair[0]}_sum{${local.gcp_own}}[5m]))"
  }

  # Queue gauges (the largest figure of a practice's queue that a line
  # reports; only lines of intervals that read a queue carry them): their
  # mean over those lines in 10 minutes, per function.
  gcp_queue_mean = {
    for field in ["queue_backlog", "queue_oldest_age_ms", "queue_dead_letters"] : field => format(
      "(sum by (service) (rate(logging_googleapis_com:user_%s_sum{%s}[10m])) / sum by (service) (rate(logging_googleapis_com:user_%s_count{%s}[10m])))",
      field, local.gcp_own, field, local.gcp_own,
    )
  }

  gcp_ms = "monitored_resource=\"redis_instance\",instance_id=~\"${join("|", local.memorystore_paths)}\""
  gcp_ms_memory = {
    for level, ratio in { warn = var.redis_memory_warn_ratio, page = var.redis_memory_page_ratio } : level => format(
      "(max by (instance_id) (redis_googleapis_com:stats_memory_usage_ratio{%s}) > %s) or (max by (instance_id) (redis_googleapis_com:stats_memory_system_memory_usage_ratio{%s}) > %s)",
      local.gcp_ms, format("%.6g", ratio), local.gcp_ms, format("%.6g", ratio),
    )
  }

  gcp_slo_alerts = {
    for k, b in local.burns : "slo_${k}" => {
      name     = "${var.environment}: ${b.title} SLO burning (${b.tier}): ${b.factor}x the budget over ${b.long} and ${b.short}"
      severity = "WARNING"
      route    = "notify"
      tier     = b.page ? "page" : "ticket"
      runbook  = b.runbook
      duration = "0s"
      query    = local.gcp_burn[k]
      summary  = "${b.title}: ${local.slos[b.slo].what}. The ratio is above ${b.factor} x ${b.budget} (the budget of the ${local.slos[b.slo].objective} objective) over ${b.long} and over ${b.short}.${b.page ? " This tier pages through the environment's SLO page; this notification names the function and the SLO." : " A ticket: the budget is being spent faster than it refills."}"
    }
  }

  gcp_cause_alerts = {
    slo_page = {
      name     = "${var.environment}: user-facing SLO burning or /redis-health probe failing"
      severity = "CRITICAL"
      route    = "page"
      tier     = "page"
      runbook  = "slo-page.md"
      duration = "0s"
      query    = "count(\n${local.gcp_page_union}\n)"
      summary  = "One page for the environment: the value is how many (function, SLO tier) pairs burn their budget at a paging rate, probes included. The notifications of the burn alerts (notify route) and the dashboard name them."
    }
    redis_connection_errors = {
      name     = "${var.environment}: Redis connection errors above ${format("%.6g", var.connection_error_ratio_threshold * 100)}% of operations"
      severity = "WARNING"
      route    = "notify"
      tier     = "cause"
      runbook  = "redis-connection-errors.md"
      duration = "0s"
      query    = format("(%s / %s) > %s", local.gcp_own_rate["redis_errors_connect"], local.gcp_own_rate["redis_operations"], format("%.6g", var.connection_error_ratio_threshold))
      summary  = "Connection errors over Redis operations across the environment's functions, over 5 minutes: a cause. The SLO page tells whether users feel it."
    }
    redis_latency_p99 = {
      name     = "${var.environment}: Redis p99 above ${var.latency_p99_threshold_ms} ms for 15 minutes"
      severity = "WARNING"
      route    = "notify"
      tier     = "cause"
      runbook  = "redis-latency.md"
      duration = "900s"
      query    = format("(%s / %s) > 0.01", local.gcp_own_rate["redis_operations_ge_${var.latency_p99_threshold_ms}ms by (service)"], local.gcp_own_rate["redis_operations by (service)"])
      summary  = "More than 1% of a function's Redis operations took ${var.latency_p99_threshold_ms} ms or more: the p99 of the whole distribution (all instances) is above it. Not an average of per-instance p99s."
    }
    metrics_heartbeat = {
      name     = "${var.environment}: a function's metrics line is missing"
      severity = "WARNING"
      route    = "notify"
      tier     = "cause"
      runbook  = "metrics-heartbeat.md"
      duration = "0s"
      query = join(" or ", [
        for name, f in local.functions : "absent_over_time(logging_googleapis_com:user_http_requests_count{${local.gcp_run},service=\"${name}\",environment=\"${var.environment}\"}[${var.heartbeat_minutes}m])"
      ])
      summary = "No metrics line from the function for ${var.heartbeat_minutes} minutes although the probes call it every minute: the alerts on its own counts are blind (the platform SLO and the probes still watch)."
    }
    queue_backlog = {
      name     = "${var.environment}: a change queue's backlog above ${var.queue_backlog_threshold} for 15 minutes"
      severity = "WARNING"
      route    = "notify"
      tier     = "cause"
      runbook  = "queue-backlog.md"
      duration = "900s"
      query    = format("%s > %s", local.gcp_queue_mean["queue_backlog"], var.queue_backlog_threshold)
      summary  = "Changes wait to be claimed faster than the consumers take them (queue_backlog: the largest practice queue the function read). Consumers are down, slow or too few."
    }
    queue_oldest_age = {
      name     = "${var.environment}: a change queue's oldest item older than ${var.queue_oldest_age_threshold_ms / 60000} minutes"
      severity = "WARNING"
      route    = "notify"
      tier     = "cause"
      runbook  = "queue-oldest-age.md"
      duration = "300s"
      query    = format("%s > %s", local.gcp_queue_mean["queue_oldest_age_ms"], var.queue_oldest_age_threshold_ms)
      summary  = "A change has been neither acknowledged nor dead-lettered for longer than the threshold (queue_oldest_age_ms): a stuck consumer, a change that keeps being delayed, or claims extended without end."
    }
    queue_dead_letters = {
      name     = "${var.environment}: change queues hold more than ${var.queue_dead_letters_threshold} dead letters"
      severity = "WARNING"
      route    = "notify"
      tier     = "cause"
      runbook  = "queue-dead-letters.md"
      duration = "0s"
      query    = format("%s > %s", local.gcp_queue_mean["queue_dead_letters"], var.queue_dead_letters_threshold)
      summary  = "Changes failed every delivery (CHANGE_MAX_DELIVERIES) and were dead-lettered (queue_dead_letters): nobody will process them until an operator replays or drops them."
    }
    cloud_run_instances = {
      name     = "${var.environment}: Cloud Run instances above ${format("%.6g", var.instance_ratio_threshold * 100)}% of max instances"
      severity = "WARNING"
      route    = "notify"
      tier     = "cause"
      runbook  = "function-saturation.md"
      duration = "300s"
      query = join(" or ", [
        for name, f in local.functions : format(
          "label_replace(sum(max_over_time(run_googleapis_com:container_instance_count{%s,service_name=\"%s\"}[5m])) / %d > %s, \"service\", \"%s\", \"\", \"\")",
          local.gcp_run, f.cloud_run_service, f.max_instances, format("%.6g", var.instance_ratio_threshold), name,
        )
      ])
      summary = "A service is close to its max instances: beyond it Cloud Run queues requests and answers 429."
    }
  }

  gcp_memorystore_alerts = length(local.memorystore_paths) == 0 ? {} : {
    redis_memory = {
      name     = "${var.environment}: Memorystore memory above ${format("%.6g", var.redis_memory_warn_ratio * 100)}%"
      severity = "WARNING"
      route    = "notify"
      tier     = "cause"
      runbook  = "redis-memory-pressure.md"
      duration = "600s"
      query    = local.gcp_ms_memory.warn
      summary  = "Used memory over maxmemory, or system memory, above the warning ratio for 10 minutes."
    }
    redis_memory_page = {
      name     = "${var.environment}: Memorystore memory above ${format("%.6g", var.redis_memory_page_ratio * 100)}%"
      severity = "CRITICAL"
      route    = "page"
      tier     = "page"
      runbook  = "redis-memory-pressure.md"
      duration = "300s"
      query    = "(${local.gcp_ms_memory.page})\nunless on() (\n${local.gcp_page_union}\n)"
      summary  = "Memory about to run out (evictions or OOM next). Silent while the SLO page is open: that page already has a responder."
    }
    redis_cpu = {
      name     = "${var.environment}: Memorystore main-thread CPU above ${format("%.6g", var.redis_cpu_ratio_threshold * 100)}%"
      severity = "WARNING"
      route    = "notify"
      tier     = "cause"
      runbook  = "redis-cpu.md"
      duration = "900s"
      query    = format("max by (instance_id) (sum by (instance_id, node_id) (redis_googleapis_com:stats_cpu_utilization_main_thread{%s})) > %s", local.gcp_ms, format("%.6g", var.redis_cpu_ratio_threshold))
      summary  = "Redis runs commands on one thread: when it is busy, every command waits."
    }
    redis_clients = {
      name     = "${var.environment}: Memorystore clients near maxclients, or connections rejected"
      severity = "CRITICAL"
      route    = "page"
      tier     = "page"
      runbook  = "redis-connected-clients.md"
      duration = "0s"
      query = format(
        "((max by (instance_id) (min_over_time(redis_googleapis_com:clients_connected{%s}[5m])) > %d) or (sum by (instance_id) (increase(redis_googleapis_com:stats_reject_connections_count{%s}[5m])) > 0))\nunless on() (\n%s\n)",
        local.gcp_ms, floor(var.redis_clients_ratio_threshold * var.redis_max_clients), local.gcp_ms, local.gcp_page_union,
      )
      summary = "New connections are about to be, or are, refused. Silent while the SLO page is open."
    }
    redis_evictions = {
      name     = "${var.environment}: Memorystore evicting more than ${var.redis_evictions_per_second} keys/s"
      severity = "WARNING"
      route    = "notify"
      tier     = "cause"
      runbook  = "redis-evictions.md"
      duration = "0s"
      query    = format("sum by (instance_id) (rate(redis_googleapis_com:stats_evicted_keys{%s}[10m])) > %s", local.gcp_ms, format("%.6g", var.redis_evictions_per_second))
      summary  = "Keys are evicted to stay under maxmemory: sessions, queued work and locks can disappear."
    }
  }

  gcp_alerts = merge(local.gcp_slo_alerts, local.gcp_cause_alerts, local.gcp_memorystore_alerts)
}
