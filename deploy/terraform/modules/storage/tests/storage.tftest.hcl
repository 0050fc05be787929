# terraform test of the bucket module with a mocked AWS provider.

mock_provider "aws" {
  mock_resource "aws_s3_bucket" {
    defaults = {
      id  = "barge-test-bucket"
      arn = "arn:aws:s3:::barge-test-bucket"
    }
  }
}

run "bucket_is_private_tls_only_and_expires_nothing" {
  command = apply

  assert {
    condition = (aws_s3_bucket_public_access_block.data.block_public_acls && aws_s3_bucket_public_access_block.data.block_public_policy &&
    aws_s3_bucket_public_access_block.data.ignore_public_acls && aws_s3_bucket_public_access_block.data.restrict_public_buckets)
    error_message = "public access must be blocked"
  }
  assert {
    condition     = one(aws_s3_bucket_ownership_controls.data.rule).object_ownership == "BucketOwnerEnforced"
    error_message = "the bucket owner must own every object (ACLs off)"
  }
  assert {
    condition     = one(one(aws_s3_bucket_server_side_encryption_configuration.data.rule).apply_server_side_encryption_by_default).sse_algorithm == "AES256"
    error_message = "the bucket must encrypt by default"
  }
  assert {
    condition     = jsondecode(aws_s3_bucket_policy.data.policy).Statement[0].Effect == "Deny" && jsondecode(aws_s3_bucket_policy.data.policy).Statement[0].Condition.Bool["aws:SecureTransport"] == "false"
    error_message = "the bucket policy must refuse requests without TLS"
  }
  assert {
    condition     = one(aws_s3_bucket_lifecycle_configuration.data.rule).abort_incomplete_multipart_upload[0].days_after_initiation == 2
    error_message = "the lifecycle rule must abort incomplete multipart uploads"
  }
  assert {
    condition     = length(one(aws_s3_bucket_lifecycle_configuration.data.rule).expiration) == 0 && length(aws_s3_bucket_lifecycle_configuration.data.rule) == 1
    error_message = "no lifecycle rule may expire data: the agents delete it themselves"
  }
}

run "a_kms_key_encrypts_with_it" {
  command = plan

  variables {
    kms_key_arn = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
  }

  assert {
    condition     = one(one(aws_s3_bucket_server_side_encryption_configuration.data.rule).apply_server_side_encryption_by_default).sse_algorithm == "aws:kms"
    error_message = "with a KMS key the bucket encrypts with it"
  }
}

run "rejects_a_bad_bucket_name" {
  command = plan
  variables {
    bucket_name = "Not_A_Bucket"
  }
  expect_failures = [var.bucket_name]
}
