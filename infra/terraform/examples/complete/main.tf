# A complete Floe deployment: one bucket, agents on ECS Fargate behind an ALB.
#
#   cp terraform.tfvars.example terraform.tfvars   # fill in image, vpc_id, subnet_ids
#   terraform init && terraform apply
#   curl -s "$(terraform output -raw url)/readyz"

provider "aws" {
  region = var.region

  default_tags {
    tags = merge({ Application = "floe", Deployment = var.name }, var.tags)
  }
}

data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

data "aws_vpc" "this" {
  id = var.vpc_id
}

module "bucket" {
  source = "../../modules/bucket"

  name          = "${var.name}-${data.aws_caller_identity.current.account_id}-${data.aws_region.current.name}"
  force_destroy = var.force_destroy_bucket
}

module "agents" {
  source = "../../modules/agents"

  name  = var.name
  image = var.image

  bucket_name = module.bucket.name
  bucket_arn  = module.bucket.arn

  vpc_id              = var.vpc_id
  subnet_ids          = var.subnet_ids
  alb_subnet_ids      = length(var.alb_subnet_ids) > 0 ? var.alb_subnet_ids : var.subnet_ids
  internal            = var.internal
  allowed_cidr_blocks = length(var.allowed_cidr_blocks) > 0 ? var.allowed_cidr_blocks : [data.aws_vpc.this.cidr_block]
  certificate_arn     = var.certificate_arn

  desired_count     = var.desired_count
  min_count         = var.min_count
  max_count         = var.max_count
  cpu               = var.cpu
  memory            = var.memory
  flush_interval_ms = var.flush_interval_ms
  flush_bytes       = var.flush_bytes

  alb_deletion_protection = var.alb_deletion_protection
}
