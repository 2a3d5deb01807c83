# Notification channels and routing. Two routes:
#   page   - CRITICAL alerts: PagerDuty, plus Slack. Without a PagerDuty key (refused
#            in pager_required_environments, e.g. production) email, plus Slack.
#   notify - WARNING alerts: email, plus Slack.

resource "google_monitoring_notification_channel" "email" {
  for_each = toset(var.notification_emails)

  project      = var.project_id
  display_name = "Redis functions (${var.environment}): ${each.value}"
  type         = "email"
  labels = {
    email_address = each.value
  }
}

resource "google_monitoring_notification_channel" "slack" {
  count = var.slack_channel_name == null ? 0 : 1

  project      = var.project_id
  display_name = "Redis functions (${var.environment}): Slack ${var.slack_channel_name}"
  type         = "slack"
  labels = {
    channel_name = var.slack_channel_name
  }
  sensitive_labels {
    auth_token = var.slack_auth_token
  }

  lifecycle {
    precondition {
      condition     = var.slack_auth_token != null
      error_message = "slack_auth_token is required with slack_channel_name."
    }
  }
}

resource "google_monitoring_notification_channel" "pagerduty" {
  # Whether a key is set is not a secret (the key is): count may not be sensitive.
  count = nonsensitive(var.pagerduty_service_key != null) ? 1 : 0

  project      = var.project_id
  display_name = "Redis functions (${var.environment}): PagerDuty on-call"
  type         = "pagerduty"
  sensitive_labels {
    service_key = var.pagerduty_service_key
  }
}

locals {
  email_channels     = [for c in google_monitoring_notification_channel.email : c.id]
  slack_channels     = google_monitoring_notification_channel.slack[*].id
  pagerduty_channels = google_monitoring_notification_channel.pagerduty[*].id

  routes = {
    page   = concat(length(local.pagerduty_channels) > 0 ? local.pagerduty_channels : local.email_channels, local.slack_channels)
    notify = concat(local.email_channels, local.slack_channels)
  }
}
