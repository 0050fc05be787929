# Identical agents in an autoscaling group behind the load balancer. An
# agent keeps nothing on the instance, so instances come and go freely:
# instance refresh replaces them for upgrades, and the terminating lifecycle
# hook gives each the time to drain.

locals {
  asg_name  = "${var.name}-agents"
  hook_name = "drain"

  store_url = "s3://${local.bucket_name}${var.bucket_prefix_path == "" ? "" : "/${var.bucket_prefix_path}"}?region=${data.aws_region.current.region}"

  # systemd gives the agent its drain, then kills it; the hook waits for
  # both, and the deregistration delay covers the drain too (network.tf).
  stop_timeout_seconds = var.drain_seconds + 15
  hook_timeout_seconds = var.drain_seconds + 60

  user_data = templatefile("${path.module}/templates/user_data.sh.tftpl", {
    agent_url            = var.agent_url
    agent_sha256         = var.agent_sha256
    kafka_port           = var.kafka_port
    http_port            = var.http_port
    store_url            = local.store_url
    advertise_mode       = var.advertise_mode
    lb_dns_name          = aws_lb.kafka.dns_name
    drain_seconds        = var.drain_seconds
    stop_timeout_seconds = local.stop_timeout_seconds
    extra_args           = concat(local.security_args, var.agent_args)
    security_secret_arn  = var.security_secret_arn
    region               = data.aws_region.current.region
    asg_name             = local.asg_name
    hook_name            = local.hook_name
  })
}

# The latest Amazon Linux 2023, unless ami_id pins one. Unpinned, an apply
# after a new AL2023 release makes a new launch template version, which
# instance refresh rolls through the fleet: pin ami_id to roll only when
# you choose.
data "aws_ssm_parameter" "al2023" {
  count = var.ami_id == "" ? 1 : 0
  name  = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-${var.architecture}"
}

resource "aws_launch_template" "agents" {
  name_prefix            = "${var.name}-agents-"
  image_id               = var.ami_id != "" ? var.ami_id : data.aws_ssm_parameter.al2023[0].value
  instance_type          = var.instance_type
  vpc_security_group_ids = [aws_security_group.agents.id]
  user_data              = base64encode(local.user_data)
  update_default_version = true

  iam_instance_profile {
    arn = aws_iam_instance_profile.agent.arn
  }

  # IMDSv2 only; the agent reads its zone and address from it.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(var.tags, { Name = "${var.name}-agent" })
  }

  tags = var.tags
}

resource "aws_autoscaling_group" "agents" {
  name                = local.asg_name
  vpc_zone_identifier = var.subnet_ids
  min_size            = var.min_size
  max_size            = var.max_size
  target_group_arns   = [aws_lb_target_group.kafka.arn]
  # The group replaces instances EC2 finds broken, not those the load
  # balancer finds unready: /readyz is false while an agent replays the
  # metadata log or cannot reach the bucket, and a bucket outage would make
  # every agent unready at once. A crashed agent is restarted by systemd.
  health_check_type         = "EC2"
  health_check_grace_period = 300
  default_instance_warmup   = 60

  launch_template {
    id      = aws_launch_template.agents.id
    version = aws_launch_template.agents.latest_version
  }

  # A new launch template version (a new agent_url, say) replaces the
  # agents a few at a time, launching each new one before an old one is
  # terminated (never below the group's size).
  instance_refresh {
    strategy = "Rolling"
    preferences {
      min_healthy_percentage = 100
      max_healthy_percentage = 200
      instance_warmup        = 60
    }
  }

  initial_lifecycle_hook {
    name                 = local.hook_name
    lifecycle_transition = "autoscaling:EC2_INSTANCE_TERMINATING"
    heartbeat_timeout    = local.hook_timeout_seconds
    default_result       = "CONTINUE"
  }

  dynamic "tag" {
    for_each = merge(var.tags, { Name = "${var.name}-agent" })
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }

  lifecycle {
    ignore_changes = [desired_capacity] # the scaling policy owns it
  }

  # Agents need their policy from their first boot to their last drain:
  # created before the group, destroyed after it.
  depends_on = [aws_iam_role_policy.agent]
}

resource "aws_autoscaling_policy" "cpu" {
  name                   = "${var.name}-cpu"
  autoscaling_group_name = aws_autoscaling_group.agents.name
  policy_type            = "TargetTrackingScaling"

  target_tracking_configuration {
    predefined_metric_specification {
      predefined_metric_type = "ASGAverageCPUUtilization"
    }
    target_value = var.cpu_target
  }
}

locals {
  # The security flags; the certificate files are written at boot from
  # var.security_secret_arn (templates/user_data.sh.tftpl), which the agent
  # checks for: a flag naming a file the secret did not hold would stop it.
  security_args = concat(
    length(var.sasl_mechanisms) == 0 ? [] : ["--sasl-mechanisms=${join(",", var.sasl_mechanisms)}"],
    var.authorizer == "none" ? [] : ["--authorizer=${var.authorizer}"],
    length(var.super_users) == 0 ? [] : ["--super-users=${join(";", var.super_users)}"],
  )
}
