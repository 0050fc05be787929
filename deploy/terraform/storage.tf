# The bucket (modules/storage, which localstack/ applies on its own), or an
# existing one.

module "storage" {
  source = "./modules/storage"
  count  = var.create_bucket ? 1 : 0

  name                            = var.name
  bucket_name                     = var.bucket_name
  force_destroy                   = var.force_destroy
  kms_key_arn                     = var.kms_key_arn
  abort_incomplete_multipart_days = var.abort_incomplete_multipart_days
  tags                            = var.tags
}

locals {
  bucket_name = var.create_bucket ? module.storage[0].bucket_name : var.bucket_name
  bucket_arn  = "arn:${data.aws_partition.current.partition}:s3:::${local.bucket_name}"
}

data "aws_partition" "current" {}

data "aws_region" "current" {}
