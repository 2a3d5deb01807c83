# Example root: alarms for two functions on Lambda (Function URLs) with an
# ElastiCache replication group of two nodes. Pass the PagerDuty URL as
# TF_VAR_pagerduty_endpoint from a secret store, never in a file.

terraform {
  required_version = ">= 1.9.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.80, < 7.0"
    }
  }
}

variable "region" {
  description = "Region of the functions and of ElastiCache."
  type        = string
  default     = "eu-west-1"
}

variable "pagerduty_endpoint" {
  description = "PagerDuty CloudWatch integration URL (required: production must page a pager)."
  type        = string
  default     = null
  sensitive   = true
}

provider "aws" {
  region = var.region
}

provider "aws" {
  alias  = "us_east_1"
  region = "us-east-1"
}

module "alerting" {
  source = "../../modules/aws-alerting"

  providers = {
    aws           = aws
    aws.us_east_1 = aws.us_east_1
  }

  name_prefix = "prod-redis-functions"
  environment = "production"
  functions = {
    tebra_debug  = { host = "abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-1.on.aws" }
    patient_sync = { host = "bcdefghijklmnopqrstuvwxyz0123456.lambda-url.eu-west-1.on.aws" }
    sessions     = { host = "cdefghijklmnopqrstuvwxyz01234567.lambda-url.eu-west-1.on.aws" }
  }
  runbook_base_url    = "https://github.com/example-org/redis-functions/blob/main/terraform/runbooks"
  notification_emails = ["oncall@example.com"]
  pagerduty_endpoint  = var.pagerduty_endpoint
  elasticache_nodes   = ["redis-main-001", "redis-main-002"]
  tags                = { project = "redis-functions" }
}

output "alarms" {
  description = "The alarms created."
  value       = module.alerting.alarms
}

output "dashboard" {
  description = "The SLO and causes dashboard."
  value       = module.alerting.dashboard
}

output "health_checks" {
  description = "The Route 53 health checks of /redis-health."
  value       = module.alerting.health_checks
}
