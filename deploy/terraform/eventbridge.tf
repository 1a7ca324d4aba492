# Domain events: the relay publishes every event appended to the audit log (the events
# table's stream) to the custom bus; one rule per subscription of orderly-core
# (events::routes, plus the audit log) delivers them to the events function, wrapped as
# {"subscriber": "<name>", "event": <the event>} so that the function runs that
# subscription only (each is retried and dead-lettered on its own, and an event matching
# three rules is handled once by each, not three times by all).

resource "aws_cloudwatch_event_bus" "orderly" {
  name = local.event_bus_name
}

locals {
  event_subscriptions = {
    fulfilment = {
      description = "OrderPlaced -> fulfilment (tracking id, FULFILLED)"
      pattern     = { source = ["orderly"], "detail-type" = ["OrderPlaced"] }
    }
    notifications = {
      description = "Customer-facing events -> notifications (SNS)"
      pattern     = { source = ["orderly"], "detail-type" = ["OrderPlaced", "OrderFailed", "OrderCancelled", "FulfillmentCompleted"] }
    }
    audit = {
      description = "Every Orderly event -> the audit log"
      pattern     = { source = ["orderly"] }
    }
  }
}

resource "aws_cloudwatch_event_rule" "subscription" {
  for_each = local.event_subscriptions

  name           = "${var.prefix}-${each.key}"
  description    = each.value.description
  event_bus_name = aws_cloudwatch_event_bus.orderly.name
  event_pattern  = jsonencode(each.value.pattern)
}

resource "aws_cloudwatch_event_target" "subscription" {
  for_each = local.event_subscriptions

  rule           = aws_cloudwatch_event_rule.subscription[each.key].name
  event_bus_name = aws_cloudwatch_event_bus.orderly.name
  target_id      = "${var.prefix}-events"
  arn            = module.events.arn

  input_transformer {
    input_template = "{\"subscriber\": \"${each.key}\", \"event\": <aws.events.event.json>}"
  }

  retry_policy {
    maximum_event_age_in_seconds = 86400
    maximum_retry_attempts       = 185
  }

  dead_letter_config {
    arn = aws_sqs_queue.events_dlq.arn
  }
}

resource "aws_lambda_permission" "events_from_rules" {
  for_each = local.event_subscriptions

  statement_id   = "AllowEventBridge-${each.key}"
  action         = "lambda:InvokeFunction"
  function_name  = module.events.function_name
  principal      = "events.amazonaws.com"
  source_arn     = aws_cloudwatch_event_rule.subscription[each.key].arn
  source_account = local.account_id
}
