# The bucket, as deploy/terraform creates it on AWS, created in LocalStack
# (S3 only: LocalStack's community edition has no load balancers or
# autoscaling). See ../README.md.

terraform {
  required_version = ">= 1.9"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.0"
    }
  }
}

variable "endpoint" {
  description = "LocalStack's edge endpoint, as this machine reaches it."
  type        = string
  default     = "http://localhost:4566"
}

variable "region" {
  description = "The region LocalStack pretends to be."
  type        = string
  default     = "us-east-1"
}

variable "bucket_name" {
  description = "The bucket the agent stores in."
  type        = string
  default     = "barge"
}

provider "aws" {
  region                      = var.region
  access_key                  = "test"
  secret_key                  = "test"
  s3_use_path_style           = true
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_requesting_account_id  = true

  endpoints {
    s3 = var.endpoint
  }
}

module "storage" {
  source = "../../deploy/terraform/modules/storage"

  bucket_name   = var.bucket_name
  force_destroy = true # a local experiment: destroy may empty it
}

output "store_url" {
  description = "The agent's --store URL for this bucket, from inside the compose network."
  value       = "s3://${module.storage.bucket_name}?endpoint=http://localstack:4566&region=${var.region}&path_style=true"
}
