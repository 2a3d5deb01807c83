# Runs offline (no provider): make ops-check runs `terraform test` here.

variables {
  environment      = "production"
  pager_configured = true
  functions = {
    tebra_debug  = { uptime_check_id = "check-a", reserved_concurrency = 10 }
    patient_sync = {}
  }
}

run "the_workbook_tiers_and_thresholds" {
  command = plan

  assert {
    condition     = local.burns["request_availability_fast"].long == "1h" && local.burns["request_availability_fast"].short == "5m" && local.burns["request_availability_fast"].threshold == "0.0144"
    error_message = "fast: 14.4 x budget over 1h and 5m"
  }
  assert {
    condition     = local.burns["request_availability_slow"].long == "6h" && local.burns["request_availability_slow"].short == "30m" && local.burns["request_availability_slow"].threshold == "0.006"
    error_message = "slow: 6 x budget over 6h and 30m"
  }
  assert {
    condition     = local.burns["redis_availability_ticket"].long == "3d" && local.burns["redis_availability_ticket"].short == "6h" && !local.burns["redis_availability_ticket"].page
    error_message = "ticket: 1 x budget over 3d and 6h, not a page"
  }
  assert {
    condition     = local.burns["request_latency_fast"].threshold == "0.144" && local.burns["request_latency_fast"].page
    error_message = "the request-latency SLO pages with the fast tier's factor on the fast tier's windows"
  }
  assert {
    condition     = !local.burns["redis_latency_fast"].page && !local.burns["redis_latency_slow"].page
    error_message = "Redis latency is a cause: it never pages"
  }
}

run "one_page_per_environment" {
  command = plan

  assert {
    condition     = length([for k, a in local.gcp_alerts : k if a.route == "page" && a.tier == "page"]) == 1
    error_message = "without Memorystore, the SLO page is the only GCP alert that pages"
  }
  assert {
    condition     = length(local.aws_page_children) == 2 * 4 * 2
    error_message = "the AWS page combines 2 functions x 4 paging SLOs x 2 paging tiers"
  }
  assert {
    condition     = strcontains(local.gcp_alerts["slo_page"].query, "check_id=\"check-a\"")
    error_message = "the page includes the probe of every function with an uptime check"
  }
}

run "request_slos_read_probe_free_counts" {
  command = plan

  assert {
    condition     = alltrue([for k in ["request_availability", "request_latency"] : alltrue([for m in concat(local.slos[k].bad, local.slos[k].total) : startswith(m, "http_user_")])])
    error_message = "the request SLOs read the http_user_* counts, which leave the probe routes out"
  }
  assert {
    condition     = contains(local.slos["redis_availability"].bad, "redis_circuit_rejections") && contains(local.slos["redis_availability"].total, "redis_circuit_rejections")
    error_message = "breaker rejections are bad events of the Redis SLI"
  }
}

run "a_bare_memorystore_id_becomes_the_full_name" {
  command = plan

  variables {
    memorystore_project   = "demo-project-123"
    memorystore_region    = "us-central1"
    memorystore_instances = ["redis-main", "projects/other-project-1/locations/europe-west1/instances/redis-b"]
  }

  assert {
    condition = local.memorystore_paths == [
      "projects/demo-project-123/locations/us-central1/instances/redis-main",
      "projects/other-project-1/locations/europe-west1/instances/redis-b",
    ]
    error_message = "bare ids are completed, full names kept"
  }
  assert {
    condition     = strcontains(local.gcp_alerts["redis_memory"].query, "instance_id=~\"projects/demo-project-123/locations/us-central1/instances/redis-main|projects/other-project-1/locations/europe-west1/instances/redis-b\"")
    error_message = "the Memorystore queries compare the full names"
  }
}

run "a_bare_memorystore_id_without_region_is_refused" {
  command = plan

  variables {
    memorystore_instances = ["redis-main"]
  }

  expect_failures = [var.memorystore_instances]
}

run "production_without_a_pager_is_refused" {
  command = plan

  variables {
    pager_configured = false
  }

  expect_failures = [var.pager_configured]
}

run "staging_may_page_by_email" {
  command = plan

  variables {
    environment      = "staging"
    pager_configured = false
  }

  assert {
    condition     = local.gcp_alerts["slo_page"].route == "page"
    error_message = "staging still has a page route"
  }
}

run "windows_longer_than_cloudwatch_allows_are_refused" {
  command = plan

  variables {
    burn_rate_tiers = {
      fast = { long_window_seconds = 691200, short_window_seconds = 300, factor = 14.4, page = true }
    }
  }

  expect_failures = [var.burn_rate_tiers]
}
