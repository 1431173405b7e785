# Load balancer and security groups. Clients reach the ALB from
# var.allowed_cidr_blocks; only the ALB and the other agents reach the agents;
# the agents reach each other on their HTTP port and AWS APIs (S3, ECR,
# CloudWatch Logs) over HTTPS.

resource "aws_security_group" "alb" {
  name        = "${var.name}-alb"
  description = "Floe load balancer: clients in, agents out."
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.name}-alb" })
}

resource "aws_security_group" "agents" {
  name        = "${var.name}-agents"
  description = "Floe agent tasks: HTTP from the load balancer, HTTPS out to AWS APIs."
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.name}-agents" })
}

resource "aws_security_group_rule" "alb_http_in" {
  type              = "ingress"
  description       = "Floe API over HTTP (or the redirect to HTTPS) from allowed networks"
  security_group_id = aws_security_group.alb.id
  protocol          = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_blocks       = var.allowed_cidr_blocks
}

resource "aws_security_group_rule" "alb_https_in" {
  count = var.certificate_arn == null ? 0 : 1

  type              = "ingress"
  description       = "Floe API over HTTPS from allowed networks"
  security_group_id = aws_security_group.alb.id
  protocol          = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_blocks       = var.allowed_cidr_blocks
}

resource "aws_security_group_rule" "alb_to_agents" {
  type                     = "egress"
  description              = "Load balancer to the HTTP port of the agents"
  security_group_id        = aws_security_group.alb.id
  protocol                 = "tcp"
  from_port                = local.container_port
  to_port                  = local.container_port
  source_security_group_id = aws_security_group.agents.id
}

resource "aws_security_group_rule" "agents_from_alb" {
  type                     = "ingress"
  description              = "HTTP port of the agents from the load balancer only"
  security_group_id        = aws_security_group.agents.id
  protocol                 = "tcp"
  from_port                = local.container_port
  to_port                  = local.container_port
  source_security_group_id = aws_security_group.alb.id
}

# Agents forward consumer-group requests to a group's coordinator and commits
# to the commit-lease holder, at the task IP each advertises (FLOE_ADVERTISE_URL,
# see main.tf): agent to agent on the HTTP port, within this group only.
resource "aws_security_group_rule" "agents_from_agents" {
  type              = "ingress"
  description       = "HTTP port of the agents from the other agents (forwards to group coordinators and the commit lease holder)"
  security_group_id = aws_security_group.agents.id
  protocol          = "tcp"
  from_port         = local.container_port
  to_port           = local.container_port
  self              = true
}

resource "aws_security_group_rule" "agents_to_agents" {
  type              = "egress"
  description       = "Agents to the HTTP port of the other agents (forwards to group coordinators and the commit lease holder)"
  security_group_id = aws_security_group.agents.id
  protocol          = "tcp"
  from_port         = local.container_port
  to_port           = local.container_port
  self              = true
}

resource "aws_security_group_rule" "agents_https_out" {
  type              = "egress"
  description       = "Agents to AWS APIs over HTTPS (S3, ECR, CloudWatch Logs), directly or through VPC endpoints"
  security_group_id = aws_security_group.agents.id
  protocol          = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_blocks       = ["0.0.0.0/0"]
}

# No WAF here: the default is an internal ALB in front of a JSON API; attach a
# web ACL with aws_wafv2_web_acl_association where one is required. Access
# logs are opt-in (var.alb_access_logs_bucket needs the ELB log-delivery policy).
resource "aws_lb" "this" {
  #checkov:skip=CKV2_AWS_20:With certificate_arn set, port 80 only redirects to HTTPS (aws_lb_listener.http_redirect); without one there is no HTTPS listener to redirect to, and plain HTTP is the deliberate choice.
  name                       = "${var.name}-alb"
  load_balancer_type         = "application"
  internal                   = var.internal
  subnets                    = var.alb_subnet_ids
  security_groups            = [aws_security_group.alb.id]
  drop_invalid_header_fields = true
  enable_deletion_protection = var.alb_deletion_protection
  # Long-poll fetches wait up to 60 s (timeout_ms=60000).
  idle_timeout = local.alb_idle_timeout_s
  tags         = var.tags

  dynamic "access_logs" {
    for_each = var.alb_access_logs_bucket == null ? [] : [var.alb_access_logs_bucket]
    content {
      bucket  = access_logs.value
      prefix  = var.name
      enabled = true
    }
  }
}

resource "aws_lb_target_group" "agents" {
  #checkov:skip=CKV_AWS_378:TLS terminates at the load balancer; the agents serve plain HTTP and are reachable only from the ALB's security group inside the VPC.
  name        = "${var.name}-agents"
  vpc_id      = var.vpc_id
  target_type = "ip"
  protocol    = "HTTP"
  port        = local.container_port
  # Let in-flight long polls (up to 60 s) finish before a task is stopped.
  deregistration_delay = 70
  tags                 = var.tags

  # /readyz: the store answers and the agent has caught up with the log.
  health_check {
    path                = "/readyz"
    protocol            = "HTTP"
    matcher             = "200"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

resource "aws_lb_listener" "https" {
  count = var.certificate_arn == null ? 0 : 1

  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = var.ssl_policy
  certificate_arn   = var.certificate_arn
  tags              = var.tags

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.agents.arn
  }
}

# With a certificate: port 80 only redirects to HTTPS.
resource "aws_lb_listener" "http_redirect" {
  count = var.certificate_arn == null ? 0 : 1

  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"
  tags              = var.tags

  default_action {
    type = "redirect"

    redirect {
      port        = "443"
      protocol    = "HTTPS"
      status_code = "HTTP_301"
    }
  }
}

# Without a certificate: plain HTTP on port 80.
resource "aws_lb_listener" "http" {
  #checkov:skip=CKV_AWS_103:Created only when no certificate_arn is given (e.g. an internal test deployment): plain HTTP has no TLS version; with a certificate the HTTPS listener uses var.ssl_policy (TLS 1.2+) and port 80 redirects.
  count = var.certificate_arn == null ? 1 : 0

  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"
  tags              = var.tags

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.agents.arn
  }
}
