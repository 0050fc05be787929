# A Barge fleet in direct mode: see the README's Deploy section.

terraform {
  required_version = ">= 1.9"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.0"
    }
  }
}

provider "aws" {
  region = var.region
}

variable "region" {
  description = "The AWS region."
  type        = string
}

variable "vpc_id" {
  description = "The VPC to run in."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets in at least two availability zones."
  type        = list(string)
}

variable "client_cidr_blocks" {
  description = "Networks whose Kafka clients may connect."
  type        = list(string)
}

variable "agent_url" {
  description = "HTTPS URL of the barge-agent binary (arm64)."
  type        = string
}

variable "agent_sha256" {
  description = "SHA-256 of the binary at agent_url."
  type        = string
}

module "barge" {
  source = "../.."

  name                = "barge-direct"
  vpc_id              = var.vpc_id
  subnet_ids          = var.subnet_ids
  advertise_mode      = "direct" # clients must reach every instance too
  allowed_cidr_blocks = var.client_cidr_blocks
  agent_url           = var.agent_url
  agent_sha256        = var.agent_sha256
  min_size            = 3
  max_size            = 12
}

output "bootstrap_servers" {
  description = "Kafka clients' bootstrap.servers."
  value       = module.barge.bootstrap_servers
}

output "bucket_name" {
  description = "The cluster's bucket."
  value       = module.barge.bucket_name
}
