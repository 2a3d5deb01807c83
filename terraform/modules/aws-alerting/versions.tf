terraform {
  required_version = ">= 1.9.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.80, < 7.0"
      # Route 53 health-check metrics exist only in us-east-1: the probe
      # alarms and their topic live there.
      configuration_aliases = [aws.us_east_1]
    }
  }
}
