variable "name_prefix" {
  description = "Prefix of every name created (topics, alarms, keys), e.g. prod-redis-functions."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,38}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3 to 40 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "functions" {
  description = "The functions to watch, by crate name (tebra_debug, ...): the public HTTPS host that serves each one (a Lambda Function URL or API Gateway host) and the path before /redis-health (an API Gateway stage such as /prod, or empty)."
  type = map(object({
    host        = string
    path_prefix = optional(string, "")
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
    condition     = alltrue([for f in values(var.functions) : can(regex("^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$", f.host)) && can(regex("^(/[A-Za-z0-9_.-]+)*$", f.path_prefix))])
    error_message = "host is a bare host name (no scheme or path); path_prefix is empty or like /prod (no trailing slash)."
  }
}

variable "metric_namespace" {
  description = "CloudWatch namespace of the functions' Embedded Metric Format metrics. Must equal the namespace the code writes (shared::telemetry::names::NAMESPACE)."
  type        = string
  default     = "ServerlessRedis"

  validation {
    condition     = can(regex("^[A-Za-z0-9._/#:-]{1,255}$", var.metric_namespace)) && !startswith(var.metric_namespace, "AWS/")
    error_message = "metric_namespace must be a custom CloudWatch namespace (not AWS/...)."
  }
}

variable "runbook_base_url" {
  description = "Where terraform/runbooks/ is published, without a trailing slash. Every alarm links to its runbook there."
  type        = string

  validation {
    condition     = can(regex("^https://[^ ]+[^/ ]$", var.runbook_base_url))
    error_message = "runbook_base_url must be an https URL without a trailing slash."
  }
}

variable "notification_emails" {
  description = "Addresses subscribed to both routes (page and notify). Each must confirm its subscription."
  type        = list(string)

  validation {
    condition     = length(var.notification_emails) > 0 && alltrue([for e in var.notification_emails : can(regex("^[^@ ]+@[^@ ]+\\.[^@ ]+$", e))])
    error_message = "notification_emails must hold at least one valid email address."
  }
}

variable "pagerduty_endpoint" {
  description = "PagerDuty's CloudWatch integration URL (https://events.pagerduty.com/integration/<key>/enqueue), subscribed to the page route. Null: no PagerDuty."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.pagerduty_endpoint == null || can(regex("^https://", var.pagerduty_endpoint))
    error_message = "pagerduty_endpoint must be an https URL."
  }
}

variable "slack" {
  description = "Slack workspace and channel ids for AWS Chatbot (the workspace must be authorized in the Chatbot console first). Null: no Slack."
  type = object({
    team_id    = string
    channel_id = string
  })
  default = null

  validation {
    condition     = var.slack == null || (can(regex("^[A-Z0-9]{9,11}$", var.slack.team_id)) && can(regex("^[A-Z0-9]{9,11}$", var.slack.channel_id)))
    error_message = "slack.team_id and slack.channel_id are Slack ids such as T0123ABCD and C0123ABCD."
  }
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
  description = "Multi-window burn-rate alarms on the Redis error ratio, windows in seconds: each fires when both windows burn the error budget faster than factor. page tiers go to the page route."
  type = map(object({
    long_window_seconds  = number
    short_window_seconds = number
    factor               = number
    page                 = bool
  }))
  default = {
    fast = { long_window_seconds = 3600, short_window_seconds = 300, factor = 14.4, page = true }
    slow = { long_window_seconds = 21600, short_window_seconds = 1800, factor = 6, page = true }
    drip = { long_window_seconds = 86400, short_window_seconds = 7200, factor = 3, page = false }
  }

  validation {
    condition = alltrue([for t in values(var.burn_rate_tiers) :
      t.long_window_seconds % 60 == 0 && t.short_window_seconds % 60 == 0 &&
      t.long_window_seconds <= 86400 && t.short_window_seconds < t.long_window_seconds && t.factor >= 1
    ])
    error_message = "windows are multiples of 60 s, the long one at most a day and longer than the short one; factor is at least 1."
  }
}

variable "connection_error_burst" {
  description = "Connection errors of one function within 5 minutes that raise the burst alarm."
  type        = number
  default     = 20

  validation {
    condition     = var.connection_error_burst >= 1
    error_message = "connection_error_burst must be at least 1."
  }
}

variable "latency_p99_threshold_ms" {
  description = "Alarm when the reported p99 Redis round-trip time stays above this for 15 minutes."
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
  description = "The slow-operation alarm fires when the slow share burns the latency budget this many times too fast, over 1 hour and 5 minutes."
  type        = number
  default     = 6

  validation {
    condition     = var.latency_burn_factor >= 1
    error_message = "latency_burn_factor must be at least 1."
  }
}

variable "http_5xx_ratio_threshold" {
  description = "Share of a function's responses that are 5xx, over 5 minutes, that raises the 5xx alarm."
  type        = number
  default     = 0.05

  validation {
    condition     = var.http_5xx_ratio_threshold > 0 && var.http_5xx_ratio_threshold < 1
    error_message = "http_5xx_ratio_threshold must be between 0 and 1."
  }
}

variable "elasticache_nodes" {
  description = "ElastiCache node ids (CacheClusterId, e.g. redis-main-001) whose memory, connections and evictions are watched. Empty: no ElastiCache alarms."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for id in var.elasticache_nodes : can(regex("^[a-z][a-z0-9-]{0,49}$", id))])
    error_message = "elasticache_nodes holds node ids such as redis-main-001."
  }
}

variable "redis_memory_percent_threshold" {
  description = "Alarm when DatabaseMemoryUsagePercentage stays above this for 10 minutes."
  type        = number
  default     = 85

  validation {
    condition     = var.redis_memory_percent_threshold > 50 && var.redis_memory_percent_threshold < 100
    error_message = "redis_memory_percent_threshold must be between 50 and 100."
  }
}

variable "redis_max_clients" {
  description = "maxclients of the ElastiCache nodes (65000 unless changed)."
  type        = number
  default     = 65000

  validation {
    condition     = var.redis_max_clients >= 1
    error_message = "redis_max_clients must be positive."
  }
}

variable "redis_clients_ratio_threshold" {
  description = "Alarm when CurrConnections exceeds this share of redis_max_clients."
  type        = number
  default     = 0.8

  validation {
    condition     = var.redis_clients_ratio_threshold > 0 && var.redis_clients_ratio_threshold < 1
    error_message = "redis_clients_ratio_threshold must be between 0 and 1."
  }
}

variable "redis_evictions_per_5m" {
  description = "Alarm when more keys than this are evicted in 5 minutes, twice in a row."
  type        = number
  default     = 100

  validation {
    condition     = var.redis_evictions_per_5m >= 0
    error_message = "redis_evictions_per_5m must not be negative."
  }
}

variable "tags" {
  description = "Tags added to every resource that takes tags."
  type        = map(string)
  default     = {}
}
