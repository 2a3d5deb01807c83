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
  mock_data "aws_region" {
    defaults = {
      name = "eu-west-1"
    }
  }
}

mock_provider "aws" {
  alias = "us_east_1"
}

variables {
  name_prefix = "test-redis-functions"
  environment = "staging"
  functions = {
    tebra_debug  = { host = "abc.lambda-url.eu-west-1.on.aws", reserved_concurrency = 50 }
    patient_sync = { host = "def.execute-api.eu-west-1.amazonaws.com", path_prefix = "/prod" }
  }
  runbook_base_url    = "https://example.com/runbooks"
  notification_emails = ["oncall@example.com"]
  elasticache_nodes   = ["redis-main-001"]
}

run "burn_composites_per_function_slo_and_tier_and_one_page" {
  command = plan

  assert {
    condition     = length(aws_cloudwatch_composite_alarm.slo_burn) == 2 * 5 * 3
    error_message = "expected 2 functions x 5 SLOs x 3 tiers"
  }
  assert {
    condition     = length(aws_cloudwatch_metric_alarm.slo_window) == 2 * 2 * 5 * 3
    error_message = "expected a long and a short window per composite"
  }
  assert {
    condition     = aws_cloudwatch_composite_alarm.slo_page.tags["severity"] == "critical" && length(regexall("ALARM", aws_cloudwatch_composite_alarm.slo_page.alarm_rule)) == 2 * 4 * 2
    error_message = "one page over 2 functions x 4 paging SLOs x 2 paging tiers"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.slo_window["tebra_debug-request_availability_fast-long"].threshold == 0.0144
    error_message = "the fast tier fires at 14.4 x the budget"
  }
}

run "paging_causes_are_suppressed_by_the_page" {
  command = plan

  assert {
    condition     = alltrue([for a in aws_cloudwatch_composite_alarm.page_cause : a.actions_suppressor[0].alarm == "test-redis-functions-slo-page"])
    error_message = "memory and connection pages are suppressed while the SLO page is in ALARM"
  }
}

run "every_own_metric_has_the_environment_dimension" {
  command = plan

  assert {
    condition = alltrue(flatten([
      for a in aws_cloudwatch_metric_alarm.slo_window : [
        for q in a.metric_query : q.metric[0].namespace != "ServerlessRedis" || lookup(q.metric[0].dimensions, "environment", "none") == "staging" if length(q.metric) > 0
      ]
    ]))
    error_message = "every ServerlessRedis metric is read with environment = staging"
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

run "production_without_pagerduty_is_refused" {
  command = plan

  variables {
    environment = "production"
  }

  expect_failures = [var.pagerduty_endpoint]
}

run "a_custom_namespace_under_aws_is_refused" {
  command = plan

  variables {
    metric_namespace = "AWS/Lambda"
  }

  expect_failures = [var.metric_namespace]
}
