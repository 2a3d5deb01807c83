# Example root: alerting for two functions on Cloud Run with a Memorystore
# instance. Copy it, set the variables (terraform.tfvars or TF_VAR_*), and
# keep secrets (Slack token, PagerDuty key) out of files: pass them as
# TF_VAR_slack_auth_token / TF_VAR_pagerduty_service_key from a secret store.

terraform {
  required_version = ">= 1.7.0"

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
  description = "PagerDuty integration key of the on-call service."
  type        = string
  default     = null
  sensitive   = true
}

module "alerting" {
  source = "../../modules/gcp-alerting"

  project_id = var.project_id
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
  memorystore_instances = ["redis-main"]
}

output "alert_policies" {
  description = "The alert policies created."
  value       = module.alerting.alert_policies
}

output "uptime_checks" {
  description = "The /redis-health uptime checks."
  value       = module.alerting.uptime_checks
}
