# terraform test with a mock provider: no credentials, no API calls. Plans
# the module and checks what it would create, and that bad input is refused.

mock_provider "google" {}

variables {
  project_id  = "demo-project-123"
  environment = "staging"
  functions = {
    tebra_debug  = { host = "tebra-debug-abc-uc.a.run.app" }
    patient_sync = { host = "patient-sync-abc-uc.a.run.app", max_instances = 20 }
  }
  runbook_base_url      = "https://example.com/runbooks"
  notification_emails   = ["oncall@example.com"]
  memorystore_region    = "us-central1"
  memorystore_instances = ["redis-main"]
}

run "one_probe_per_function_and_one_page_per_environment" {
  command = plan

  assert {
    condition     = length(google_monitoring_uptime_check_config.redis_health) == 2
    error_message = "expected one uptime check per function"
  }
  assert {
    condition     = google_monitoring_uptime_check_config.redis_health["tebra_debug"].http_check[0].path == "/redis-health"
    error_message = "the uptime check must probe /redis-health"
  }
  assert {
    condition     = google_monitoring_alert_policy.page["slo_page"].severity == "CRITICAL"
    error_message = "the SLO page is critical"
  }
  assert {
    condition     = toset(keys(google_monitoring_alert_policy.page)) == toset(["slo_page", "redis_memory_page", "redis_clients"])
    error_message = "only the SLO page and the two Memorystore causes page"
  }
  assert {
    condition     = alltrue([for p in google_monitoring_alert_policy.notify : p.severity == "WARNING"])
    error_message = "everything else notifies"
  }
}

run "every_policy_carries_the_environment" {
  command = plan

  assert {
    condition     = alltrue([for p in concat(values(google_monitoring_alert_policy.page), values(google_monitoring_alert_policy.notify)) : p.user_labels["environment"] == "staging"])
    error_message = "every policy is labelled with its environment"
  }
  assert {
    condition     = alltrue([for m in google_logging_metric.count : contains(keys(m.label_extractors), "environment")])
    error_message = "every log-based metric extracts the environment"
  }
}

run "memorystore_filters_use_the_full_name" {
  command = plan

  assert {
    condition     = strcontains(google_monitoring_alert_policy.notify["redis_memory"].conditions[0].condition_prometheus_query_language[0].query, "instance_id=~\"projects/demo-project-123/locations/us-central1/instances/redis-main\"")
    error_message = "a bare id is completed to projects/P/locations/R/instances/ID"
  }
}

run "pages_go_to_email_without_pagerduty_outside_production" {
  command = plan

  assert {
    condition     = length(google_monitoring_notification_channel.pagerduty) == 0 && length(google_monitoring_notification_channel.email) == 1
    error_message = "without a PagerDuty key only the email channel exists"
  }
}

run "production_without_pagerduty_is_refused" {
  command = plan

  variables {
    environment = "production"
  }

  expect_failures = [var.pagerduty_service_key]
}

run "a_second_environment_in_the_project_shares_the_log_metrics" {
  command = plan

  variables {
    manage_log_metrics = false
  }

  assert {
    condition     = length(google_logging_metric.count) == 0
    error_message = "log-based metrics are created once per project"
  }
}

run "a_host_with_a_scheme_is_refused" {
  command = plan

  variables {
    functions = { tebra_debug = { host = "https://tebra-debug.example.com" } }
  }

  expect_failures = [var.functions]
}
