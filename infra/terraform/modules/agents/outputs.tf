output "alb_dns_name" {
  description = "DNS name of the load balancer in front of the agents."
  value       = aws_lb.this.dns_name
}

output "alb_zone_id" {
  description = "Route 53 hosted zone ID of the load balancer (for an alias record)."
  value       = aws_lb.this.zone_id
}

output "url" {
  description = "Base URL of the Floe HTTP API through the load balancer."
  value       = var.certificate_arn == null ? "http://${aws_lb.this.dns_name}" : "https://${aws_lb.this.dns_name}"
}

output "cluster_name" {
  description = "Name of the ECS cluster."
  value       = aws_ecs_cluster.this.name
}

output "service_name" {
  description = "Name of the ECS service running the agents."
  value       = aws_ecs_service.agents.name
}

output "task_role_arn" {
  description = "ARN of the agents' task role (S3 access to the cluster's bucket only); reuse it for a standalone compactor task."
  value       = aws_iam_role.task.arn
}

output "execution_role_arn" {
  description = "ARN of the task execution role (image pull and log delivery)."
  value       = aws_iam_role.execution.arn
}

output "alb_security_group_id" {
  description = "ID of the load balancer's security group."
  value       = aws_security_group.alb.id
}

output "agents_security_group_id" {
  description = "ID of the agent tasks' security group."
  value       = aws_security_group.agents.id
}

output "log_group_name" {
  description = "CloudWatch log group of the agents."
  value       = aws_cloudwatch_log_group.agents.name
}
