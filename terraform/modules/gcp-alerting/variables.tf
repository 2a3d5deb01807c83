variable "project_id" {
  description = "The Google Cloud project that runs the functions and receives the alerts."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project id: 6 to 30 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "functions" {
  description = "The functions to watch, by crate name (tebra_debug, patient_sync, ...): the HTTPS host that serves each one's /redis-health (the Cloud Run service URL's host)."
  type = map(object({
    host = string
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

variable "runbook_base_url" {
  description = "Where terraform/runbooks/ is published (e.g. https://github.com/ORG/REPO/blob/main/terraform/runbooks). Every alert links to its runbook there."
  type        = string

  validation {
    condition     = can(regex("^https://[^ ]+[^/ ]$", var.runbook_base_url))
    error_message = "runbook_base_url must be an https URL without a trailing slash."
  }
}

variable "notification_emails" {
  description = "Addresses that receive every alert (the notify route, and the page route when no PagerDuty key is set)."
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

variable "pagerduty_service_key" {
  description = "PagerDuty integration key of the on-call service; alerts of severity CRITICAL page through it. Null: pages go to email and Slack."
  type        = string
  default     = null
  sensitive   = true
}

variable "availability_objective" {
  description = "Share of Redis operations that must succeed (the error budget is 1 minus this)."
  type        = number
  default     = 0.999

  validation {
    condition     = var.availability_objective >= 0.9 && var.availability_objective < 1
    error_message = "availability_objective must be at least 0.9 and below 1 (e.g. 0.999)."
  }
}

variable "burn_rate_tiers" {
  description = "Multi-window burn-rate alerts on the Redis error ratio: each fires when both windows burn the error budget faster than factor. page tiers go to PagerDuty."
  type = map(object({
    long_window  = string
    short_window = string
    factor       = number
    page         = bool
  }))
  default = {
    fast = { long_window = "1h", short_window = "5m", factor = 14.4, page = true }
    slow = { long_window = "6h", short_window = "30m", factor = 6, page = true }
    drip = { long_window = "1d", short_window = "2h", factor = 3, page = false }
  }

  validation {
    condition = alltrue([for t in values(var.burn_rate_tiers) :
      can(regex("^[0-9]+[mhd]$", t.long_window)) && can(regex("^[0-9]+[mhd]$", t.short_window)) && t.factor >= 1
    ])
    error_message = "each tier needs windows such as 1h, 5m or 1d and a factor of at least 1."
  }
}

variable "connection_error_burst" {
  description = "Connection errors of one function within 5 minutes that raise the burst alert."
  type        = number
  default     = 20

  validation {
    condition     = var.connection_error_burst >= 1
    error_message = "connection_error_burst must be at least 1."
  }
}

variable "latency_p99_threshold_ms" {
  description = "Alert when the reported p99 Redis round-trip time stays above this for 15 minutes."
  type        = number
  default     = 50

  validation {
    condition     = var.latency_p99_threshold_ms > 0 && var.latency_p99_threshold_ms <= 10000
    error_message = "latency_p99_threshold_ms must be between 0 and 10000."
  }
}

variable "latency_objective" {
  description = "Share of Redis operations that must be faster than 100 ms (the slow-operation threshold written by the code)."
  type        = number
  default     = 0.99

  validation {
    condition     = var.latency_objective >= 0.5 && var.latency_objective < 1
    error_message = "latency_objective must be at least 0.5 and below 1 (e.g. 0.99)."
  }
}

variable "latency_burn_factor" {
  description = "The slow-operation alert fires when the slow share burns the latency budget this many times too fast, over 1 hour and 5 minutes."
  type        = number
  default     = 6

  validation {
    condition     = var.latency_burn_factor >= 1
    error_message = "latency_burn_factor must be at least 1."
  }
}

variable "http_5xx_ratio_threshold" {
  description = "Share of a function's responses that are 5xx, over 5 minutes, that raises the 5xx alert."
  type        = number
  default     = 0.05

  validation {
    condition     = var.http_5xx_ratio_threshold > 0 && var.http_5xx_ratio_threshold < 1
    error_message = "http_5xx_ratio_threshold must be between 0 and 1."
  }
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
  description = "Memorystore for Redis instance ids (the instance_id resource label) whose memory, clients, rejected connections and evictions are watched. Empty: no Memorystore alerts."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for id in var.memorystore_instances : can(regex("^[a-z][a-z0-9-]{0,39}$", id))])
    error_message = "memorystore_instances holds instance ids such as redis-main."
  }
}

variable "redis_memory_ratio_threshold" {
  description = "Alert when used memory over maxmemory stays above this for 10 minutes."
  type        = number
  default     = 0.85

  validation {
    condition     = var.redis_memory_ratio_threshold > 0.5 && var.redis_memory_ratio_threshold < 1
    error_message = "redis_memory_ratio_threshold must be between 0.5 and 1."
  }
}

variable "redis_max_clients" {
  description = "maxclients of the Memorystore instances (65000 unless changed)."
  type        = number
  default     = 65000

  validation {
    condition     = var.redis_max_clients >= 1
    error_message = "redis_max_clients must be positive."
  }
}

variable "redis_clients_ratio_threshold" {
  description = "Alert when connected clients exceed this share of redis_max_clients."
  type        = number
  default     = 0.8

  validation {
    condition     = var.redis_clients_ratio_threshold > 0 && var.redis_clients_ratio_threshold < 1
    error_message = "redis_clients_ratio_threshold must be between 0 and 1."
  }
}

variable "redis_evictions_per_second" {
  description = "Alert when keys are evicted faster than this, over 10 minutes."
  type        = number
  default     = 1

  validation {
    condition     = var.redis_evictions_per_second >= 0
    error_message = "redis_evictions_per_second must not be negative."
  }
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
