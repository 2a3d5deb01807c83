# Routing: two SNS topics per region used.
#   page   - severity critical: PagerDuty (required in pager_required_environments,
#            e.g. production), email, Slack.
#   notify - severity warning: email, Slack.
# The probe alarms live in us-east-1 (Route 53 metrics are published there),
# so the page route has a second topic in that region with the same
# subscribers. Topics are encrypted with a key of this module's own: CloudWatch
# cannot publish to a topic encrypted with the AWS-managed SNS key.

data "aws_caller_identity" "current" {}

data "aws_iam_policy_document" "alerts_key" {
  # A KMS key policy: "*" is the key itself, and the account root administers it
  # (the AWS default key policy), so these IAM-policy checks do not apply.
  # checkov:skip=CKV_AWS_111:key policy; the resource is the key itself
  # checkov:skip=CKV_AWS_356:key policy; the resource is the key itself
  # checkov:skip=CKV_AWS_109:key policy; the account root administers its own key
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
  statement {
    sid       = "CloudWatchPublishesAlarms"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
  }
}

resource "aws_kms_key" "alerts" {
  description         = "${var.name_prefix}: encrypts the alert topics"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.alerts_key.json
  tags                = var.tags
}

resource "aws_kms_key" "alerts_us_east_1" {
  provider = aws.us_east_1

  description         = "${var.name_prefix}: encrypts the probe alert topic"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.alerts_key.json
  tags                = var.tags
}

resource "aws_sns_topic" "page" {
  name              = "${var.name_prefix}-page"
  kms_master_key_id = aws_kms_key.alerts.arn
  tags              = merge(var.tags, { route = "page" })
}

resource "aws_sns_topic" "notify" {
  name              = "${var.name_prefix}-notify"
  kms_master_key_id = aws_kms_key.alerts.arn
  tags              = merge(var.tags, { route = "notify" })
}

resource "aws_sns_topic" "probe_page" {
  provider = aws.us_east_1

  name              = "${var.name_prefix}-probe-page"
  kms_master_key_id = aws_kms_key.alerts_us_east_1.arn
  tags              = merge(var.tags, { route = "page" })
}

locals {
  topics = {
    page       = aws_sns_topic.page.arn
    notify     = aws_sns_topic.notify.arn
    probe_page = aws_sns_topic.probe_page.arn
  }

  # The topic of each severity.
  route = {
    critical = aws_sns_topic.page.arn
    warning  = aws_sns_topic.notify.arn
  }

  email_subscriptions = {
    for pair in setproduct(["page", "notify"], var.notification_emails) :
    "${pair[0]}-${pair[1]}" => { topic = local.topics[pair[0]], email = pair[1] }
  }
}

resource "aws_sns_topic_subscription" "email" {
  for_each = local.email_subscriptions

  topic_arn = each.value.topic
  protocol  = "email"
  endpoint  = each.value.email
}

resource "aws_sns_topic_subscription" "email_probe" {
  provider = aws.us_east_1
  for_each = toset(var.notification_emails)

  topic_arn = aws_sns_topic.probe_page.arn
  protocol  = "email"
  endpoint  = each.value
}

resource "aws_sns_topic_subscription" "pagerduty" {
  # Whether an endpoint is set is not a secret (the URL is): count may not be sensitive.
  count = nonsensitive(var.pagerduty_endpoint != null) ? 1 : 0

  topic_arn              = aws_sns_topic.page.arn
  protocol               = "https"
  endpoint               = var.pagerduty_endpoint
  endpoint_auto_confirms = true
}

resource "aws_sns_topic_subscription" "pagerduty_probe" {
  provider = aws.us_east_1
  count    = nonsensitive(var.pagerduty_endpoint != null) ? 1 : 0

  topic_arn              = aws_sns_topic.probe_page.arn
  protocol               = "https"
  endpoint               = var.pagerduty_endpoint
  endpoint_auto_confirms = true
}

data "aws_iam_policy_document" "chatbot_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["chatbot.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "chatbot" {
  count = var.slack == null ? 0 : 1

  name               = "${var.name_prefix}-chatbot"
  assume_role_policy = data.aws_iam_policy_document.chatbot_assume.json
  tags               = var.tags
}

resource "aws_chatbot_slack_channel_configuration" "alerts" {
  count = var.slack == null ? 0 : 1

  configuration_name    = "${var.name_prefix}-alerts"
  iam_role_arn          = aws_iam_role.chatbot[0].arn
  slack_team_id         = var.slack.team_id
  slack_channel_id      = var.slack.channel_id
  sns_topic_arns        = values(local.topics)
  guardrail_policy_arns = ["arn:aws:iam::aws:policy/ReadOnlyAccess"]
  logging_level         = "ERROR"
  tags                  = var.tags
}
