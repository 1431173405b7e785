variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "us-east-1"
}

variable "name" {
  description = "Name of the deployment; prefixes every resource and, with the account ID and region, names the bucket."
  type        = string
  default     = "floe"
}

variable "image" {
  description = "Floe container image (built from the repository's Dockerfile and pushed to a registry the tasks can pull from, e.g. ECR), pinned to a tag or digest."
  type        = string
}

variable "vpc_id" {
  description = "ID of an existing VPC."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of that VPC for the agent tasks (with NAT or VPC endpoints for S3, ECR and CloudWatch Logs)."
  type        = list(string)
}

variable "alb_subnet_ids" {
  description = "Subnets for the load balancer in at least two availability zones; empty reuses subnet_ids."
  type        = list(string)
  default     = []
}

variable "internal" {
  description = "Keep the load balancer internal (Floe's API has no authentication yet)."
  type        = bool
  default     = true
}

variable "allowed_cidr_blocks" {
  description = "Networks allowed to reach the load balancer; empty allows the VPC's own CIDR block."
  type        = list(string)
  default     = []
}

variable "certificate_arn" {
  description = "ACM certificate ARN for HTTPS on the load balancer; null serves plain HTTP on port 80."
  type        = string
  default     = null
}

variable "desired_count" {
  description = "Agent tasks at creation."
  type        = number
  default     = 3
}

variable "min_count" {
  description = "Fewest agent tasks autoscaling keeps."
  type        = number
  default     = 2
}

variable "max_count" {
  description = "Most agent tasks autoscaling may start."
  type        = number
  default     = 12
}

variable "cpu" {
  description = "Fargate CPU units per agent task (1024 = 1 vCPU)."
  type        = number
  default     = 1024
}

variable "memory" {
  description = "Fargate memory per agent task in MiB."
  type        = number
  default     = 2048
}

variable "flush_interval_ms" {
  description = "Agent flush interval in milliseconds (FLOE_FLUSH_INTERVAL_MS)."
  type        = number
  default     = 250
}

variable "flush_bytes" {
  description = "Agent flush size in bytes (FLOE_FLUSH_BYTES)."
  type        = number
  default     = 8388608
}

variable "alb_deletion_protection" {
  description = "Protect the load balancer against deletion; set false and apply before terraform destroy."
  type        = bool
  default     = true
}

variable "force_destroy_bucket" {
  description = "Let terraform destroy delete the bucket with its objects (the cluster's only copy of its data)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
