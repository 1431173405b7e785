# Two roles: the execution role lets ECS pull the image and ship logs; the
# task role is what the agent itself uses, and reaches this cluster's bucket
# (or prefix) only.

data "aws_iam_policy_document" "execution_assume" {
  statement {
    sid     = "EcsTasksAssume"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "task_assume" {
  statement {
    sid     = "EcsTasksAssume"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    # Only ECS tasks of this account may assume the role (confused deputy).
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${data.aws_partition.current.partition}:ecs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:*"]
    }
  }
}

resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  description        = "ECS task execution role of ${var.name}: image pull and CloudWatch log delivery."
  assume_role_policy = data.aws_iam_policy_document.execution_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

resource "aws_iam_role" "task" {
  name               = "${var.name}-agent"
  description        = "Floe agent task role of ${var.name}: object access to its own bucket only."
  assume_role_policy = data.aws_iam_policy_document.task_assume.json
  tags               = var.tags
}

locals {
  object_arn = var.store_prefix == "" ? "${var.bucket_arn}/*" : "${var.bucket_arn}/${var.store_prefix}/*"
}

data "aws_iam_policy_document" "task" {
  # ListBucket also makes S3 answer 404 (not 403) for a missing key, which the
  # agent relies on when it probes the next log position.
  statement {
    sid       = "ListFloeBucket"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]
  }

  # Create-only PUTs (If-None-Match: *) need nothing beyond s3:PutObject.
  statement {
    sid = "ReadWriteFloeObjects"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
    ]
    resources = [local.object_arn]
  }

  dynamic "statement" {
    for_each = var.bucket_kms_key_arn == null ? [] : [var.bucket_kms_key_arn]
    content {
      sid       = "UseBucketKmsKey"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "task" {
  name   = "floe-bucket-access"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}
