variable "name" {
  description = "Name for the cluster, service, load balancer, roles and log group (lowercase letters, digits and hyphens, at most 24 characters so derived names fit AWS limits)."
  type        = string
  default     = "floe"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,23}$", var.name))
    error_message = "The name must start with a letter and be at most 24 lowercase letters, digits and hyphens."
  }
}

variable "image" {
  description = "Floe container image built from the repository's Dockerfile, e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/floe:0.1.0. Pin a tag or digest, never latest."
  type        = string
}

variable "cpu_architecture" {
  description = "CPU architecture the image was built for: X86_64 or ARM64."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "The cpu_architecture must be X86_64 or ARM64."
  }
}

variable "bucket_name" {
  description = "Name of the S3 bucket that holds the cluster (output name of the bucket module)."
  type        = string
}

variable "bucket_arn" {
  description = "ARN of that bucket; the task role gets access to it and to nothing else in S3."
  type        = string
}

variable "store_prefix" {
  description = "Optional key prefix inside the bucket (FLOE_STORE=s3://BUCKET/PREFIX), without leading or trailing slash; the task role's object access is limited to it. Empty uses the whole bucket."
  type        = string
  default     = ""

  validation {
    condition     = var.store_prefix == "" || can(regex("^[^/].*[^/]$|^[^/]$", var.store_prefix))
    error_message = "The store_prefix must not start or end with a slash."
  }
}

variable "bucket_kms_key_arn" {
  description = "ARN of the customer-managed KMS key that encrypts the bucket, if any; the task role then gets kms:Decrypt and kms:GenerateDataKey on it. Null for SSE-S3 or the AWS-managed aws/s3 key."
  type        = string
  default     = null
}

variable "vpc_id" {
  description = "ID of the VPC for the load balancer and the tasks."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets for the agent tasks (private subnets with a NAT gateway or VPC endpoints for S3, ECR and CloudWatch Logs; an S3 gateway endpoint avoids NAT charges on all bucket traffic)."
  type        = list(string)
}

variable "alb_subnet_ids" {
  description = "Subnets for the load balancer, in at least two availability zones (public subnets if internal is false)."
  type        = list(string)
}

variable "assign_public_ip" {
  description = "Give each task a public IP (only for tasks in public subnets without NAT; keep false otherwise)."
  type        = bool
  default     = false
}

variable "internal" {
  description = "Make the load balancer internal. Floe's HTTP API has no authentication yet, so the default keeps it inside the VPC."
  type        = bool
  default     = true
}

variable "allowed_cidr_blocks" {
  description = "CIDR blocks allowed to reach the load balancer (ports 80 and, with a certificate, 443). Typically the VPC's CIDR or your clients' networks."
  type        = list(string)
}

variable "certificate_arn" {
  description = "ACM certificate ARN for an HTTPS listener on 443 (port 80 then redirects to it). Null serves plain HTTP on port 80."
  type        = string
  default     = null
}

variable "ssl_policy" {
  description = "TLS policy of the HTTPS listener."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"
}

variable "alb_deletion_protection" {
  description = "Protect the load balancer against deletion (set false before terraform destroy)."
  type        = bool
  default     = true
}

variable "alb_access_logs_bucket" {
  description = "Name of an S3 bucket that accepts ELB access logs (with the log-delivery bucket policy); null disables load balancer access logs."
  type        = string
  default     = null
}

variable "desired_count" {
  description = "Number of agent tasks at creation; autoscaling moves it between min_count and max_count afterwards."
  type        = number
  default     = 3
}

variable "min_count" {
  description = "Fewest agent tasks autoscaling keeps running."
  type        = number
  default     = 2
}

variable "max_count" {
  description = "Most agent tasks autoscaling may start."
  type        = number
  default     = 12
}

variable "cpu_target_utilization" {
  description = "Average CPU utilisation (percent) that target-tracking autoscaling keeps the service at."
  type        = number
  default     = 60
}

variable "cpu" {
  description = "Fargate CPU units per task (1024 = 1 vCPU)."
  type        = number
  default     = 1024
}

variable "memory" {
  description = "Fargate memory per task in MiB; must hold buffer_bytes + cache_bytes plus headroom."
  type        = number
  default     = 2048
}

variable "flush_interval_ms" {
  description = "FLOE_FLUSH_INTERVAL_MS: flush this long after the first buffered record (lower for latency, higher for fewer S3 PUTs)."
  type        = number
  default     = 250
}

variable "flush_bytes" {
  description = "FLOE_FLUSH_BYTES: flush as soon as the buffer holds this many bytes."
  type        = number
  default     = 8388608
}

variable "buffer_bytes" {
  description = "FLOE_BUFFER_BYTES: RAM for records not yet acknowledged; produce answers 503 when it is full."
  type        = number
  default     = 134217728
}

variable "cache_bytes" {
  description = "FLOE_CACHE_BYTES: RAM for the decoded-batch read cache."
  type        = number
  default     = 268435456
}

variable "log_poll_ms" {
  description = "FLOE_LOG_POLL_MS: how often an agent looks for log entries committed by other agents."
  type        = number
  default     = 250
}

variable "log_level" {
  description = "FLOE_LOG: log filter (error, warn, info, debug or a tracing filter)."
  type        = string
  default     = "info"
}

variable "extra_environment" {
  description = "Further environment variables for the agent container (they override the module's own)."
  type        = map(string)
  default     = {}
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps the agents' logs."
  type        = number
  default     = 365
}

variable "log_kms_key_arn" {
  description = "KMS key ARN to encrypt the CloudWatch log group with (its key policy must allow CloudWatch Logs); null uses CloudWatch's default encryption."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags added to every resource of this module."
  type        = map(string)
  default     = {}
}
