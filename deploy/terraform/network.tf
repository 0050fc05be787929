# Clients reach the agents through one network load balancer (TCP). Its
# health check asks each agent's /readyz, which turns false the moment the
# agent starts draining (or while it cannot serve), so the load balancer
# sends it no new connections.

resource "aws_security_group" "lb" {
  name_prefix = "${var.name}-lb-"
  description = "Barge load balancer: clients to the Kafka port"
  vpc_id      = var.vpc_id
  tags        = var.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_security_group" "agents" {
  name_prefix = "${var.name}-agents-"
  description = "Barge agents: Kafka from clients, the load balancer and each other; health checks from the load balancer"
  vpc_id      = var.vpc_id
  tags        = var.tags

  lifecycle {
    create_before_destroy = true
  }
}

locals {
  # Who may reach the Kafka port, on the load balancer and (since it keeps
  # client addresses) on the agents.
  client_cidrs  = toset(var.allowed_cidr_blocks)
  client_groups = toset(var.allowed_security_group_ids)
}

resource "aws_vpc_security_group_ingress_rule" "lb_kafka_cidr" {
  for_each = local.client_cidrs

  security_group_id = aws_security_group.lb.id
  description       = "Kafka clients"
  ip_protocol       = "tcp"
  from_port         = var.kafka_port
  to_port           = var.kafka_port
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "lb_kafka_group" {
  for_each = local.client_groups

  security_group_id            = aws_security_group.lb.id
  description                  = "Kafka clients"
  ip_protocol                  = "tcp"
  from_port                    = var.kafka_port
  to_port                      = var.kafka_port
  referenced_security_group_id = each.value
}

resource "aws_vpc_security_group_egress_rule" "lb_to_agents" {
  for_each = toset([tostring(var.kafka_port), tostring(var.http_port)])

  security_group_id            = aws_security_group.lb.id
  description                  = "Kafka traffic and health checks to the agents"
  ip_protocol                  = "tcp"
  from_port                    = tonumber(each.value)
  to_port                      = tonumber(each.value)
  referenced_security_group_id = aws_security_group.agents.id
}

resource "aws_vpc_security_group_ingress_rule" "agents_from_lb" {
  for_each = toset([tostring(var.kafka_port), tostring(var.http_port)])

  security_group_id            = aws_security_group.agents.id
  description                  = "Kafka traffic and health checks from the load balancer"
  ip_protocol                  = "tcp"
  from_port                    = tonumber(each.value)
  to_port                      = tonumber(each.value)
  referenced_security_group_id = aws_security_group.lb.id
}

resource "aws_vpc_security_group_ingress_rule" "agents_peers" {
  security_group_id            = aws_security_group.agents.id
  description                  = "Agents to each other: the metadata log sequencer, forwarded group requests and liveness probes (peer address)"
  ip_protocol                  = "tcp"
  from_port                    = var.kafka_port
  to_port                      = var.kafka_port
  referenced_security_group_id = aws_security_group.agents.id
}

resource "aws_vpc_security_group_ingress_rule" "agents_kafka_cidr" {
  for_each = local.client_cidrs

  security_group_id = aws_security_group.agents.id
  description       = "Kafka clients (direct mode, and client addresses the load balancer preserves)"
  ip_protocol       = "tcp"
  from_port         = var.kafka_port
  to_port           = var.kafka_port
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "agents_kafka_group" {
  for_each = local.client_groups

  security_group_id            = aws_security_group.agents.id
  description                  = "Kafka clients (direct mode, and client addresses the load balancer preserves)"
  ip_protocol                  = "tcp"
  from_port                    = var.kafka_port
  to_port                      = var.kafka_port
  referenced_security_group_id = each.value
}

resource "aws_vpc_security_group_egress_rule" "agents_all" {
  security_group_id = aws_security_group.agents.id
  description       = "S3, the agent binary's download, and each other"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_lb" "kafka" {
  name_prefix                      = substr(var.name, 0, 6)
  load_balancer_type               = "network"
  internal                         = var.internal
  subnets                          = length(var.lb_subnet_ids) > 0 ? var.lb_subnet_ids : var.subnet_ids
  security_groups                  = [aws_security_group.lb.id]
  enable_cross_zone_load_balancing = var.cross_zone_load_balancing
  tags                             = var.tags
}

resource "aws_lb_target_group" "kafka" {
  name_prefix = substr(var.name, 0, 6)
  port        = var.kafka_port
  protocol    = "TCP"
  vpc_id      = var.vpc_id
  target_type = "instance"

  # On scale-in AWS deregisters the instance first, waits out this delay,
  # and only then holds it in the terminating lifecycle hook, where
  # barge-drain stops the agent. So the delay is short and existing
  # connections are not cut when it ends: the load balancer sends no new
  # ones, the old ones carry on until the agent, draining, answers what it
  # holds and closes them, and their clients reconnect to the others.
  deregistration_delay   = 10
  connection_termination = false
  preserve_client_ip     = var.preserve_client_ip

  health_check {
    protocol            = "HTTP"
    port                = tostring(var.http_port)
    path                = "/readyz"
    matcher             = "200"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }

  tags = var.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_lb_listener" "kafka" {
  load_balancer_arn        = aws_lb.kafka.arn
  port                     = var.kafka_port
  protocol                 = "TCP"
  tcp_idle_timeout_seconds = var.tcp_idle_timeout_seconds

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.kafka.arn
  }

  tags = var.tags
}
