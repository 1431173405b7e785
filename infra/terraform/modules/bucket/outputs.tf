output "name" {
  description = "Name of the bucket (use it as FLOE_STORE=s3://NAME)."
  value       = aws_s3_bucket.this.id
}

output "arn" {
  description = "ARN of the bucket (for IAM policies)."
  value       = aws_s3_bucket.this.arn
}
