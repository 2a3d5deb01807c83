# Example root: three functions on Lambda, private by default, with alarms
# and authenticated probes, and an ElastiCache replication group of two
# nodes. Pass the PagerDuty URL as TF_VAR_pagerduty_endpoint from a secret
# store, never in a file.
#
# Private by default: each function's URL (on its `live` alias) requires
# IAM authentication (SigV4); only the principals in var.invoker_arns and the
# probe may call it. The functions run with the default AUTH_MODE=platform:
# they read the caller's IAM identity from the request context and give it
# the tenants AUTH_PRINCIPAL_TENANTS grants (set on the functions).
#
# The probe: Route 53 health checks cannot sign a request, so each function
# is probed by a CloudWatch Synthetics canary (canary/) that signs
# GET /redis-health with its role; the canaries' alarms join the module's
# probe page.

terraform {
  required_version = ">= 1.9.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.80, < 7.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.4, < 3.0"
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

variable "lambda_alias" {
  description = "The alias make deploy moves (LAMBDA_ALIAS): the URL serves it."
  type        = string
  default     = "live"
}

variable "invoker_arns" {
  description = "IAM principals (role or user ARNs) that may call each function's URL, by crate name: e.g. the practice-management connector's role for patient_sync. Nobody else can."
  type        = map(list(string))
  default     = {}

  validation {
    condition     = alltrue([for arns in values(var.invoker_arns) : alltrue([for a in arns : can(regex("^arn:aws:iam::[0-9]{12}:(role|user)/", a))])])
    error_message = "invoker_arns holds IAM role or user ARNs only (never *)."
  }
}

provider "aws" {
  region = var.region
}

provider "aws" {
  alias  = "us_east_1"
  region = "us-east-1"
}

data "aws_caller_identity" "current" {}

locals {
  name_prefix = "prod-redis-functions"
  # Crate name => Lambda function name.
  functions = {
    tebra_debug  = "tebra_debug"
    patient_sync = "patient_sync"
    sessions     = "sessions"
  }
  alias_arns = {
    for k, fn in local.functions :
    k => "arn:aws:lambda:${var.region}:${data.aws_caller_identity.current.account_id}:function:${fn}:${var.lambda_alias}"
  }
  invocations = merge([
    for k, arns in var.invoker_arns : { for a in arns : "${k} ${a}" => { function = k, principal = a } }
  ]...)
}

# --- Private by default: the URL of each function's alias requires SigV4.

resource "aws_lambda_function_url" "fn" {
  for_each = local.functions

  function_name      = each.value
  qualifier          = var.lambda_alias
  authorization_type = "AWS_IAM"
}

resource "aws_lambda_permission" "invoke_url" {
  for_each = local.invocations

  statement_id           = "invoke-url-${substr(sha256(each.key), 0, 16)}"
  action                 = "lambda:InvokeFunctionUrl"
  function_name          = local.functions[each.value.function]
  qualifier              = var.lambda_alias
  principal              = each.value.principal
  function_url_auth_type = "AWS_IAM"
}

# --- Authenticated probes: one canary per function, in us-east-1 with the
# probe page (a composite alarm takes alarms of its own region only).

resource "aws_s3_bucket" "canary" {
  # checkov:skip=CKV_AWS_18:Canary run artifacts (screenshots-free HTTP logs) expire in 30 days; access logs of them would outlive them.
  # checkov:skip=CKV_AWS_144:Probe artifacts are disposable: no cross-region replica.
  # checkov:skip=CKV2_AWS_62:Nothing reacts to new canary artifacts.
  provider      = aws.us_east_1
  bucket_prefix = "${local.name_prefix}-canary-"
  force_destroy = true
}

resource "aws_s3_bucket_public_access_block" "canary" {
  provider                = aws.us_east_1
  bucket                  = aws_s3_bucket.canary.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_kms_key" "canary" {
  provider                = aws.us_east_1
  description             = "${local.name_prefix}: encrypts the canaries' artifacts"
  enable_key_rotation     = true
  deletion_window_in_days = 7
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministers"
        Effect    = "Allow"
        Principal = { AWS = "arn:aws:iam::${data.aws_caller_identity.current.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
    ]
  })
}

resource "aws_s3_bucket_server_side_encryption_configuration" "canary" {
  provider = aws.us_east_1
  bucket   = aws_s3_bucket.canary.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.canary.arn
    }
  }
}

resource "aws_s3_bucket_versioning" "canary" {
  provider = aws.us_east_1
  bucket   = aws_s3_bucket.canary.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "canary" {
  provider = aws.us_east_1
  bucket   = aws_s3_bucket.canary.id
  rule {
    id     = "expire"
    status = "Enabled"
    filter {}
    expiration {
      days = 30
    }
    noncurrent_version_expiration {
      noncurrent_days = 1
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

resource "aws_iam_role" "canary" {
  name = "${local.name_prefix}-canary"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "lambda.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy" "canary" {
  name = "probe"
  role = aws_iam_role.canary.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "CallThePrivateUrls"
        Effect   = "Allow"
        Action   = "lambda:InvokeFunctionUrl"
        Resource = values(local.alias_arns)
        Condition = {
          StringEquals = { "lambda:FunctionUrlAuthType" = "AWS_IAM" }
        }
      },
      {
        Sid      = "WriteArtifacts"
        Effect   = "Allow"
        Action   = ["s3:PutObject", "s3:GetBucketLocation"]
        Resource = [aws_s3_bucket.canary.arn, "${aws_s3_bucket.canary.arn}/*"]
      },
      {
        Sid      = "EncryptArtifacts"
        Effect   = "Allow"
        Action   = ["kms:GenerateDataKey", "kms:Decrypt"]
        Resource = aws_kms_key.canary.arn
      },
      {
        Sid      = "Logs"
        Effect   = "Allow"
        Action   = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
        Resource = "arn:aws:logs:us-east-1:${data.aws_caller_identity.current.account_id}:log-group:/aws/lambda/cwsyn-*"
      },
      {
        Sid       = "Metrics"
        Effect    = "Allow"
        Action    = "cloudwatch:PutMetricData"
        Resource  = "*"
        Condition = { StringEquals = { "cloudwatch:namespace" = "CloudWatchSynthetics" } }
      },
    ]
  })
}

data "archive_file" "canary" {
  type        = "zip"
  source_dir  = "${path.module}/canary"
  output_path = "${path.module}/.terraform/canary.zip"
}

resource "aws_synthetics_canary" "redis_health" {
  provider = aws.us_east_1
  for_each = local.functions

  # At most 21 characters: lowercase letters, digits, - and _.
  name                     = substr("rf-${replace(each.key, "_", "-")}", 0, 21)
  artifact_s3_location     = "s3://${aws_s3_bucket.canary.bucket}/${each.key}/"
  execution_role_arn       = aws_iam_role.canary.arn
  handler                  = "redis_health.handler"
  zip_file                 = data.archive_file.canary.output_path
  runtime_version          = "syn-nodejs-puppeteer-9.1"
  start_canary             = true
  success_retention_period = 2
  failure_retention_period = 14

  schedule {
    expression = "rate(1 minute)"
  }

  run_config {
    timeout_in_seconds = 30
    environment_variables = {
      PROBE_URL    = "${trimsuffix(aws_lambda_function_url.fn[each.key].function_url, "/")}/redis-health"
      PROBE_REGION = var.region
    }
  }

  artifact_config {
    s3_encryption {
      encryption_mode = "SSE_KMS"
      kms_key_arn     = aws_kms_key.canary.arn
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "canary" {
  # checkov:skip=CKV_AWS_319:Part of the probe page (a composite alarm in the module): the composite alarm pages.
  provider = aws.us_east_1
  for_each = local.functions

  alarm_name          = "${local.name_prefix}-${each.key}-redis-health-canary"
  alarm_description   = "${each.key} (production): the signed GET /redis-health of the canary failed twice in a row."
  namespace           = "CloudWatchSynthetics"
  metric_name         = "SuccessPercent"
  dimensions          = { CanaryName = aws_synthetics_canary.redis_health[each.key].name }
  statistic           = "Average"
  period              = 60
  evaluation_periods  = 2
  comparison_operator = "LessThanThreshold"
  threshold           = 100
  treat_missing_data  = "breaching"
  actions_enabled     = false

  tags = { function = each.key, environment = "production" }
}

module "alerting" {
  source = "../../modules/aws-alerting"

  providers = {
    aws           = aws
    aws.us_east_1 = aws.us_east_1
  }

  name_prefix = local.name_prefix
  environment = "production"
  functions = {
    for k, fn in local.functions : k => {
      host            = trimsuffix(trimprefix(aws_lambda_function_url.fn[k].function_url, "https://"), "/")
      lambda_function = fn
      # Route 53 cannot sign for an IAM-private URL: the canary probes it.
      route53_probe = false
    }
  }
  probe_alarm_names   = [for a in aws_cloudwatch_metric_alarm.canary : a.alarm_name]
  runbook_base_url    = "https://github.com/example-org/redis-functions/blob/main/terraform/runbooks"
  notification_emails = ["oncall@example.com"]
  pagerduty_endpoint  = var.pagerduty_endpoint
  elasticache_nodes   = ["redis-main-001", "redis-main-002"]
  tags                = { project = "redis-functions" }
}

output "function_urls" {
  description = "The IAM-private URL of each function (sign requests with SigV4, service lambda)."
  value       = { for k, u in aws_lambda_function_url.fn : k => u.function_url }
}

output "alarms" {
  description = "The alarms created."
  value       = module.alerting.alarms
}

output "dashboard" {
  description = "The SLO and causes dashboard."
  value       = module.alerting.dashboard
}

output "canaries" {
  description = "The signing canary probing each function's /redis-health."
  value       = { for k, c in aws_synthetics_canary.redis_health : k => c.name }
}
