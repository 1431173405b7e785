# Floe agents on ECS Fargate behind an Application Load Balancer.
#
# Agents are stateless: every acknowledged record is in the bucket, so tasks
# can be replaced, scaled in or out, and spread over zones freely. Any agent
# serves any request, so the load balancer simply round-robins.

data "aws_region" "current" {}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  container_name = "floe-agent"
  container_port = 8080
  store_url      = var.store_prefix == "" ? "s3://${var.bucket_name}" : "s3://${var.bucket_name}/${var.store_prefix}"

  # The load balancer keeps idle connections to the agents this long; an
  # agent must keep them longer (its header timeout, which bounds the wait
  # for a connection's next request), or the load balancer may send a request
  # down a connection the agent is closing and answer 502. Only the load
  # balancer and other agents reach the agents.
  alb_idle_timeout_s = 75

  environment = merge(
    {
      FLOE_LISTEN                    = "0.0.0.0:${local.container_port}"
      FLOE_STORE                     = local.store_url
      FLOE_FLUSH_INTERVAL_MS         = tostring(var.flush_interval_ms)
      FLOE_FLUSH_BYTES               = tostring(var.flush_bytes)
      FLOE_BUFFER_BYTES              = tostring(var.buffer_bytes)
      FLOE_CACHE_BYTES               = tostring(var.cache_bytes)
      FLOE_LOG_POLL_MS               = tostring(var.log_poll_ms)
      FLOE_LOG                       = var.log_level
      FLOE_REQUEST_HEADER_TIMEOUT_MS = tostring((local.alb_idle_timeout_s + 15) * 1000)
      AWS_REGION                     = data.aws_region.current.name
    },
    var.extra_environment,
  )

  # FLOE_ADVERTISE_URL is the URL the other agents use to reach this one: they
  # forward consumer-group requests to a group's coordinator and commits to
  # the commit-lease holder there. The agent listens on 0.0.0.0 and refuses to
  # advertise that, and a Fargate task gets a new private IP at every start,
  # so no fixed value fits; a DNS name (Cloud Map, Service Connect) would name
  # the service rather than one task. The container therefore starts through
  # this script, which reads its task's IP from the ECS task metadata endpoint
  # (v4, Fargate platform 1.4.0 and later) and advertises http://IP:PORT,
  # reachable by the other tasks (see agents_from_agents in network.tf). The
  # image's /bin/sh and curl are enough; no jq. A FLOE_ADVERTISE_URL given in
  # var.extra_environment skips the lookup.
  entrypoint_script = <<-EOT
    set -eu
    if [ -z "$${FLOE_ADVERTISE_URL:-}" ]; then
      meta="$${ECS_CONTAINER_METADATA_URI_V4:?not on ECS: set FLOE_ADVERTISE_URL}/task"
      ip=$(curl -fsS --retry 5 --retry-connrefused --max-time 5 "$meta" | tr -d ' \t\r\n' | sed -n 's/.*"IPv4Addresses":\["\([0-9.]*\)".*/\1/p')
      if [ -z "$ip" ]; then
        echo "floe: no IPv4 address for this task in $meta" >&2
        exit 1
      fi
      export FLOE_ADVERTISE_URL="http://$ip:${local.container_port}"
    fi
    echo "floe: advertising $FLOE_ADVERTISE_URL" >&2
    exec floe-agent
  EOT
}

resource "aws_cloudwatch_log_group" "agents" {
  # CloudWatch Logs' default encryption unless var.log_kms_key_arn names a
  # customer-managed key (whose key policy is deployment-specific).
  name              = "/ecs/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
  tags              = var.tags
}

resource "aws_ecs_cluster" "this" {
  name = var.name
  tags = var.tags

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_ecs_task_definition" "agent" {
  family                   = "${var.name}-agent"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn
  tags                     = var.tags

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  container_definitions = jsonencode([
    {
      name      = local.container_name
      image     = var.image
      essential = true
      # The image's non-root user `floe`. Zero-disk: with an s3:// store the
      # agent writes nothing locally, so the root filesystem is read-only.
      user                   = "10001:10001"
      readonlyRootFilesystem = true
      privileged             = false
      # Sets FLOE_ADVERTISE_URL to the task's private IP, then execs floe-agent.
      entryPoint = ["/bin/sh", "-c"]
      command    = [local.entrypoint_script]
      portMappings = [
        {
          containerPort = local.container_port
          hostPort      = local.container_port
          protocol      = "tcp"
        },
      ]
      environment = [
        for k in sort(keys(local.environment)) : {
          name  = k
          value = local.environment[k]
        }
      ]
      healthCheck = {
        command     = ["CMD-SHELL", "curl -fsS http://127.0.0.1:${local.container_port}/healthz || exit 1"]
        interval    = 10
        timeout     = 3
        retries     = 3
        startPeriod = 15
      }
      # SIGTERM first; give in-flight flushes and long polls time to finish.
      stopTimeout = 30
      linuxParameters = {
        initProcessEnabled = true
      }
      ulimits = [
        {
          name      = "nofile"
          softLimit = 65536
          hardLimit = 65536
        },
      ]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.agents.name
          awslogs-region        = data.aws_region.current.name
          awslogs-stream-prefix = "agent"
        }
      }
    },
  ])
}

resource "aws_ecs_service" "agents" {
  name                              = var.name
  cluster                           = aws_ecs_cluster.this.id
  task_definition                   = aws_ecs_task_definition.agent.arn
  desired_count                     = var.desired_count
  launch_type                       = "FARGATE"
  platform_version                  = "LATEST"
  health_check_grace_period_seconds = 30
  # Replace tasks one batch at a time with the old ones still serving: agents
  # share nothing but the bucket, so old and new run side by side safely,
  # given the bucket's formats allow it (upgrading from a build before
  # snapshot format 4: docs/compactor.md, FLOE_SNAPSHOT_FORMAT=3 first).
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  enable_execute_command             = false
  propagate_tags                     = "SERVICE"
  tags                               = var.tags

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.agents.id]
    assign_public_ip = var.assign_public_ip
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.agents.arn
    container_name   = local.container_name
    container_port   = local.container_port
  }

  lifecycle {
    # Autoscaling owns the task count after creation.
    ignore_changes = [desired_count]
  }

  # The target group must belong to a listener before the service uses it.
  depends_on = [
    aws_lb_listener.http,
    aws_lb_listener.https,
    aws_iam_role_policy.task,
  ]
}

resource "aws_appautoscaling_target" "agents" {
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.agents.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.min_count
  max_capacity       = var.max_count
}

resource "aws_appautoscaling_policy" "cpu" {
  name               = "${var.name}-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.agents.service_namespace
  resource_id        = aws_appautoscaling_target.agents.resource_id
  scalable_dimension = aws_appautoscaling_target.agents.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.cpu_target_utilization
    scale_in_cooldown  = 300
    scale_out_cooldown = 60

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}
