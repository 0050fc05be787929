# The agents' role: exactly the S3 calls the agent makes (pkg/objstore/s3.go:
# GetObject, ranged or whole, and HeadObject; PutObject, conditional for the
# metadata log; DeleteObject; ListObjectsV2), and completing the terminating
# lifecycle hook once it has drained; with security_secret_arn, reading
# that one secret at boot. The agent writes every object in one
# PutObject, never a multipart upload.

data "aws_caller_identity" "current" {}

locals {
  # The group's ARN from its name, so that the policy, which the agents
  # need from their first boot, can be created before the group.
  asg_arn = "arn:${data.aws_partition.current.partition}:autoscaling:${data.aws_region.current.region}:${data.aws_caller_identity.current.account_id}:autoScalingGroup:*:autoScalingGroupName/${local.asg_name}"

  object_prefix = var.bucket_prefix_path == "" ? "" : "${var.bucket_prefix_path}/"

  s3_object_actions = ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]
  s3_bucket_actions = ["s3:ListBucket"]
  kms_actions       = ["kms:Decrypt", "kms:GenerateDataKey"]

  agent_policy = {
    Version = "2012-10-17"
    Statement = concat([
      {
        Sid      = "Objects"
        Effect   = "Allow"
        Action   = local.s3_object_actions
        Resource = ["${local.bucket_arn}/${local.object_prefix}*"]
      },
      {
        Sid      = "List"
        Effect   = "Allow"
        Action   = local.s3_bucket_actions
        Resource = [local.bucket_arn]
      },
      {
        Sid      = "Drain"
        Effect   = "Allow"
        Action   = ["autoscaling:CompleteLifecycleAction"]
        Resource = [local.asg_arn]
      },
      ], var.kms_key_arn == "" ? [] : [{
        Sid      = "Encryption"
        Effect   = "Allow"
        Action   = local.kms_actions
        Resource = [var.kms_key_arn]
        }], var.security_secret_arn == "" ? [] : [{
        Sid      = "SecuritySecret"
        Effect   = "Allow"
        Action   = ["secretsmanager:GetSecretValue"]
        Resource = [var.security_secret_arn]
    }])
  }
}

resource "aws_iam_role" "agent" {
  name_prefix = "${var.name}-agent-"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ec2.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
  tags = var.tags
}

resource "aws_iam_role_policy" "agent" {
  name   = "barge-agent"
  role   = aws_iam_role.agent.id
  policy = jsonencode(local.agent_policy)
}

resource "aws_iam_instance_profile" "agent" {
  name_prefix = "${var.name}-agent-"
  role        = aws_iam_role.agent.name
  tags        = var.tags
}
