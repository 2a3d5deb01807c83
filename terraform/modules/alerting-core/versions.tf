# No provider: this module only computes the alert expressions, thresholds
# and the alert catalogue that gcp-alerting and aws-alerting turn into
# resources. Because it needs no provider, `terraform test` runs it offline
# (make ops-check), and scripts/render-alert-rules.sh renders it into the
# files the contract test and promtool read (terraform/tests/rendered/).
terraform {
  # Variable validations that refer to other variables need 1.9.
  required_version = ">= 1.9.0"
}
