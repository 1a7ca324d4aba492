# One Orderly function: a Rust bootstrap for the provided.al2023 runtime, its encrypted
# log group, X-Ray tracing, and (for asynchronously invoked functions) a dead-letter queue.

resource "aws_cloudwatch_log_group" "this" {
  name              = "/aws/lambda/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_117:No VPC on purpose: every dependency (DynamoDB, SQS, Step Functions, EventBridge, SNS) is an AWS API reached over TLS with IAM auth; a VPC would add NAT gateways or five interface endpoints and cold-start cost and protect nothing the function can reach.
  #checkov:skip=CKV_AWS_272:The zips are built from source by scripts/lambda-build.sh and uploaded directly by Terraform (source_code_hash pins their content); Lambda code signing only verifies AWS Signer jobs on S3 objects, which this pipeline does not produce.
  function_name    = var.name
  description      = var.description
  role             = var.role_arn
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.architecture]
  filename         = var.package
  source_code_hash = filebase64sha256(var.package)
  memory_size      = var.memory_mb
  timeout          = var.timeout_seconds
  kms_key_arn      = var.kms_key_arn

  reserved_concurrent_executions = var.reserved_concurrency

  environment {
    variables = var.environment
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    # The bootstrap already writes one JSON object per line (with orderId); JSON makes
    # Lambda's own START/END/REPORT lines JSON too, so Logs Insights reads both alike.
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.this.name
  }

  dynamic "dead_letter_config" {
    for_each = var.invoked_asynchronously ? [var.dead_letter_queue_arn] : []
    content {
      target_arn = dead_letter_config.value
    }
  }

  lifecycle {
    precondition {
      condition     = !var.invoked_asynchronously || var.dead_letter_queue_arn != null
      error_message = "An asynchronously invoked function needs a dead_letter_queue_arn."
    }
  }
}

resource "aws_lambda_function_event_invoke_config" "this" {
  count = var.invoked_asynchronously ? 1 : 0

  function_name                = aws_lambda_function.this.function_name
  maximum_retry_attempts       = var.async_maximum_retry_attempts
  maximum_event_age_in_seconds = var.async_maximum_event_age_seconds
}
