# What invokes the functions besides API Gateway (apigateway.tf), EventBridge
# (eventbridge.tf) and Step Functions (stepfunctions.tf). dlq-replay has no trigger: an
# operator invokes it.

# relay <- the streams of the orders table (queue an order's processing) and of the
# events table (publish to EventBridge). The relay reports the first failed record
# (ReportBatchItemFailures), so a batch resumes there; a batch still failing after every
# retry goes to the failure queue (alarmed) instead of blocking the shard forever.
resource "aws_lambda_event_source_mapping" "relay" {
  for_each = {
    orders = aws_dynamodb_table.orders.stream_arn
    events = aws_dynamodb_table.events.stream_arn
  }

  event_source_arn                   = each.value
  function_name                      = module.relay.arn
  starting_position                  = "TRIM_HORIZON"
  batch_size                         = 100
  maximum_batching_window_in_seconds = 0
  parallelization_factor             = 1
  function_response_types            = ["ReportBatchItemFailures"]
  bisect_batch_on_function_error     = true
  maximum_retry_attempts             = var.relay_max_retry_attempts
  maximum_record_age_in_seconds      = -1

  destination_config {
    on_failure {
      destination_arn = aws_sqs_queue.relay_failures.arn
    }
  }

  depends_on = [aws_iam_role_policy.function]
}

# intake <- the orders queue, 10 messages a batch; failed messages are reported one by
# one (ReportBatchItemFailures) so the rest of the batch is not redelivered.
resource "aws_lambda_event_source_mapping" "intake" {
  event_source_arn        = aws_sqs_queue.orders.arn
  function_name           = module.intake.arn
  batch_size              = 10
  function_response_types = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = var.intake_max_concurrency
  }

  depends_on = [aws_iam_role_policy.function]
}
