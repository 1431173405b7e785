# The bucket of one Floe cluster: the only source of truth for every topic.
#
# What Floe needs from S3: create-only PUTs (If-None-Match: *) and strongly
# consistent GET and LIST, both of which AWS S3 provides. What it does not
# want: lifecycle expiration or anything else that deletes or rewrites keys
# behind its back. A deleted log position would let a stale agent's
# create-only PUT succeed there and fork the history, so the only lifecycle
# rule here aborts incomplete multipart uploads; the compactor decides what
# to delete.

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_18:Server access logging is off: every agent polls log/{seq} several times a second, so access logs would be almost all 404 GETs at a cost out of proportion to their value; enable CloudTrail S3 data events where an audit trail is required.
  #checkov:skip=CKV_AWS_144:No cross-region replication: replication is asynchronous and does not carry create-only semantics, so a replica is not a consistent Floe cluster; disaster recovery across regions is a separate decision.
  #checkov:skip=CKV_AWS_21:Versioning is off by default on purpose (see var.versioning_enabled): objects are immutable and Floe deletes its own garbage, so versions would only keep collected objects billed forever.
  #checkov:skip=CKV2_AWS_62:No event notifications: nothing consumes bucket events; agents learn new entries by reading the log.
  bucket        = var.name
  force_destroy = var.force_destroy
  tags          = var.tags
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket = aws_s3_bucket.this.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = var.sse_algorithm
      kms_master_key_id = var.sse_algorithm == "aws:kms" ? var.kms_key_arn : null
    }
    bucket_key_enabled = var.sse_algorithm == "aws:kms"
  }
}

# Versioning decision: see var.versioning_enabled. "Disabled" is accepted only
# for a bucket that has never been versioned; once enabled, turning it off
# again sets "Suspended".
resource "aws_s3_bucket_versioning" "this" {
  bucket = aws_s3_bucket.this.id

  versioning_configuration {
    status = var.versioning_enabled ? "Enabled" : "Disabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  # The only rule: never expire or transition objects, Floe decides what to delete.
  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_multipart_upload_days
    }
  }
}

data "aws_iam_policy_document" "tls_only" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.this.arn,
      "${aws_s3_bucket.this.arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  bucket = aws_s3_bucket.this.id
  policy = data.aws_iam_policy_document.tls_only.json

  # A bucket policy cannot be put while the public access block is being created.
  depends_on = [aws_s3_bucket_public_access_block.this]
}
