# terraform test with a mocked AWS provider: what the module would create,
# checked without an AWS account (make test runs it offline).

mock_provider "aws" {
  mock_resource "aws_lb" {
    defaults = {
      arn      = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/net/barge/0123456789abcdef"
      dns_name = "barge-0123456789abcdef.elb.us-east-1.amazonaws.com"
      zone_id  = "Z26RNL4JYFTOTI"
    }
  }
  mock_resource "aws_s3_bucket" {
    defaults = {
      id  = "barge-test-bucket"
      arn = "arn:aws:s3:::barge-test-bucket"
    }
  }
  mock_resource "aws_iam_instance_profile" {
    defaults = {
      arn = "arn:aws:iam::123456789012:instance-profile/barge-agent"
    }
  }
  mock_data "aws_region" {
    defaults = {
      region = "us-east-1"
    }
  }
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }
  mock_data "aws_partition" {
    defaults = {
      partition = "aws"
    }
  }
  mock_data "aws_ssm_parameter" {
    defaults = {
      value = "ami-0123456789abcdef0"
    }
  }
}

variables {
  vpc_id              = "vpc-0123456789abcdef0"
  subnet_ids          = ["subnet-0000000000000000a", "subnet-0000000000000000b", "subnet-0000000000000000c"]
  allowed_cidr_blocks = ["10.0.0.0/8"]
  agent_url           = "https://downloads.example.com/barge-agent-arm64"
  agent_sha256        = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
}

run "health_check_asks_readyz_on_the_http_port" {
  command = plan

  assert {
    condition     = aws_lb_target_group.kafka.health_check[0].protocol == "HTTP" && aws_lb_target_group.kafka.health_check[0].path == "/readyz"
    error_message = "the target group's health check must be HTTP GET /readyz"
  }
  assert {
    condition     = aws_lb_target_group.kafka.health_check[0].port == "9644"
    error_message = "the health check must ask the agent's HTTP port, not the Kafka port"
  }
  assert {
    condition     = aws_lb_target_group.kafka.protocol == "TCP" && aws_lb_target_group.kafka.port == 9092 && aws_lb.kafka.load_balancer_type == "network"
    error_message = "Kafka goes through a network load balancer's TCP target group on 9092"
  }
  assert {
    condition     = aws_lb_listener.kafka.tcp_idle_timeout_seconds > 540
    error_message = "the listener's idle timeout must exceed Kafka clients' connections.max.idle.ms (9 minutes)"
  }
}

run "drain_fits_deregistration_systemd_and_the_hook" {
  command = apply # the user data names the load balancer, known only once it exists

  variables {
    drain_seconds = 45
  }

  assert {
    condition     = tonumber(aws_lb_target_group.kafka.deregistration_delay) < 45 && !aws_lb_target_group.kafka.connection_termination
    error_message = "AWS holds an instance in the lifecycle hook only after the deregistration delay, so the delay must be short and must not cut the connections the agent drains later"
  }
  assert {
    condition     = one(aws_autoscaling_group.agents.initial_lifecycle_hook).lifecycle_transition == "autoscaling:EC2_INSTANCE_TERMINATING"
    error_message = "the lifecycle hook must hold terminating instances"
  }
  assert {
    condition     = one(aws_autoscaling_group.agents.initial_lifecycle_hook).heartbeat_timeout > 45 + 15 && one(aws_autoscaling_group.agents.initial_lifecycle_hook).default_result == "CONTINUE"
    error_message = "the terminating hook must outlast the drain and systemd's stop timeout, then continue"
  }
  assert {
    condition     = strcontains(base64decode(aws_launch_template.agents.user_data), "--drain-timeout=45s") && strcontains(base64decode(aws_launch_template.agents.user_data), "TimeoutStopSec=60")
    error_message = "the agent's --drain-timeout and systemd's TimeoutStopSec must follow drain_seconds"
  }
}

run "shared_mode_advertises_the_load_balancer" {
  command = apply

  assert {
    condition     = strcontains(base64decode(aws_launch_template.agents.user_data), "--advertise=barge-0123456789abcdef.elb.us-east-1.amazonaws.com:9092 --peer-advertise=auto")
    error_message = "in shared mode every agent must advertise the load balancer's DNS name and its own peer address"
  }
  assert {
    condition     = strcontains(base64decode(aws_launch_template.agents.user_data), "--store=s3://barge-test-bucket?region=us-east-1")
    error_message = "the agents must store in the module's bucket, in its region"
  }
  assert {
    condition     = output.bootstrap_servers == "barge-0123456789abcdef.elb.us-east-1.amazonaws.com:9092"
    error_message = "bootstrap_servers must be the load balancer's DNS name and the Kafka port"
  }
}

run "direct_mode_advertises_the_instance" {
  command = apply

  variables {
    advertise_mode = "direct"
  }

  assert {
    condition     = strcontains(base64decode(aws_launch_template.agents.user_data), "--advertise=auto") && !strcontains(base64decode(aws_launch_template.agents.user_data), "--peer-advertise")
    error_message = "in direct mode each agent advertises its own private address (read from instance metadata)"
  }
}

run "launch_template_requires_imdsv2" {
  command = plan

  assert {
    condition     = aws_launch_template.agents.metadata_options[0].http_tokens == "required"
    error_message = "the launch template must require IMDSv2 tokens"
  }
  assert {
    condition     = aws_launch_template.agents.image_id == "ami-0123456789abcdef0"
    error_message = "without ami_id the agents run the latest Amazon Linux 2023"
  }
}

run "policy_has_exactly_the_agents_s3_actions" {
  command = apply

  assert {
    condition = jsondecode(aws_iam_role_policy.agent.policy).Statement == [
      { Sid = "Objects", Effect = "Allow", Action = ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"], Resource = ["arn:aws:s3:::barge-test-bucket/*"] },
      { Sid = "List", Effect = "Allow", Action = ["s3:ListBucket"], Resource = ["arn:aws:s3:::barge-test-bucket"] },
      { Sid = "Drain", Effect = "Allow", Action = ["autoscaling:CompleteLifecycleAction"], Resource = ["arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:*:autoScalingGroupName/barge-agents"] },
    ]
    error_message = "the agents' policy must grant exactly GetObject, PutObject, DeleteObject on the objects, ListBucket on the bucket, and completing the drain hook"
  }
  assert {
    condition     = aws_autoscaling_group.agents.name == "barge-agents"
    error_message = "the policy names the group by its name: the group must have that name"
  }
}

run "a_prefix_and_a_kms_key_narrow_and_extend_the_policy" {
  command = apply

  variables {
    bucket_prefix_path = "clusters/prod"
    kms_key_arn        = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
  }

  assert {
    condition     = jsondecode(aws_iam_role_policy.agent.policy).Statement[0].Resource == ["arn:aws:s3:::barge-test-bucket/clusters/prod/*"]
    error_message = "with a prefix the agents may touch only the objects under it"
  }
  assert {
    condition     = jsondecode(aws_iam_role_policy.agent.policy).Statement[1].Resource == ["arn:aws:s3:::barge-test-bucket"]
    error_message = "listing stays on the bucket (a missing metadata-log slot must read as 404, not 403)"
  }
  assert {
    condition = jsondecode(aws_iam_role_policy.agent.policy).Statement[3] == {
      Sid      = "Encryption", Effect = "Allow", Action = ["kms:Decrypt", "kms:GenerateDataKey"],
      Resource = ["arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"]
    }
    error_message = "with a KMS key the agents may encrypt and decrypt with that key only"
  }
  assert {
    condition     = strcontains(base64decode(aws_launch_template.agents.user_data), "--store=s3://barge-test-bucket/clusters/prod?region=us-east-1")
    error_message = "the agents' store URL must carry the prefix"
  }
}

run "an_existing_bucket" {
  command = apply

  variables {
    create_bucket = false
    bucket_name   = "my-existing-bucket"
  }

  assert {
    condition     = length(module.storage) == 0 && output.bucket_name == "my-existing-bucket"
    error_message = "with create_bucket = false the module creates no bucket and uses bucket_name"
  }
  assert {
    condition     = output.store_url == "s3://my-existing-bucket?region=us-east-1"
    error_message = "the store URL must name the existing bucket"
  }
}

run "scaling_tracks_cpu" {
  command = plan

  assert {
    condition     = aws_autoscaling_policy.cpu.policy_type == "TargetTrackingScaling" && aws_autoscaling_policy.cpu.target_tracking_configuration[0].target_value == 60
    error_message = "the autoscaling group must track 60 % average CPU"
  }
  assert {
    condition     = aws_autoscaling_policy.cpu.target_tracking_configuration[0].predefined_metric_specification[0].predefined_metric_type == "ASGAverageCPUUtilization"
    error_message = "the scaling metric must be the group's average CPU"
  }
  assert {
    condition     = one(aws_autoscaling_group.agents.instance_refresh).strategy == "Rolling"
    error_message = "upgrades must roll through instance refresh"
  }
  assert {
    condition = (one(one(aws_autoscaling_group.agents.instance_refresh).preferences).min_healthy_percentage == 100 &&
    one(one(aws_autoscaling_group.agents.instance_refresh).preferences).max_healthy_percentage == 200)
    error_message = "instance refresh must launch each new agent before it terminates an old one"
  }
  assert {
    condition     = aws_autoscaling_group.agents.health_check_type == "EC2"
    error_message = "the group must not replace agents for being unready (a bucket outage would replace the whole fleet)"
  }
}

run "security_groups_let_clients_the_load_balancer_and_peers_in" {
  command = apply

  assert {
    condition     = aws_vpc_security_group_ingress_rule.agents_peers.referenced_security_group_id == aws_security_group.agents.id && aws_vpc_security_group_ingress_rule.agents_peers.from_port == 9092
    error_message = "agents must reach each other on the Kafka port (forwarded group requests, liveness probes)"
  }
  assert {
    condition     = toset([for r in aws_vpc_security_group_ingress_rule.agents_from_lb : r.from_port]) == toset([9092, 9644]) && alltrue([for r in aws_vpc_security_group_ingress_rule.agents_from_lb : r.referenced_security_group_id == aws_security_group.lb.id])
    error_message = "the load balancer must reach the agents' Kafka port and their health-check port"
  }
  assert {
    condition     = [for r in aws_vpc_security_group_ingress_rule.lb_kafka_cidr : r.cidr_ipv4] == ["10.0.0.0/8"] && [for r in aws_vpc_security_group_ingress_rule.agents_kafka_cidr : r.cidr_ipv4] == ["10.0.0.0/8"]
    error_message = "clients' networks must reach the load balancer and, since it keeps their addresses, the agents"
  }
  assert {
    condition     = length(aws_lb.kafka.security_groups) == 1 && contains(aws_lb.kafka.security_groups, aws_security_group.lb.id)
    error_message = "the load balancer must have its security group from its creation"
  }
}

run "a_pinned_ami_reads_no_parameter" {
  command = plan

  variables {
    ami_id = "ami-0fedcba9876543210"
  }

  assert {
    condition     = aws_launch_template.agents.image_id == "ami-0fedcba9876543210" && length(data.aws_ssm_parameter.al2023) == 0
    error_message = "a pinned AMI must be used as given, without reading the latest one"
  }
}

run "rejects_no_client_network" {
  command = plan
  variables {
    allowed_cidr_blocks = []
  }
  expect_failures = [var.allowed_security_group_ids]
}

run "rejects_an_argument_systemd_would_expand" {
  command = plan
  variables {
    agent_args = ["--store=s3://b?x=%i"]
  }
  expect_failures = [var.agent_args]
}

run "rejects_one_subnet" {
  command = plan
  variables {
    subnet_ids = ["subnet-0000000000000000a"]
  }
  expect_failures = [var.subnet_ids]
}

run "rejects_an_unknown_mode" {
  command = plan
  variables {
    advertise_mode = "both"
  }
  expect_failures = [var.advertise_mode]
}

run "rejects_an_idle_timeout_below_kafkas" {
  command = plan
  variables {
    tcp_idle_timeout_seconds = 350
  }
  expect_failures = [var.tcp_idle_timeout_seconds]
}

run "rejects_max_below_min" {
  command = plan
  variables {
    min_size = 4
    max_size = 3
  }
  expect_failures = [var.max_size]
}

run "rejects_a_bad_checksum" {
  command = plan
  variables {
    agent_sha256 = "not-a-sha"
  }
  expect_failures = [var.agent_sha256]
}

run "rejects_an_argument_with_a_space" {
  command = plan
  variables {
    agent_args = ["--flush-interval=100ms; rm -rf /"]
  }
  expect_failures = [var.agent_args]
}

run "security_flags_and_the_secret" {
  command = apply

  variables {
    security_secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:barge-security-AbCdEf"
    sasl_mechanisms     = ["SCRAM-SHA-512", "PLAIN"]
    authorizer          = "acl"
    super_users         = ["User:ops", "User:CN=admin"]
  }

  assert {
    condition     = strcontains(base64decode(aws_launch_template.agents.user_data), "--sasl-mechanisms=SCRAM-SHA-512,PLAIN --authorizer=acl --super-users=User:ops;User:CN=admin")
    error_message = "the security variables must become the agent's --sasl-mechanisms, --authorizer and --super-users"
  }
  assert {
    condition     = strcontains(base64decode(aws_launch_template.agents.user_data), "--secret-id 'arn:aws:secretsmanager:us-east-1:123456789012:secret:barge-security-AbCdEf'") && strcontains(base64decode(aws_launch_template.agents.user_data), "EnvironmentFile=/etc/barge/agent.env")
    error_message = "the agents must read the security secret at boot and pass the bootstrap user through the environment"
  }
  assert {
    condition     = strcontains(base64decode(aws_launch_template.agents.user_data), "--tls-peer-server-name=barge-0123456789abcdef.elb.us-east-1.amazonaws.com")
    error_message = "in shared mode agents must check each other's certificate for the load balancer's name, which it is issued for"
  }
  assert {
    condition = contains(jsondecode(aws_iam_role_policy.agent.policy).Statement,
    { Sid = "SecuritySecret", Effect = "Allow", Action = ["secretsmanager:GetSecretValue"], Resource = ["arn:aws:secretsmanager:us-east-1:123456789012:secret:barge-security-AbCdEf"] })
    error_message = "the agents' role must be able to read exactly the security secret"
  }
}

run "no_security_secret_reads_none" {
  command = apply

  assert {
    condition     = !strcontains(base64decode(aws_launch_template.agents.user_data), "secretsmanager") && !strcontains(base64decode(aws_launch_template.agents.user_data), "--sasl-mechanisms")
    error_message = "without security variables the agents read no secret and run without SASL"
  }
}
