variable "name" {
  description = "Prefix of the bucket's generated name (when bucket_name is empty)."
  type        = string
  default     = "barge"
}

variable "bucket_name" {
  description = "The bucket's name; empty lets AWS name it after var.name."
  type        = string
  default     = ""

  validation {
    condition     = var.bucket_name == "" || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be a valid S3 bucket name (3-63 characters of lower-case letters, digits, dots and hyphens)."
  }
}

variable "force_destroy" {
  description = "Whether terraform destroy may delete the bucket while it still holds objects (every topic's data)."
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
  description = "Days after which S3 aborts multipart uploads started and never finished."
  type        = number
  default     = 2

  validation {
    condition     = var.abort_incomplete_multipart_days >= 1 && var.abort_incomplete_multipart_days <= 30
    error_message = "abort_incomplete_multipart_days must be between 1 and 30."
  }
}

variable "tags" {
  description = "Tags for the bucket."
  type        = map(string)
  default     = {}
}
