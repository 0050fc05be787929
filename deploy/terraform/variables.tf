variable "name" {
  description = "Name prefix for every resource (the bucket, role, security groups, load balancer and autoscaling group)."
  type        = string
  default     = "barge"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,20}$", var.name))
    error_message = "name must be 1-21 characters of lower-case letters, digits and hyphens, starting with a letter (it prefixes names AWS limits to 32 characters)."
  }
}

variable "vpc_id" {
  description = "The VPC the agents and the load balancer run in."
  type        = string

  validation {
    condition     = startswith(var.vpc_id, "vpc-")
    error_message = "vpc_id must be a VPC id (vpc-...)."
  }
}

variable "subnet_ids" {
  description = "Private subnets, in at least two availability zones, for the agents and the load balancer."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 2 && alltrue([for s in var.subnet_ids : startswith(s, "subnet-")])
    error_message = "subnet_ids must list at least two subnet ids (subnet-...), in different availability zones."
  }
}

variable "advertise_mode" {
  description = "How agents are addressed: \"direct\" (each advertises its own private address; the load balancer only bootstraps, and clients must reach every instance) or \"shared\" (every agent advertises the load balancer's DNS name and forwards group requests to their coordinator; clients need reach only the load balancer)."
  type        = string
  default     = "shared"

  validation {
    condition     = contains(["direct", "shared"], var.advertise_mode)
    error_message = "advertise_mode must be \"direct\" or \"shared\"."
  }
}

variable "allowed_cidr_blocks" {
  description = "Client networks allowed to the Kafka port (on the load balancer, and on the agents: the load balancer keeps client addresses)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.allowed_cidr_blocks : can(cidrnetmask(c))])
    error_message = "allowed_cidr_blocks must be IPv4 CIDR blocks."
  }
}

variable "allowed_security_group_ids" {
  description = "Client security groups allowed to the Kafka port."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.allowed_security_group_ids) + length(var.allowed_cidr_blocks) > 0
    error_message = "name at least one client network: allowed_cidr_blocks or allowed_security_group_ids (otherwise no client can connect)."
  }
}

variable "internal" {
  description = "Whether the network load balancer is internal (no public address). An internet-facing one needs public lb_subnet_ids."
  type        = bool
  default     = true
}

variable "lb_subnet_ids" {
  description = "Subnets for the load balancer, one per zone; empty to use subnet_ids (right for an internal one)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for s in var.lb_subnet_ids : startswith(s, "subnet-")])
    error_message = "lb_subnet_ids must be subnet ids (subnet-...)."
  }
}

variable "cross_zone_load_balancing" {
  description = "Whether the load balancer spreads connections across zones (costs inter-zone traffic; off keeps a client's connection in its zone)."
  type        = bool
  default     = true
}

variable "kafka_port" {
  description = "The Kafka port: the load balancer's listener and each agent's (agents also reach each other on it)."
  type        = number
  default     = 9092

  validation {
    condition     = var.kafka_port >= 1 && var.kafka_port <= 65535 && floor(var.kafka_port) == var.kafka_port
    error_message = "kafka_port must be a TCP port (1-65535)."
  }
}

variable "http_port" {
  description = "The agent's HTTP port (/metrics, /healthz, /readyz), which the load balancer's health check uses."
  type        = number
  default     = 9644

  validation {
    condition     = var.http_port >= 1 && var.http_port <= 65535 && floor(var.http_port) == var.http_port
    error_message = "http_port must be a TCP port (1-65535)."
  }
}

variable "tcp_idle_timeout_seconds" {
  description = "How long the load balancer keeps an idle connection. It must exceed Kafka clients' connections.max.idle.ms (9 minutes by default), or the load balancer cuts connections clients still hold."
  type        = number
  default     = 600

  validation {
    condition     = var.tcp_idle_timeout_seconds > 540 && var.tcp_idle_timeout_seconds <= 6000
    error_message = "tcp_idle_timeout_seconds must be above 540 (Kafka clients' 9-minute idle close) and at most 6000."
  }
}

variable "preserve_client_ip" {
  description = "Whether agents see clients' own addresses (the per-address connection limit then applies per client, not to the load balancer as a whole)."
  type        = bool
  default     = true
}

variable "drain_seconds" {
  description = "How long an agent may take to drain on SIGTERM (--drain-timeout): stop accepting, flush, answer, record its departure. The deregistration delay, the systemd stop timeout and the terminating lifecycle hook are derived from it."
  type        = number
  default     = 30

  validation {
    condition     = var.drain_seconds >= 5 && var.drain_seconds <= 600
    error_message = "drain_seconds must be between 5 and 600."
  }
}

variable "instance_type" {
  description = "EC2 instance type of the agents (network-optimised types fit best: m7gn, m6in, c7gn)."
  type        = string
  default     = "m7g.large"
}

variable "architecture" {
  description = "CPU architecture of instance_type and of the agent binary: \"arm64\" or \"x86_64\"."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.architecture)
    error_message = "architecture must be \"arm64\" or \"x86_64\"."
  }
}

variable "ami_id" {
  description = "AMI of the agents; empty for the latest Amazon Linux 2023 of the architecture (from its public SSM parameter)."
  type        = string
  default     = ""
}

variable "agent_url" {
  description = "HTTPS URL of the barge-agent binary (for the architecture), which each instance downloads at boot."
  type        = string

  validation {
    condition     = startswith(var.agent_url, "https://")
    error_message = "agent_url must be an https:// URL."
  }
}

variable "agent_sha256" {
  description = "SHA-256 of the binary at agent_url; an instance whose download does not match refuses to start the agent."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.agent_sha256))
    error_message = "agent_sha256 must be 64 lower-case hex digits."
  }
}

variable "agent_args" {
  description = "Extra agent flags, e.g. [\"--flush-interval=100ms\"]. Each must be one argument of the form --flag=value (they go on the systemd unit's command line)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.agent_args : can(regex("^--[a-z][a-z0-9-]*(=[^ '\"\\\\%$]*)?$", a))])
    error_message = "agent_args must each be --flag or --flag=value, with no spaces, quotes, backslashes, % or $ (systemd would expand them)."
  }
}

variable "security_secret_arn" {
  description = "ARN of a Secrets Manager secret whose JSON the agents read at boot: sasl_bootstrap_user (\"NAME:PASSWORD\", passed as BARGE_SASL_BOOTSTRAP_USER), tls_cert_pem and tls_key_pem (the listener's certificate and key: TLS, since the load balancer passes TCP through), tls_client_ca_pem (require client certificates). Each key is optional. Empty: none."
  type        = string
  default     = ""

  validation {
    condition     = var.security_secret_arn == "" || can(regex("^arn:[a-z-]+:secretsmanager:", var.security_secret_arn))
    error_message = "security_secret_arn must be a Secrets Manager secret ARN."
  }
}

variable "sasl_mechanisms" {
  description = "SASL mechanisms clients authenticate with (--sasl-mechanisms): any of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512. Empty: no SASL."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.sasl_mechanisms : contains(["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"], m)])
    error_message = "sasl_mechanisms may hold only PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512."
  }
}

variable "authorizer" {
  description = "acl: check every request against the ACLs in the metadata log, denying what none allows (--authorizer acl); none: every client may do everything."
  type        = string
  default     = "none"

  validation {
    condition     = contains(["none", "acl"], var.authorizer)
    error_message = "authorizer must be none or acl."
  }
}

variable "super_users" {
  description = "Principals the authorizer always allows (--super-users), e.g. [\"User:ops\"]. The bootstrap user always is one."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for p in var.super_users : can(regex("^[A-Za-z]+:[^ ;'\"\\\\%$]+$", p))])
    error_message = "super_users must each be Type:name (User:alice), with no spaces, semicolons, quotes, backslashes, % or $."
  }
}

variable "min_size" {
  description = "Fewest agents (at least one per availability zone is a good floor)."
  type        = number
  default     = 3

  validation {
    condition     = var.min_size >= 1
    error_message = "min_size must be at least 1."
  }
}

variable "max_size" {
  description = "Most agents the autoscaling group may run."
  type        = number
  default     = 12

  validation {
    condition     = var.max_size >= var.min_size && var.max_size <= 100
    error_message = "max_size must be at least min_size and at most 100."
  }
}

variable "cpu_target" {
  description = "Average CPU utilisation (percent) the autoscaling group's target tracking holds."
  type        = number
  default     = 60

  validation {
    condition     = var.cpu_target >= 10 && var.cpu_target <= 90
    error_message = "cpu_target must be between 10 and 90 percent."
  }
}

variable "create_bucket" {
  description = "Whether to create the bucket; false uses bucket_name, an existing bucket in the same region."
  type        = bool
  default     = true
}

variable "bucket_name" {
  description = "The bucket's name: for an existing bucket (create_bucket = false), or to name the new one; empty lets AWS name it after var.name."
  type        = string
  default     = ""

  validation {
    condition     = var.bucket_name == "" || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be a valid S3 bucket name (3-63 characters of lower-case letters, digits, dots and hyphens)."
  }
}

variable "bucket_prefix_path" {
  description = "Key prefix inside the bucket for this cluster's objects, so that clusters can share one bucket; empty for the whole bucket."
  type        = string
  default     = ""

  validation {
    condition     = var.bucket_prefix_path == "" || can(regex("^[a-zA-Z0-9][a-zA-Z0-9_./-]*[a-zA-Z0-9]$", var.bucket_prefix_path))
    error_message = "bucket_prefix_path must be empty or a key prefix without leading or trailing slashes."
  }
}

variable "force_destroy" {
  description = "Whether terraform destroy may delete a created bucket that still holds objects (every topic's data)."
  type        = bool
  default     = false
}

variable "kms_key_arn" {
  description = "KMS key for the bucket's default encryption; empty for S3-managed keys (SSE-S3)."
  type        = string
  default     = ""

  validation {
    condition     = var.kms_key_arn == "" || startswith(var.kms_key_arn, "arn:")
    error_message = "kms_key_arn must be empty or a KMS key ARN."
  }
}

variable "abort_incomplete_multipart_days" {
  description = "Days after which S3 aborts multipart uploads an agent started and never finished (killed mid-upload)."
  type        = number
  default     = 2

  validation {
    condition     = var.abort_incomplete_multipart_days >= 1 && var.abort_incomplete_multipart_days <= 30
    error_message = "abort_incomplete_multipart_days must be between 1 and 30."
  }
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
