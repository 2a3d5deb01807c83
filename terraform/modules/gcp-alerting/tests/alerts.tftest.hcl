# terraform test with a mock provider: no credentials, no API calls. Plans
# the module and checks what it would create, and that bad input is refused.

mock_provider "google" {}

variables {
  project_id = "demo-project-123"
  functions = {
    tebra_debug  = { host = "tebra-debug-abc-uc.a.run.app" }
    patient_sync = { host = "patient-sync-abc-uc.a.run.app" }
  }
  runbook_base_url      = "https://example.com/runbooks"
  notification_emails   = ["oncall@example.com"]
  memorystore_instances = ["redis-main"]
}

run "one_probe_and_probe_alert_per_function" {
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
    condition     = length(google_monitoring_alert_policy.redis_health_probe) == 2
    error_message = "expected one probe alert per function"
  }
}

run "burn_rate_tiers_page_or_notify" {
  command = plan

  assert {
    condition     = length(google_monitoring_alert_policy.redis_error_budget_burn) == 3
    error_message = "expected the three default burn-rate tiers"
  }
  assert {
    condition     = google_monitoring_alert_policy.redis_error_budget_burn["fast"].severity == "CRITICAL"
    error_message = "the fast burn must page"
  }
  assert {
    condition     = google_monitoring_alert_policy.redis_error_budget_burn["drip"].severity == "WARNING"
    error_message = "the slow drip must only notify"
  }
}

run "pages_go_to_email_without_pagerduty" {
  command = plan

  assert {
    condition     = length(google_monitoring_notification_channel.pagerduty) == 0 && length(google_monitoring_notification_channel.email) == 1
    error_message = "without a PagerDuty key only the email channel exists"
  }
}

run "no_memorystore_alerts_without_instances" {
  command = plan

  variables {
    memorystore_instances = []
  }

  assert {
    condition     = length(google_monitoring_alert_policy.redis_memory) == 0 && length(google_monitoring_alert_policy.redis_evictions) == 0
    error_message = "Memorystore alerts need instances"
  }
}

run "an_objective_of_one_is_refused" {
  command = plan

  variables {
    availability_objective = 1
  }

  expect_failures = [var.availability_objective]
}

run "a_host_with_a_scheme_is_refused" {
  command = plan

  variables {
    functions = { tebra_debug = { host = "https://tebra-debug.example.com" } }
  }

  expect_failures = [var.functions]
}
