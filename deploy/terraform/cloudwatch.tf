# Alarms (each notifies the alarms topic when it fires and when it clears) and the
# operations dashboard.

locals {
  alarm_topics = [aws_sns_topic.alarms.arn]

  function_names = {
    api          = module.api.function_name
    relay        = module.relay.function_name
    intake       = module.intake.function_name
    "saga-step"  = module.saga_step.function_name
    events       = module.events.function_name
    "dlq-replay" = module.dlq_replay.function_name
  }

  api_dimensions = { ApiName = aws_api_gateway_rest_api.api.name, Stage = aws_api_gateway_stage.api.stage_name }

  # The application's own metrics (namespace "Orderly"), summed over whatever dimensions
  # they are emitted with.
  # Names as orderly_core::metrics declares them; the functions log them as CloudWatch
  # embedded metric format (a test in apps/orderly-lambda checks these names).
  custom_metric_groups = {
    "Orders"    = ["orderly_orders_created_total", "orderly_orders_confirmed_total", "orderly_orders_failed_total", "orderly_orders_fulfilled_total"]
    "Payments"  = ["orderly_payments_processed_total", "orderly_payments_failed_total"]
    "Inventory" = ["orderly_inventory_reserved_total", "orderly_inventory_released_total"]
  }
}

# --- alarms ------------------------------------------------------------------------------

resource "aws_cloudwatch_metric_alarm" "orders_dlq_depth" {
  alarm_name          = "${var.prefix}-orders-dlq-depth"
  alarm_description   = "More than ${var.dlq_depth_alarm_threshold} order messages are dead-lettered in ${aws_sqs_queue.orders_dlq.name}: inspect (GET /admin/dlq) and replay (dlq-replay) once the cause is fixed."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.orders_dlq.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = var.dlq_depth_alarm_threshold
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_topics
  ok_actions          = local.alarm_topics
}

resource "aws_cloudwatch_metric_alarm" "saga_failure_rate" {
  alarm_name          = "${var.prefix}-saga-failure-rate"
  alarm_description   = "More than ${var.saga_failure_rate_alarm_percent} % of the sagas started in 5 minutes failed (compensated sagas end in a Fail state, so they count)."
  evaluation_periods  = 1
  threshold           = var.saga_failure_rate_alarm_percent
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_topics
  ok_actions          = local.alarm_topics

  metric_query {
    id          = "rate"
    expression  = "IF(started > 0, 100 * failed / started, 0)"
    label       = "Failed executions (% of started)"
    return_data = true
  }

  metric_query {
    id = "failed"
    metric {
      namespace   = "AWS/States"
      metric_name = "ExecutionsFailed"
      dimensions  = { StateMachineArn = aws_sfn_state_machine.saga.arn }
      period      = 300
      stat        = "Sum"
    }
  }

  metric_query {
    id = "started"
    metric {
      namespace   = "AWS/States"
      metric_name = "ExecutionsStarted"
      dimensions  = { StateMachineArn = aws_sfn_state_machine.saga.arn }
      period      = 300
      stat        = "Sum"
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "api_5xx_rate" {
  alarm_name          = "${var.prefix}-api-5xx-rate"
  alarm_description   = "More than ${var.api_5xx_rate_alarm_percent} % of the API requests in 5 minutes answered 5xx."
  evaluation_periods  = 1
  threshold           = var.api_5xx_rate_alarm_percent
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_topics
  ok_actions          = local.alarm_topics

  metric_query {
    id          = "rate"
    expression  = "IF(requests > 0, 100 * errors / requests, 0)"
    label       = "5xx responses (% of requests)"
    return_data = true
  }

  metric_query {
    id = "errors"
    metric {
      namespace   = "AWS/ApiGateway"
      metric_name = "5XXError"
      dimensions  = local.api_dimensions
      period      = 300
      stat        = "Sum"
    }
  }

  metric_query {
    id = "requests"
    metric {
      namespace   = "AWS/ApiGateway"
      metric_name = "Count"
      dimensions  = local.api_dimensions
      period      = 300
      stat        = "Sum"
    }
  }
}

# Any message here is an order (or event) the pipeline gave up on: alarm at the first.
resource "aws_cloudwatch_metric_alarm" "failure_queue" {
  for_each = {
    relay-failures = aws_sqs_queue.relay_failures.name
    events-dlq     = aws_sqs_queue.events_dlq.name
  }

  alarm_name          = "${var.prefix}-${each.key}-not-empty"
  alarm_description   = "${each.value} holds messages: a stream batch the relay could not process, or an event the events function could not handle, after every retry."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = each.value }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_topics
  ok_actions          = local.alarm_topics
}

# --- dashboard ---------------------------------------------------------------------------

locals {
  dashboard_widgets = concat(
    [
      {
        type = "metric", x = 0, y = 0, width = 8, height = 6
        properties = {
          title   = "API requests", region = local.region, view = "timeSeries", stat = "Sum", period = 60
          metrics = [["AWS/ApiGateway", "Count", "ApiName", local.api_dimensions.ApiName, "Stage", local.api_dimensions.Stage]]
        }
      },
      {
        type = "metric", x = 8, y = 0, width = 8, height = 6
        properties = {
          title = "API latency", region = local.region, view = "timeSeries", period = 60
          metrics = [
            for p in ["p50", "p95", "p99"] :
            ["AWS/ApiGateway", "Latency", "ApiName", local.api_dimensions.ApiName, "Stage", local.api_dimensions.Stage, { stat = p, label = p }]
          ]
        }
      },
      {
        type = "metric", x = 16, y = 0, width = 8, height = 6
        properties = {
          title = "API 4xx and 5xx", region = local.region, view = "timeSeries", stat = "Sum", period = 60
          metrics = [
            for m in ["4XXError", "5XXError"] :
            ["AWS/ApiGateway", m, "ApiName", local.api_dimensions.ApiName, "Stage", local.api_dimensions.Stage]
          ]
        }
      },
      {
        type = "metric", x = 0, y = 6, width = 12, height = 6
        properties = {
          title = "Saga outcomes", region = local.region, view = "timeSeries", stat = "Sum", period = 300
          metrics = [
            for m in ["ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed", "ExecutionsTimedOut"] :
            ["AWS/States", m, "StateMachineArn", aws_sfn_state_machine.saga.arn]
          ]
        }
      },
      {
        type = "metric", x = 12, y = 6, width = 12, height = 6
        properties = {
          title = "Saga duration (ms)", region = local.region, view = "timeSeries", period = 300
          metrics = [
            for p in ["p50", "p95", "Maximum"] :
            ["AWS/States", "ExecutionTime", "StateMachineArn", aws_sfn_state_machine.saga.arn, { stat = p, label = p }]
          ]
        }
      },
      {
        type = "metric", x = 0, y = 12, width = 12, height = 6
        properties = {
          title = "Queue depth", region = local.region, view = "timeSeries", stat = "Maximum", period = 60
          metrics = [
            for q in [aws_sqs_queue.orders.name, aws_sqs_queue.orders_dlq.name, aws_sqs_queue.relay_failures.name, aws_sqs_queue.events_dlq.name] :
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", q]
          ]
        }
      },
      {
        type = "metric", x = 12, y = 12, width = 12, height = 6
        properties = {
          title = "Age of oldest message (s)", region = local.region, view = "timeSeries", stat = "Maximum", period = 60
          metrics = [
            for q in [aws_sqs_queue.orders.name, aws_sqs_queue.orders_dlq.name] :
            ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", q]
          ]
        }
      },
      {
        type = "metric", x = 0, y = 18, width = 8, height = 6
        properties = {
          title   = "Lambda duration p95 (ms)", region = local.region, view = "timeSeries", stat = "p95", period = 60
          metrics = [for k, f in local.function_names : ["AWS/Lambda", "Duration", "FunctionName", f, { label = k }]]
        }
      },
      {
        type = "metric", x = 8, y = 18, width = 8, height = 6
        properties = {
          title   = "Lambda errors", region = local.region, view = "timeSeries", stat = "Sum", period = 60
          metrics = [for k, f in local.function_names : ["AWS/Lambda", "Errors", "FunctionName", f, { label = k }]]
        }
      },
      {
        type = "metric", x = 16, y = 18, width = 8, height = 6
        properties = {
          title   = "Lambda concurrent executions", region = local.region, view = "timeSeries", stat = "Maximum", period = 60
          metrics = [for k, f in local.function_names : ["AWS/Lambda", "ConcurrentExecutions", "FunctionName", f, { label = k }]]
        }
      },
    ],
    [
      for i, title in keys(local.custom_metric_groups) : {
        type = "metric", x = 8 * i, y = 24, width = 8, height = 6
        properties = {
          title = title, region = local.region, view = "timeSeries", period = 300
          metrics = [
            for j, name in local.custom_metric_groups[title] : [{
              id         = "m${j}"
              label      = name
              expression = "SUM(SEARCH('Namespace=\"Orderly\" MetricName=\"${name}\"', 'Sum', 300))"
            }]
          ]
        }
      }
    ],
  )
}

resource "aws_cloudwatch_dashboard" "orderly" {
  dashboard_name = var.prefix
  dashboard_body = jsonencode({ widgets = local.dashboard_widgets })
}
