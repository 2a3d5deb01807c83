variable "project_id" {
  description = "The Google Cloud project that runs the functions and receives the alerts."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project id: 6 to 30 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "environment" {
  description = "The environment these alerts watch (production, staging, ...): the functions' DEPLOY_ENVIRONMENT, written as `environment` on the metrics line. Every query selects it, every policy carries it as a label. One module instance per environment."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,31}$", var.environment))
    error_message = "environment is 1 to 32 lowercase letters, digits or hyphens, starting with a letter (e.g. production)."
  }
}

variable "functions" {
  description = "The functions of this environment, by crate name: the HTTPS host that serves each one's /redis-health (the Cloud Run service URL's host), the Cloud Run service name (default: the crate name with - for _) and its max instances."
  type = map(object({
    host              = string
    cloud_run_service = optional(string)
    max_instances     = optional(number, 100)
  }))

  validation {
    condition     = length(var.functions) > 0
    error_message = "functions must name at least one function."
  }
  validation {
    condition     = alltrue([for name in keys(var.functions) : can(regex("^[a-z][a-z0-9_]{0,47}$", name))])
    error_message = "function names are crate names: lowercase letters, digits and underscores, starting with a letter."
  }
  validation {
    condition     = alltrue([for f in values(var.functions) : can(regex("^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$", f.host))])
    error_message = "host is a bare host name (no scheme, path or port), e.g. tebra-debug-abc123-uc.a.run.app."
  }
}

variable "manage_log_metrics" {
  description = "Whether this instance creates the log-based metrics. They are per project and carry the environment as a label: with several environments in one project, exactly one instance creates them."
  type        = bool
  default     = true
}

variable "runbook_base_url" {
  description = "Where terraform/runbooks/ is published (e.g. https://github.com/ORG/REPO/blob/main/terraform/runbooks). Every alert links to its runbook there."
  type        = string

  validation {
    condition     = can(regex("^https://[^ ]+[^/ ]$", var.runbook_base_url))
    error_message = "runbook_base_url must be an https URL without a trailing slash."
  }
}

variable "notification_emails" {
  description = "Addresses that receive every alert (the notify route, and the page route when no PagerDuty key is set outside pager_required_environments)."
  type        = list(string)

  validation {
    condition     = length(var.notification_emails) > 0 && alltrue([for e in var.notification_emails : can(regex("^[^@ ]+@[^@ ]+\\.[^@ ]+$", e))])
    error_message = "notification_emails must hold at least one valid email address."
  }
}

variable "slack_channel_name" {
  description = "Slack channel (with #) that receives every alert; null for none."
  type        = string
  default     = null

  validation {
    condition     = var.slack_channel_name == null || can(regex("^#[a-z0-9_-]{1,80}$", var.slack_channel_name))
    error_message = "slack_channel_name must look like #redis-alerts."
  }
}

variable "slack_auth_token" {
  description = "OAuth token of the Google Cloud Monitoring Slack app; required with slack_channel_name."
  type        = string
  default     = null
  sensitive   = true
}

variable "pager_required_environments" {
  description = "Environments that must page through PagerDuty: planning one of them without pagerduty_service_key fails."
  type        = list(string)
  default     = ["production"]
}

variable "pagerduty_service_key" {
  description = "PagerDuty integration key of the on-call service; the page route goes through it. Required in pager_required_environments; elsewhere, null sends pages to email and Slack."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.pagerduty_service_key != null || !contains(var.pager_required_environments, var.environment)
    error_message = "This environment requires a pager: set pagerduty_service_key (TF_VAR_pagerduty_service_key from a secret store). Pages must not silently become e-mail."
  }
}

variable "request_availability_objective" {
  description = "Share of user requests (probe routes excluded) that must not fail (no 5xx; no 5xx or 429 from Cloud Run)."
  type        = number
  default     = 0.999
}

variable "request_latency_objective" {
  description = "Share of user requests that must be faster than the code's http_slow_threshold_ms."
  type        = number
  default     = 0.99
}

variable "redis_availability_objective" {
  description = "Share of Redis operations that must succeed (breaker rejections count as failed)."
  type        = number
  default     = 0.999
}

variable "redis_latency_objective" {
  description = "Share of Redis operations that must be faster than 100 ms."
  type        = number
  default     = 0.99
}

variable "burn_rate_tiers" {
  description = "Multi-window, multi-burn-rate tiers (windows in seconds). Defaults: the SRE Workbook's 14.4x over 1h and 5m, 6x over 6h and 30m (page), 1x over 3d and 6h (ticket)."
  type = map(object({
    long_window_seconds  = number
    short_window_seconds = number
    factor               = number
    page                 = bool
  }))
  default = {
    fast   = { long_window_seconds = 3600, short_window_seconds = 300, factor = 14.4, page = true }
    slow   = { long_window_seconds = 21600, short_window_seconds = 1800, factor = 6, page = true }
    ticket = { long_window_seconds = 259200, short_window_seconds = 21600, factor = 1, page = false }
  }
}

variable "connection_error_ratio_threshold" {
  description = "Connection errors over Redis operations (environment-wide, 5 minutes) that raise the connection-errors cause alert."
  type        = number
  default     = 0.05
}

variable "latency_p99_threshold_ms" {
  description = "The p99 cause alert's threshold: one of 10, 25, 50, 100, 250, 1000 ms (the bounds the code counts)."
  type        = number
  default     = 50
}

variable "heartbeat_minutes" {
  description = "Minutes without a metrics line from a function that raise the heartbeat alert."
  type        = number
  default     = 15
}

variable "instance_ratio_threshold" {
  description = "Cloud Run instances over max instances above which the saturation alert notifies."
  type        = number
  default     = 0.8
}

variable "authenticated_probes" {
  description = "Whether the uptime checks authenticate with an OIDC ID token of the Monitoring service agent (service-<project number>@gcp-sa-monitoring-notification.iam.gserviceaccount.com): required for private services (the deploy path's default), which must grant that agent roles/run.invoker. false only for public services."
  type        = bool
  default     = true
}

variable "uptime_check_period" {
  description = "How often each region probes /redis-health."
  type        = string
  default     = "60s"

  validation {
    condition     = contains(["60s", "300s", "600s", "900s"], var.uptime_check_period)
    error_message = "uptime_check_period must be one of 60s, 300s, 600s, 900s."
  }
}

variable "memorystore_instances" {
  description = "Memorystore for Redis instances: a bare id (redis-main, completed with project_id and memorystore_region) or the full name projects/P/locations/R/instances/ID, the form of the instance_id label. Empty: no Memorystore alerts."
  type        = list(string)
  default     = []
}

variable "memorystore_region" {
  description = "Region of the Memorystore instances given by bare id (e.g. us-central1)."
  type        = string
  default     = null
}

variable "redis_memory_warn_ratio" {
  description = "Memorystore memory ratio (used / maxmemory, and system memory) that notifies after 10 minutes."
  type        = number
  default     = 0.85
}

variable "redis_memory_page_ratio" {
  description = "Memorystore memory ratio that pages after 5 minutes (silent while the SLO page is open)."
  type        = number
  default     = 0.95
}

variable "redis_cpu_ratio_threshold" {
  description = "Memorystore main-thread CPU that notifies after 15 minutes."
  type        = number
  default     = 0.8
}

variable "redis_max_clients" {
  description = "maxclients of the Memorystore instances (65000 unless changed)."
  type        = number
  default     = 65000
}

variable "redis_clients_ratio_threshold" {
  description = "Connected clients over maxclients that pages (silent while the SLO page is open)."
  type        = number
  default     = 0.8
}

variable "redis_evictions_per_second" {
  description = "Evicted keys per second (over 10 minutes) that notify."
  type        = number
  default     = 1
}

variable "auto_close" {
  description = "An open incident whose condition has stopped being met is closed after this long."
  type        = string
  default     = "1800s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.auto_close)) && try(tonumber(trimsuffix(var.auto_close, "s")) >= 1800, false)
    error_message = "auto_close is a duration in seconds such as 1800s, at least 30 minutes."
  }
}

variable "queue_backlog_threshold" {
  description = "Queue backlog (queue_backlog: changes waiting to be claimed in a practice's queue, the largest the function read) above which, for 15 minutes, the backlog alert notifies: consumers are not keeping up."
  type        = number
  default     = 1000

  validation {
    condition     = var.queue_backlog_threshold >= 1
    error_message = "queue_backlog_threshold must be at least 1."
  }
}

variable "queue_oldest_age_threshold_ms" {
  description = "Age of a queue's oldest unacknowledged item (queue_oldest_age_ms) above which, for 5 minutes, the oldest-item alert notifies: something is stuck even if the backlog is small."
  type        = number
  default     = 900000

  validation {
    condition     = var.queue_oldest_age_threshold_ms >= 60000
    error_message = "queue_oldest_age_threshold_ms must be at least 60000 (one minute)."
  }
}

variable "queue_dead_letters_threshold" {
  description = "Dead letters in a queue (queue_dead_letters) above which the dead-letter alert notifies. 0: any dead letter, since each is a change nobody will process until someone replays or drops it."
  type        = number
  default     = 0

  validation {
    condition     = var.queue_dead_letters_threshold >= 0
    error_message = "queue_dead_letters_threshold must be at least 0."
  }
}
