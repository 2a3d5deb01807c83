# Example root: alerting for production's three functions on Cloud Run with a
# Memorystore instance. A staging instance of the module in the same project
# sets environment = "staging" and manage_log_metrics = false. Copy it, set
# the variables (terraform.tfvars or TF_VAR_*), and keep secrets (Slack
# token, PagerDuty key) out of files: pass them as TF_VAR_slack_auth_token /
# TF_VAR_pagerduty_service_key from a secret store.

terraform {
  required_version = ">= 1.9.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.0, < 8.0"
    }
  }
}

provider "google" {
  project = var.project_id
}

variable "project_id" {
  description = "The project that runs the functions."
  type        = string
}

variable "slack_channel_name" {
  description = "Slack channel for alerts (with #), or null."
  type        = string
  default     = null
}

variable "slack_auth_token" {
  description = "OAuth token of the Cloud Monitoring Slack app."
  type        = string
  default     = null
  sensitive   = true
}

variable "pagerduty_service_key" {
  description = "PagerDuty integration key of the on-call service (required: production must page a pager)."
  type        = string
  default     = null
  sensitive   = true
}

module "alerting" {
  source = "../../modules/gcp-alerting"

  project_id  = var.project_id
  environment = "production"
  functions = {
    tebra_debug  = { host = "tebra-debug-abcdefghij-uc.a.run.app" }
    patient_sync = { host = "patient-sync-abcdefghij-uc.a.run.app" }
    sessions     = { host = "sessions-abcdefghij-uc.a.run.app" }
  }
  runbook_base_url      = "https://github.com/example-org/redis-functions/blob/main/terraform/runbooks"
  notification_emails   = ["oncall@example.com"]
  slack_channel_name    = var.slack_channel_name
  slack_auth_token      = var.slack_auth_token
  pagerduty_service_key = var.pagerduty_service_key
  # A bare id (completed with project_id and memorystore_region) or the full
  # name projects/P/locations/R/instances/ID: the instance_id label is the latter.
  memorystore_region    = "us-central1"
  memorystore_instances = ["redis-main"]
}

output "alert_policies" {
  description = "The alert policies created."
  value       = module.alerting.alert_policies
}

output "dashboard" {
  description = "The SLO and causes dashboard."
  value       = module.alerting.dashboard
}

output "uptime_checks" {
  description = "The /redis-health uptime checks."
  value       = module.alerting.uptime_checks
}
