# Example root: alerting for production's three functions on Cloud Run with a
# Memorystore instance. A staging instance of the module in the same project
# sets environment = "staging" and manage_log_metrics = false. Copy it, set
# the variables (terraform.tfvars or TF_VAR_*), and keep secrets (Slack
# token, PagerDuty key) out of files: pass them as TF_VAR_slack_auth_token /
# TF_VAR_pagerduty_service_key from a secret store.
#
# Private by default: the services require authentication (make deploy
# passes --no-allow-unauthenticated; nothing here grants allUsers). Who may
# invoke each one is granted here: the callers in var.invokers, and the
# Monitoring service agent, whose OIDC token the authenticated uptime checks
# send. The functions run with the default AUTH_MODE=platform: they read the
# ID token Cloud Run checked and give its `sub` the tenants of its tenant
# claim, or of AUTH_PRINCIPAL_TENANTS (a service account's token has none).

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

variable "region" {
  description = "Region of the Cloud Run services (make deploy's REGION)."
  type        = string
  default     = "us-central1"
}

variable "invokers" {
  description = "Who may call each function, by crate name: IAM members (serviceAccount:..., user:..., group:...), e.g. the practice-management connector's service account for patient_sync. Never allUsers or allAuthenticatedUsers."
  type        = map(list(string))
  default     = {}

  validation {
    condition     = alltrue([for members in values(var.invokers) : alltrue([for m in members : can(regex("^(serviceAccount|user|group|principal|principalSet):", m))])])
    error_message = "invokers holds identities (serviceAccount:, user:, group:, principal:, principalSet:), never allUsers or allAuthenticatedUsers."
  }
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

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  # Crate name => Cloud Run service (make deploy: _ becomes -).
  services = {
    tebra_debug  = "tebra-debug"
    patient_sync = "patient-sync"
    sessions     = "sessions"
  }
  # The identity of the authenticated uptime checks (OIDC_TOKEN).
  monitoring_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-monitoring-notification.iam.gserviceaccount.com"
  invocations = merge([
    for fn, service in local.services : {
      for member in concat([local.monitoring_agent], lookup(var.invokers, fn, [])) :
      "${fn} ${member}" => { service = service, member = member }
    }
  ]...)
}

resource "google_cloud_run_v2_service_iam_member" "invoker" {
  for_each = local.invocations

  project  = var.project_id
  location = var.region
  name     = each.value.service
  role     = "roles/run.invoker"
  member   = each.value.member
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
  # The services are private: the uptime checks send the Monitoring service
  # agent's ID token (granted roles/run.invoker above).
  authenticated_probes = true
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
