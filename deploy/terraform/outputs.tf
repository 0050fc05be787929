output "bootstrap_servers" {
  description = "What Kafka clients' bootstrap.servers should be: the load balancer's DNS name and the Kafka port."
  value       = "${aws_lb.kafka.dns_name}:${var.kafka_port}"
}

output "lb_dns_name" {
  description = "The network load balancer's DNS name."
  value       = aws_lb.kafka.dns_name
}

output "lb_zone_id" {
  description = "The load balancer's hosted zone, for a Route 53 alias record."
  value       = aws_lb.kafka.zone_id
}

output "bucket_name" {
  description = "The bucket holding the cluster's data and metadata log."
  value       = local.bucket_name
}

output "bucket_arn" {
  description = "The bucket's ARN."
  value       = local.bucket_arn
}

output "store_url" {
  description = "The agents' --store URL."
  value       = local.store_url
}

output "role_arn" {
  description = "The agents' IAM role."
  value       = aws_iam_role.agent.arn
}

output "autoscaling_group_name" {
  description = "The agents' autoscaling group."
  value       = aws_autoscaling_group.agents.name
}

output "agents_security_group_id" {
  description = "The agents' security group (allow it in other groups to let agents reach them)."
  value       = aws_security_group.agents.id
}

output "target_group_arn" {
  description = "The load balancer's target group of agents."
  value       = aws_lb_target_group.kafka.arn
}
