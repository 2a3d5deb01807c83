variable "environment" {
  description = "The environment the alerts watch (production, staging, ...): the `environment` field of the metrics line, a label or dimension of every metric the alerts read, and part of every alert's name."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,31}$", var.environment))
    error_message = "environment is 1 to 32 lowercase letters, digits or hyphens, starting with a letter (e.g. production)."
  }
}

variable "pager_required_environments" {
  description = "Environments whose page route must reach a pager (PagerDuty): planning one of them without a pager fails."
  type        = list(string)
  default     = ["production"]
}

variable "pager_configured" {
  description = "Whether the page route reaches a pager (a PagerDuty key or endpoint is set). Without one, pages go to e-mail, which is refused in pager_required_environments."
  type        = bool

  validation {
    condition     = var.pager_configured || !contains(var.pager_required_environments, var.environment)
    error_message = "This environment requires a pager: set the PagerDuty key (GCP pagerduty_service_key, AWS pagerduty_endpoint). Pages must not silently become e-mail."
  }
}

variable "functions" {
  description = "The functions, by crate name, with their names on each platform: the Cloud Run service (default: the name with - for _) and its max instances, the Lambda function (default: the name) and its reserved concurrency (null: none), the uptime check id of its /redis-health probe (GCP)."
  type = map(object({
    cloud_run_service    = optional(string)
    max_instances        = optional(number, 100)
    lambda_function      = optional(string)
    reserved_concurrency = optional(number)
    uptime_check_id      = optional(string)
  }))

  validation {
    condition     = length(var.functions) > 0 && alltrue([for name in keys(var.functions) : can(regex("^[a-z][a-z0-9_]{0,47}$", name))])
    error_message = "functions names at least one function, by crate name: lowercase letters, digits and underscores, starting with a letter."
  }
  validation {
    condition     = alltrue([for f in values(var.functions) : f.max_instances >= 1 && (f.reserved_concurrency == null ? true : f.reserved_concurrency >= 1)])
    error_message = "max_instances and reserved_concurrency must be at least 1."
  }
}

variable "metric_namespace" {
  description = "CloudWatch namespace of the functions' Embedded Metric Format metrics (shared::telemetry::names::NAMESPACE)."
  type        = string
  default     = "ServerlessRedis"
}

variable "request_availability_objective" {
  description = "Share of user requests (probe routes excluded) that must not fail: no 5xx from the function, no 5xx or 429 from the platform."
  type        = number
  default     = 0.999

  validation {
    condition     = var.request_availability_objective >= 0.9 && var.request_availability_objective < 1
    error_message = "request_availability_objective must be at least 0.9 and below 1."
  }
}

variable "request_latency_objective" {
  description = "Share of user requests that must be answered faster than the code's fixed threshold (http_slow_threshold_ms on the metrics line)."
  type        = number
  default     = 0.99

  validation {
    condition     = var.request_latency_objective >= 0.5 && var.request_latency_objective < 1
    error_message = "request_latency_objective must be at least 0.5 and below 1."
  }
}

variable "redis_availability_objective" {
  description = "Share of Redis operations that must succeed; operations refused by the open circuit breaker count as failed."
  type        = number
  default     = 0.999

  validation {
    condition     = var.redis_availability_objective >= 0.9 && var.redis_availability_objective < 1
    error_message = "redis_availability_objective must be at least 0.9 and below 1."
  }
}

variable "redis_latency_objective" {
  description = "Share of Redis operations that must be faster than 100 ms (redis_slow_threshold_ms, fixed in code)."
  type        = number
  default     = 0.99

  validation {
    condition     = var.redis_latency_objective >= 0.5 && var.redis_latency_objective < 1
    error_message = "redis_latency_objective must be at least 0.5 and below 1."
  }
}

variable "burn_rate_tiers" {
  description = "The SRE Workbook's multi-window, multi-burn-rate alerts, windows in seconds: a tier fires when both windows burn the error budget faster than factor. page tiers page (through the environment's one SLO page); the others open a ticket (notify route)."
  type = map(object({
    long_window_seconds  = number
    short_window_seconds = number
    factor               = number
    page                 = bool
  }))
  default = {
    # 2 % of a 30-day budget in 1 hour, 5 % in 6 hours (page); 10 % in 3 days (ticket).
    fast   = { long_window_seconds = 3600, short_window_seconds = 300, factor = 14.4, page = true }
    slow   = { long_window_seconds = 21600, short_window_seconds = 1800, factor = 6, page = true }
    ticket = { long_window_seconds = 259200, short_window_seconds = 21600, factor = 1, page = false }
  }

  validation {
    condition = alltrue([for t in values(var.burn_rate_tiers) :
      t.long_window_seconds % 60 == 0 && t.short_window_seconds % 60 == 0 &&
      t.short_window_seconds < t.long_window_seconds && t.long_window_seconds <= 604800 && t.factor >= 1
    ])
    error_message = "windows are whole minutes, the short one shorter than the long one, at most 7 days (CloudWatch's longest evaluation range); factor is at least 1."
  }
  validation {
    condition     = anytrue([for t in values(var.burn_rate_tiers) : t.page])
    error_message = "at least one tier must page."
  }
}

variable "connection_error_ratio_threshold" {
  description = "Connection errors over Redis operations, over 5 minutes and across the environment's functions, that raise the connection-errors cause alert (a share, not a count: a failover across many instances stays under it, an outage at low traffic does not)."
  type        = number
  default     = 0.05

  validation {
    condition     = var.connection_error_ratio_threshold > 0 && var.connection_error_ratio_threshold < 1
    error_message = "connection_error_ratio_threshold must be between 0 and 1."
  }
}

variable "latency_p99_threshold_ms" {
  description = "The p99 cause alert fires when more than 1 % of a function's Redis operations took this long or longer over 15 minutes (the p99 of the fleet's distribution is above it). One of the bounds the code counts (redis_operations_ge_<N>ms)."
  type        = number
  default     = 50

  validation {
    condition     = contains([10, 25, 50, 100, 250, 1000], var.latency_p99_threshold_ms)
    error_message = "latency_p99_threshold_ms must be one of the bounds on the metrics line: 10, 25, 50, 100, 250, 1000."
  }
}

variable "heartbeat_minutes" {
  description = "The heartbeat alert fires when a function wrote no metrics line for this long (the black-box probes guarantee traffic, so silence means the line is lost)."
  type        = number
  default     = 15

  validation {
    condition     = var.heartbeat_minutes % 5 == 0 && var.heartbeat_minutes >= 10 && var.heartbeat_minutes <= 60
    error_message = "heartbeat_minutes is a multiple of 5 from 10 to 60."
  }
}

variable "instance_ratio_threshold" {
  description = "Saturation: Cloud Run instances over max instances, Lambda concurrent executions over reserved concurrency (or the account limit), above which the saturation alert notifies."
  type        = number
  default     = 0.8

  validation {
    condition     = var.instance_ratio_threshold > 0 && var.instance_ratio_threshold < 1
    error_message = "instance_ratio_threshold must be between 0 and 1."
  }
}

variable "account_concurrency_limit" {
  description = "The Lambda account's concurrency limit in the region (AWS only)."
  type        = number
  default     = 1000
}

variable "memorystore_project" {
  description = "Project of the Memorystore instances given by bare id."
  type        = string
  default     = null
}

variable "memorystore_region" {
  description = "Region of the Memorystore instances given by bare id (e.g. us-central1)."
  type        = string
  default     = null

  validation {
    condition     = var.memorystore_region == null || can(regex("^[a-z]+-[a-z]+[0-9]+$", var.memorystore_region))
    error_message = "memorystore_region is a region such as us-central1."
  }
}

variable "memorystore_instances" {
  description = "Memorystore for Redis instances to watch: a bare id (redis-main, with memorystore_project and memorystore_region) or the full name projects/P/locations/R/instances/ID. The filters always compare the full name: it is the form of the instance_id label of redis.googleapis.com metrics on redis_instance."
  type        = list(string)
  default     = []

  validation {
    condition = alltrue([for id in var.memorystore_instances :
      can(regex("^[a-z][a-z0-9-]{0,39}$", id)) ||
      can(regex("^projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/locations/[a-z]+-[a-z]+[0-9]+/instances/[a-z][a-z0-9-]{0,39}$", id))
    ])
    error_message = "memorystore_instances holds instance ids (redis-main) or full names (projects/my-project/locations/us-central1/instances/redis-main)."
  }
  validation {
    condition     = alltrue([for id in var.memorystore_instances : startswith(id, "projects/") || (var.memorystore_region != null && var.memorystore_project != null)])
    error_message = "a bare Memorystore id needs memorystore_region (and the project): the instance_id label is projects/P/locations/R/instances/ID."
  }
}

variable "redis_memory_warn_ratio" {
  description = "Memory used over maxmemory (and system memory used) above which the memory alert notifies, for 10 minutes."
  type        = number
  default     = 0.85
}

variable "redis_memory_page_ratio" {
  description = "Memory ratio above which the memory alert pages (for 5 minutes), unless the SLO page is already open."
  type        = number
  default     = 0.95

  validation {
    condition     = var.redis_memory_page_ratio > var.redis_memory_warn_ratio && var.redis_memory_page_ratio < 1 && var.redis_memory_warn_ratio > 0.5
    error_message = "redis_memory_warn_ratio and redis_memory_page_ratio are between 0.5 and 1, the page ratio above the warning one."
  }
}

variable "redis_cpu_ratio_threshold" {
  description = "Redis engine CPU (Memorystore main thread, ElastiCache EngineCPUUtilization / 100) above which the CPU alert notifies, over 15 minutes."
  type        = number
  default     = 0.8
}

variable "redis_max_clients" {
  description = "maxclients of the managed Redis (65000 unless changed)."
  type        = number
  default     = 65000
}

variable "redis_clients_ratio_threshold" {
  description = "Connected clients over redis_max_clients above which the clients alert pages (5 minutes), unless the SLO page is already open."
  type        = number
  default     = 0.8
}

variable "redis_evictions_per_second" {
  description = "Evictions per second (over 10 minutes) above which the evictions alert notifies."
  type        = number
  default     = 1
}

variable "elasticache_nodes" {
  description = "ElastiCache node ids (CacheClusterId) watched by the AWS alarms."
  type        = list(string)
  default     = []
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
