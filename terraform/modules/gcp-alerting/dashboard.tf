# One dashboard per environment: the SLO page and each SLO's burn rate at
# the top, then the causes (Redis errors and latency, instances, cold
# starts, the metrics line itself, Memorystore).

locals {
  own   = module.core.gcp_own_matchers
  fast  = [for k, t in var.burn_rate_tiers : k if t.page && t.factor == max([for u in values(var.burn_rate_tiers) : u.factor]...)][0]
  hour  = [for k, b in module.core.burns : b.long if b.tier == local.fast][0]
  ge_ms = [10, 25, 50, 100, 250, 1000]

  # Redis p99 of the whole distribution, from the cumulative counts of
  # operations at or above each bound (le = operations - ge).
  redis_p99 = format("histogram_quantile(0.99, %s)", join(" or ", concat(
    [for ms in local.ge_ms : format(
      "label_replace(sum by (service) (rate(logging_googleapis_com:user_redis_operations_sum{%s}[5m])) - sum by (service) (rate(logging_googleapis_com:user_redis_operations_ge_%dms_sum{%s}[5m])), \"le\", \"%d\", \"\", \"\")",
      local.own, ms, local.own, ms,
    )],
    [format("label_replace(sum by (service) (rate(logging_googleapis_com:user_redis_operations_sum{%s}[5m])), \"le\", \"+Inf\", \"\", \"\")", local.own)],
  )))

  slo_charts = [
    for slo, s in module.core.slos : {
      title = "${s.title}: burn rate over ${local.hour} (1 = budget spent exactly in 30 days; pages at ${[for b in values(module.core.burns) : b.factor if b.slo == slo && b.tier == local.fast][0]})"
      query = format("(%s) / %s", module.core.gcp_ratios["${slo}@${local.hour}"], format("%.6g", 1 - s.objective))
    }
  ]

  cause_charts = concat(
    [
      { title = "User requests per second (probe routes excluded)", query = "sum by (service) (rate(logging_googleapis_com:user_http_user_requests_sum{${local.own}}[5m]))" },
      { title = "Probe requests per second (/redis-health, /healthz)", query = "sum by (service) (rate(logging_googleapis_com:user_http_probe_requests_sum{${local.own}}[5m]))" },
      { title = "Redis p99 (ms), from the distribution of every instance", query = local.redis_p99 },
      { title = "Redis connection errors over operations", query = "sum by (service) (rate(logging_googleapis_com:user_redis_errors_connect_sum{${local.own}}[5m])) / sum by (service) (rate(logging_googleapis_com:user_redis_operations_sum{${local.own}}[5m]))" },
      { title = "Circuit-breaker rejections per second", query = "sum by (service) (rate(logging_googleapis_com:user_redis_circuit_rejections_sum{${local.own}}[5m]))" },
      { title = "Cold starts per minute", query = "sum by (service) (rate(logging_googleapis_com:user_cold_starts_sum{${local.own}}[5m])) * 60" },
      { title = "Metrics lines per minute (the heartbeat)", query = "sum by (service) (rate(logging_googleapis_com:user_http_requests_count{${local.own}}[5m])) * 60" },
      { title = "Cloud Run instances", query = "sum by (service_name) (run_googleapis_com:container_instance_count{monitored_resource=\"cloud_run_revision\",service_name=~\"${join("|", [for name, f in var.functions : coalesce(f.cloud_run_service, replace(name, "_", "-"))])}\"})" },
    ],
    length(module.core.memorystore_instance_paths) == 0 ? [] : [
      { title = "Memorystore memory used / maxmemory", query = "max by (instance_id) (redis_googleapis_com:stats_memory_usage_ratio{monitored_resource=\"redis_instance\",instance_id=~\"${join("|", module.core.memorystore_instance_paths)}\"})" },
      { title = "Memorystore main-thread CPU", query = "max by (instance_id) (sum by (instance_id, node_id) (redis_googleapis_com:stats_cpu_utilization_main_thread{monitored_resource=\"redis_instance\",instance_id=~\"${join("|", module.core.memorystore_instance_paths)}\"}))" },
      { title = "Memorystore connected clients", query = "max by (instance_id) (redis_googleapis_com:clients_connected{monitored_resource=\"redis_instance\",instance_id=~\"${join("|", module.core.memorystore_instance_paths)}\"})" },
    ],
  )

  charts = concat(local.slo_charts, local.cause_charts)
}

resource "google_monitoring_dashboard" "redis_functions" {
  project = var.project_id
  dashboard_json = jsonencode({
    displayName = "Redis functions (${var.environment}): SLOs and causes"
    labels      = { environment = var.environment }
    mosaicLayout = {
      columns = 48
      tiles = concat(
        [{
          xPos = 0, yPos = 0, width = 48, height = 8
          widget = {
            title      = "SLO page (${var.environment})"
            alertChart = { name = google_monitoring_alert_policy.page["slo_page"].name }
          }
        }],
        [for i, c in local.charts : {
          xPos   = (i % 2) * 24
          yPos   = 8 + floor(i / 2) * 16
          width  = 24
          height = 16
          widget = {
            title = c.title
            xyChart = {
              dataSets = [{
                plotType        = "LINE"
                timeSeriesQuery = { prometheusQuery = c.query }
              }]
            }
          }
        }],
      )
    }
  })
}
