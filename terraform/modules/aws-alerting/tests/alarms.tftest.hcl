# terraform test with mock providers: no credentials, no API calls.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }
  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }
}

mock_provider "aws" {
  alias = "us_east_1"
}

variables {
  name_prefix = "test-redis-functions"
  functions = {
    tebra_debug  = { host = "abc.lambda-url.eu-west-1.on.aws" }
    patient_sync = { host = "def.execute-api.eu-west-1.amazonaws.com", path_prefix = "/prod" }
  }
  runbook_base_url    = "https://example.com/runbooks"
  notification_emails = ["oncall@example.com"]
  elasticache_nodes   = ["redis-main-001"]
}

run "burn_rate_composites_per_function_and_tier" {
  command = plan

  assert {
    condition     = length(aws_cloudwatch_composite_alarm.error_burn) == 6
    error_message = "expected 2 functions x 3 tiers"
  }
  assert {
    condition     = length(aws_cloudwatch_metric_alarm.error_burn_window) == 12
    error_message = "expected a long and a short window per composite"
  }
  assert {
    condition     = aws_cloudwatch_composite_alarm.error_burn["tebra_debug-fast"].tags["severity"] == "critical"
    error_message = "the fast burn must page"
  }
}

run "probes_use_the_stage_prefix" {
  command = plan

  assert {
    condition     = aws_route53_health_check.redis_health["patient_sync"].resource_path == "/prod/redis-health"
    error_message = "the stage prefix belongs before /redis-health"
  }
  assert {
    condition     = aws_route53_health_check.redis_health["tebra_debug"].search_string == "\"status\":\"healthy\""
    error_message = "the probe must match the healthy body"
  }
}

run "a_custom_namespace_under_aws_is_refused" {
  command = plan

  variables {
    metric_namespace = "AWS/Lambda"
  }

  expect_failures = [var.metric_namespace]
}

run "windows_must_be_whole_minutes" {
  command = plan

  variables {
    burn_rate_tiers = {
      fast = { long_window_seconds = 3601, short_window_seconds = 300, factor = 14.4, page = true }
    }
  }

  expect_failures = [var.burn_rate_tiers]
}
