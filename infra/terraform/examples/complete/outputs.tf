output "url" {
  description = "Base URL of the Floe API through the load balancer."
  value       = module.agents.url
}

output "alb_dns_name" {
  description = "DNS name of the load balancer."
  value       = module.agents.alb_dns_name
}

output "bucket_name" {
  description = "Name of the cluster's bucket."
  value       = module.bucket.name
}

output "cluster_name" {
  description = "ECS cluster running the agents."
  value       = module.agents.cluster_name
}

output "log_group_name" {
  description = "CloudWatch log group of the agents."
  value       = module.agents.log_group_name
}
