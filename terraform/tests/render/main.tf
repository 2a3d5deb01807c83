# Renders alerting-core with the examples' inputs into the files under
# terraform/tests/rendered/ (scripts/render-alert-rules.sh; make ops-check
# fails when they are stale). The contract test reads them (every metric an
# alert reads, the environment on every one, the Memorystore full names,
# the tiers) and evaluates them: the PromQL with promtool, the CloudWatch
# alarms with a small evaluator of sliding windows. No provider is needed.

terraform {
  required_version = ">= 1.9.0"
}

module "production" {
  source = "../../modules/alerting-core"

  environment      = "production"
  pager_configured = true
  functions = {
    tebra_debug  = { uptime_check_id = "tebra-debug-redis-health-0a1b2c", reserved_concurrency = 50 }
    patient_sync = { uptime_check_id = "patient-sync-redis-health-3d4e5f", max_instances = 20 }
    sessions     = { uptime_check_id = "sessions-redis-health-6a7b8c" }
  }
  # One bare id (built into the full name) and one full name.
  memorystore_project   = "demo-project-123"
  memorystore_region    = "us-central1"
  memorystore_instances = ["redis-main", "projects/demo-project-123/locations/us-central1/instances/redis-sessions"]
  elasticache_nodes     = ["redis-main-001"]
}

output "catalogue" {
  description = "Everything the alerts evaluate, as JSON."
  value = jsonencode({
    environment                = module.production.environment
    slos                       = module.production.slos
    burns                      = module.production.burns
    memorystore_instance_paths = module.production.memorystore_instance_paths
    gcp_alerts                 = module.production.gcp_alerts
    aws_windows                = module.production.aws_windows
    aws_burns                  = module.production.aws_burns
    aws_page_children          = module.production.aws_page_children
    aws_notify                 = module.production.aws_notify
    aws_page_causes            = module.production.aws_page_causes
  })
}

output "gcp_prometheus_rules" {
  description = "The Cloud Monitoring PromQL as a Prometheus rule file."
  value       = module.production.gcp_prometheus_rules
}
