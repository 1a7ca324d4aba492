# One execution role per function, least privilege. What each function's code may do is
# listed in ONE place, local.function_permissions below (function name -> statements, each
# with actions and resources): deploy/checks/check_terraform.py compares each function's
# actions with the AWS calls its adapters make (orderly.manifest.json, generated from the
# code), missing or extra. Two more kinds of grant are listed apart and checked apart:
# local.function_delivery_permissions, what Lambda itself does with a function's role
# (send a failed invocation or stream batch to that function's own dead-letter or
# on-failure queue), and the housekeeping statements of data.aws_iam_policy_document.function
# (its own log group, X-Ray, the stack key).

locals {
  # DynamoDB data plane as the store adapter uses it. Transactions (TransactWriteItems,
  # TransactGetItems) have no IAM actions of their own: they are authorised per item by
  # PutItem/UpdateItem/DeleteItem/ConditionCheckItem/GetItem.
  dynamodb_data_actions = [
    "dynamodb:BatchGetItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:DeleteItem",
    "dynamodb:DescribeTable",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:Scan",
    "dynamodb:UpdateItem",
  ]

  # Listing, replaying and moving messages between the orders queue and its DLQ (api's
  # admin routes, dlq-replay).
  queue_admin_actions = [
    "sqs:ChangeMessageVisibility",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
    "sqs:ReceiveMessage",
    "sqs:SendMessage",
  ]

  orders_queue_arns = [aws_sqs_queue.orders.arn, aws_sqs_queue.orders_dlq.arn]

  function_permissions = {
    api = [
      {
        sid       = "OrderlyTables"
        actions   = local.dynamodb_data_actions
        resources = local.table_and_index_arns
      },
      {
        # The admin routes: GET /admin/dlq, POST /admin/dlq/replay.
        sid       = "OrdersQueueAndDlq"
        actions   = local.queue_admin_actions
        resources = local.orders_queue_arns
      },
    ]

    relay = [
      {
        # The processing message of an inserted (or cancelled) order.
        sid       = "SendProcessingMessages"
        actions   = ["sqs:GetQueueUrl", "sqs:SendMessage"]
        resources = [aws_sqs_queue.orders.arn]
      },
      {
        sid       = "PublishDomainEvents"
        actions   = ["events:PutEvents"]
        resources = [aws_cloudwatch_event_bus.orderly.arn]
      },
      {
        # Read by the event source mappings with this role.
        sid       = "ReadTableStreams"
        actions   = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"]
        resources = [aws_dynamodb_table.orders.stream_arn, aws_dynamodb_table.events.stream_arn]
      },
      {
        # ListStreams has no resource type (IAM only accepts "*" for it).
        sid       = "ListStreams"
        actions   = ["dynamodb:ListStreams"]
        resources = ["*"]
      },
    ]

    intake = [
      {
        sid       = "OrderlyTables"
        actions   = local.dynamodb_data_actions
        resources = local.table_and_index_arns
      },
      {
        # One execution per order, named by the order id.
        sid       = "StartSaga"
        actions   = ["states:StartExecution"]
        resources = [aws_sfn_state_machine.saga.arn]
      },
      {
        # Consumed by the event source mapping with this role; a failed message returns
        # to the queue (and after 3 receives moves to the DLQ) without the intake sending.
        sid       = "ConsumeOrdersQueue"
        actions   = ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"]
        resources = [aws_sqs_queue.orders.arn]
      },
    ]

    "saga-step" = [
      {
        sid       = "OrderlyTables"
        actions   = local.dynamodb_data_actions
        resources = local.table_and_index_arns
      },
    ]

    events = [
      {
        sid       = "OrderlyTables"
        actions   = local.dynamodb_data_actions
        resources = local.table_and_index_arns
      },
      {
        sid       = "NotifyCustomers"
        actions   = ["sns:Publish"]
        resources = [aws_sns_topic.customer_notifications.arn]
      },
    ]

    "dlq-replay" = [
      {
        sid       = "OrdersQueueAndDlq"
        actions   = local.queue_admin_actions
        resources = local.orders_queue_arns
      },
    ]
  }

  # Not the code's calls: Lambda sends with the function's role to that function's own
  # failure queue (sqs:SendMessage only, on that queue only).
  function_delivery_permissions = {
    relay = [
      {
        # On-failure destination of the stream event source mappings.
        sid       = "StreamFailureDestination"
        actions   = ["sqs:SendMessage"]
        resources = [aws_sqs_queue.relay_failures.arn]
      },
    ]
    events = [
      {
        # Dead-letter queue of the asynchronous invocations (dead_letter_config).
        sid       = "DeadLetterQueue"
        actions   = ["sqs:SendMessage"]
        resources = [aws_sqs_queue.events_dlq.arn]
      },
    ]
  }
}

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

# Keyed by the static set of function names (not by function_permissions, whose ARNs
# would make every role wait for the state machine, which needs the saga-step role).
resource "aws_iam_role" "function" {
  for_each = local.functions

  name               = "${var.prefix}-${each.key}-lambda"
  description        = "Execution role of the ${var.prefix}-${each.key} function"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
}

data "aws_iam_policy_document" "function" {
  for_each = local.function_permissions

  dynamic "statement" {
    for_each = each.value
    content {
      sid       = statement.value.sid
      actions   = statement.value.actions
      resources = statement.value.resources
    }
  }

  dynamic "statement" {
    for_each = lookup(local.function_delivery_permissions, each.key, [])
    content {
      sid       = statement.value.sid
      actions   = statement.value.actions
      resources = statement.value.resources
    }
  }

  # Housekeeping, the same for every function.
  statement {
    sid       = "OwnLogGroup"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${local.function_log_group_arns[each.key]}:*"]
  }

  statement {
    # X-Ray's write actions have no resource type: IAM only accepts "*".
    sid       = "Tracing"
    actions   = ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]
    resources = ["*"]
  }

  statement {
    # The environment, the tables, queues and topics are encrypted with the stack key.
    sid       = "StackKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.main.arn]
  }
}

resource "aws_iam_role_policy" "function" {
  for_each = local.function_permissions

  name   = "${var.prefix}-${each.key}"
  role   = aws_iam_role.function[each.key].id
  policy = data.aws_iam_policy_document.function[each.key].json
}
