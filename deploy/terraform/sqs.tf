# The orders queue carries one processing message per accepted order (sent by the relay
# from the orders table's stream) to the intake. A message that fails 3 receives moves
# to the dead-letter queue, which keeps it 14 days for the dlq-replay function and the
# admin routes (GET /admin/dlq, POST /admin/dlq/replay).

resource "aws_sqs_queue" "orders_dlq" {
  name                              = "${var.prefix}-orders-dlq"
  message_retention_seconds         = 1209600
  kms_master_key_id                 = aws_kms_key.main.arn
  kms_data_key_reuse_period_seconds = 300
}

resource "aws_sqs_queue" "orders" {
  name                              = "${var.prefix}-orders"
  visibility_timeout_seconds        = local.orders_visibility_timeout_seconds
  receive_wait_time_seconds         = 10
  message_retention_seconds         = 345600
  kms_master_key_id                 = aws_kms_key.main.arn
  kms_data_key_reuse_period_seconds = 300

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.orders_dlq.arn
    maxReceiveCount     = 3
  })
}

# Only the orders queue may dead-letter into its DLQ.
resource "aws_sqs_queue_redrive_allow_policy" "orders_dlq" {
  queue_url = aws_sqs_queue.orders_dlq.id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.orders.arn]
  })
}

# On-failure destination of the relay's stream mappings: metadata of a stream batch the
# relay could not process after all retries (alarmed: such an order may not have been
# queued; its record is still in the table and can be queued again by dlq-replay or by
# re-saving the order).
resource "aws_sqs_queue" "relay_failures" {
  name                              = "${var.prefix}-relay-failures"
  message_retention_seconds         = 1209600
  kms_master_key_id                 = aws_kms_key.main.arn
  kms_data_key_reuse_period_seconds = 300
}

# Dead letters of the events function: events EventBridge could not deliver to it (rule
# target DLQ) and asynchronous invocations that failed all of Lambda's retries.
resource "aws_sqs_queue" "events_dlq" {
  name                              = "${var.prefix}-events-dlq"
  message_retention_seconds         = 1209600
  kms_master_key_id                 = aws_kms_key.main.arn
  kms_data_key_reuse_period_seconds = 300
}

data "aws_iam_policy_document" "events_dlq" {
  statement {
    sid       = "EventBridgeRulesDeadLetter"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.events_dlq.arn]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [for r in aws_cloudwatch_event_rule.subscription : r.arn]
    }
  }
}

resource "aws_sqs_queue_policy" "events_dlq" {
  queue_url = aws_sqs_queue.events_dlq.id
  policy    = data.aws_iam_policy_document.events_dlq.json
}
