variable "name_prefix" {
  description = "Prefix of every name created (topics, alarms, keys), e.g. prod-redis-functions."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,38}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3 to 40 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "environment" {
  description = "The environment these alarms watch (production, staging, ...): the functions' DEPLOY_ENVIRONMENT, written as `environment` on the metrics line and a dimension of every metric the alarms read from it. One module instance per environment."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,31}$", var.environment))
    error_message = "environment is 1 to 32 lowercase letters, digits or hyphens, starting with a letter (e.g. production)."
  }
}

variable "functions" {
  description = "The functions of this environment, by crate name (tebra_debug, ...): the HTTPS host that serves each one (a Lambda Function URL or API Gateway host), the path before /redis-health (an API Gateway stage such as /prod, or empty), the Lambda function's name (default: the crate name), its reserved concurrency (null: none), and whether a Route 53 health check probes it (route53_probe, default true; false for an IAM-private Function URL, which Route 53 cannot sign for: probe it with a signing canary and pass that alarm in probe_alarm_names)."
  type = map(object({
    host                 = string
    path_prefix          = optional(string, "")
    lambda_function      = optional(string)
    reserved_concurrency = optional(number)
    route53_probe        = optional(bool, true)
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
  description = "PagerDuty's CloudWatch integration URL (https://events.pagerduty.com/integration/<key>/enqueue), subscribed to the page routes. Required in pager_required_environments; elsewhere null sends pages to email (and Slack)."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.pagerduty_endpoint == null || can(regex("^https://", var.pagerduty_endpoint))
    error_message = "pagerduty_endpoint must be an https URL."
  }
  validation {
    condition     = var.pagerduty_endpoint != null || !contains(var.pager_required_environments, var.environment)
    error_message = "This environment requires a pager: set pagerduty_endpoint (TF_VAR_pagerduty_endpoint from a secret store). Pages must not silently become e-mail."
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

variable "pager_required_environments" {
  description = "Environments that must page through PagerDuty: planning one of them without pagerduty_endpoint fails."
  type        = list(string)
  default     = ["production"]
}

variable "request_availability_objective" {
  description = "Share of user requests (probe routes excluded) that must not fail (no 5xx; no Lambda error or throttle)."
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
  description = "Multi-window, multi-burn-rate tiers (windows in seconds). Defaults: the SRE Workbook's 14.4x over 1h and 5m, 6x over 6h and 30m (page), 1x over 3d and 6h (ticket; CloudWatch evaluates up to 7 days when the period is an hour or more)."
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

  validation {
    condition = alltrue([for t in values(var.burn_rate_tiers) :
      t.long_window_seconds % 60 == 0 && t.short_window_seconds % 60 == 0 &&
      t.short_window_seconds < t.long_window_seconds && t.long_window_seconds <= 604800 && t.factor >= 1
    ])
    error_message = "windows are whole minutes, the short one shorter than the long one, at most 7 days; factor is at least 1."
  }
}

variable "connection_error_ratio_threshold" {
  description = "Connection errors over Redis operations (environment-wide, 5 minutes) that raise the connection-errors cause alarm."
  type        = number
  default     = 0.05
}

variable "latency_p99_threshold_ms" {
  description = "The p99 cause alarm's threshold: one of 10, 25, 50, 100, 250, 1000 ms (the bounds the code counts)."
  type        = number
  default     = 50
}

variable "heartbeat_minutes" {
  description = "Minutes without a metrics line from a function that raise the heartbeat alarm."
  type        = number
  default     = 15
}

variable "instance_ratio_threshold" {
  description = "Concurrent executions over reserved concurrency (or the account limit) above which the saturation alarm notifies."
  type        = number
  default     = 0.8
}

variable "account_concurrency_limit" {
  description = "The account's Lambda concurrency limit in the region."
  type        = number
  default     = 1000
}

variable "elasticache_nodes" {
  description = "ElastiCache node ids (CacheClusterId, e.g. redis-main-001) whose memory, CPU, connections and evictions are watched. Empty: no ElastiCache alarms."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for id in var.elasticache_nodes : can(regex("^[a-z][a-z0-9-]{0,49}$", id))])
    error_message = "elasticache_nodes holds node ids such as redis-main-001."
  }
}

variable "redis_memory_warn_ratio" {
  description = "DatabaseMemoryUsagePercentage / 100 that notifies after 10 minutes."
  type        = number
  default     = 0.85
}

variable "redis_memory_page_ratio" {
  description = "DatabaseMemoryUsagePercentage / 100 that pages after 5 minutes (suppressed while the SLO page is in ALARM)."
  type        = number
  default     = 0.95
}

variable "redis_cpu_ratio_threshold" {
  description = "EngineCPUUtilization / 100 that notifies after 15 minutes."
  type        = number
  default     = 0.8
}

variable "redis_max_clients" {
  description = "maxclients of the ElastiCache nodes (65000 unless changed)."
  type        = number
  default     = 65000
}

variable "redis_clients_ratio_threshold" {
  description = "CurrConnections over maxclients that pages (suppressed while the SLO page is in ALARM)."
  type        = number
  default     = 0.8
}

variable "redis_evictions_per_second" {
  description = "Evictions per second (over 5 minutes, twice) that notify."
  type        = number
  default     = 1
}

variable "tags" {
  description = "Tags added to every resource that takes tags."
  type        = map(string)
  default     = {}
}

variable "probe_alarm_names" {
  description = "Alarms in us-east-1 of probes this module does not create (e.g. a CloudWatch Synthetics canary that signs its request to an IAM-private Function URL, terraform/examples/aws): they join the Route 53 probe alarms in the probe page. Every function needs one probe or the other."
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
