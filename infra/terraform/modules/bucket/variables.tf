variable "name" {
  description = "Name of the S3 bucket that holds one Floe cluster (globally unique, 3-63 lowercase characters)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.name))
    error_message = "The bucket name must be 3-63 characters of lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit."
  }
}

variable "kms_key_arn" {
  description = "ARN of a customer-managed KMS key for default encryption (SSE-KMS). Null uses the AWS-managed key aws/s3. Ignored when sse_algorithm is AES256. Grant the agents kms:Decrypt and kms:GenerateDataKey on it (the agents module does when given the same ARN)."
  type        = string
  default     = null
}

variable "sse_algorithm" {
  description = "Default server-side encryption: aws:kms (SSE-KMS with an S3 Bucket Key, so KMS is called per bucket key rather than per object) or AES256 (SSE-S3, no KMS calls or costs)."
  type        = string
  default     = "aws:kms"

  validation {
    condition     = contains(["aws:kms", "AES256"], var.sse_algorithm)
    error_message = "The sse_algorithm must be aws:kms or AES256."
  }
}

variable "versioning_enabled" {
  description = "Enable S3 versioning. Off by default, deliberately: Floe writes every data and snapshot object once, its compactor deletes only what no snapshot or log entry references, and the lifecycle rule here never expires anything, so with versioning every collected object would stay billed as a noncurrent version forever. Turn it on only together with your own noncurrent-version expiration, as a guard against deletes made outside Floe."
  type        = bool
  default     = false
}

variable "abort_incomplete_multipart_upload_days" {
  description = "Days after which S3 aborts multipart uploads that were never completed (parts of a crashed agent's upload). This is the bucket's only lifecycle rule: Floe itself decides which objects to delete."
  type        = number
  default     = 1

  validation {
    condition     = var.abort_incomplete_multipart_upload_days >= 1
    error_message = "The abort_incomplete_multipart_upload_days must be at least 1."
  }
}

variable "force_destroy" {
  description = "Allow terraform destroy to delete a bucket that still holds objects. Leave false for any cluster whose data matters: the bucket is Floe's only copy."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource of this module."
  type        = map(string)
  default     = {}
}
