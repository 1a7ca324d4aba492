# The six functions of apps/orderly-lambda. Environment variables are exactly what each
# bootstrap reads (docs/aws.md); deploy/checks/check_terraform.py checks them, the
# zip paths and the IAM grants against orderly.manifest.json.

module "api" {
  source = "./modules/lambda_function"
  #checkov:skip=CKV_AWS_115:Bounded upstream: the API Gateway usage plan and stage throttle (var.api_throttle_rate_limit/burst) cap the request rate; a reservation would only reject requests the gateway already admitted.
  #checkov:skip=CKV_AWS_116:Invoked synchronously by API Gateway (AWS_PROXY): the client receives the error; a dead-letter queue only applies to asynchronous invocations.

  name            = "${var.prefix}-api"
  description     = "Orderly REST API (the axum router of orderly serve, through lambda_http)"
  package         = "${var.lambda_dist_dir}/orderly-api/bootstrap.zip"
  architecture    = var.architecture
  memory_mb       = local.function_memory_mb["api"]
  timeout_seconds = local.function_timeout_seconds["api"]
  role_arn        = aws_iam_role.function["api"].arn
  kms_key_arn     = aws_kms_key.main.arn

  log_retention_days = var.log_retention_days

  environment = {
    ORDERLY_AWS_PREFIX           = var.prefix
    ORDERLY_LOG                  = var.log_level
    ORDERLY_IDEMPOTENCY_TTL_SECS = tostring(var.idempotency_ttl_secs)
    ORDERLY_MAX_BODY_BYTES       = tostring(var.max_body_bytes)
    # A key in flight is held no longer than the invocation that claimed it can run.
    ORDERLY_IDEMPOTENCY_LOCK_SECS = tostring(min(local.function_timeout_seconds["api"] + 5, 900))
    # Every method of the REST API requires an API key (and a Cognito token when a user
    # pool is configured); the function trusts that authorizer's identity.
    ORDERLY_AUTH_MODE = "gateway"
  }
}

module "relay" {
  source = "./modules/lambda_function"
  #checkov:skip=CKV_AWS_115:Bounded by construction: a DynamoDB stream event source runs one concurrent invocation per shard (parallelization_factor 1), so concurrency follows the two tables' shard counts.
  #checkov:skip=CKV_AWS_116:Invoked synchronously by the DynamoDB stream event source mappings, whose own on-failure destination (<prefix>-relay-failures) receives batches that failed every retry; a function DLQ only applies to asynchronous invocations.

  name            = "${var.prefix}-relay"
  description     = "Orderly relay: orders stream -> SQS processing messages, events stream -> EventBridge"
  package         = "${var.lambda_dist_dir}/orderly-relay/bootstrap.zip"
  architecture    = var.architecture
  memory_mb       = local.function_memory_mb["relay"]
  timeout_seconds = local.function_timeout_seconds["relay"]
  role_arn        = aws_iam_role.function["relay"].arn
  kms_key_arn     = aws_kms_key.main.arn

  log_retention_days = var.log_retention_days

  environment = {
    ORDERLY_AWS_PREFIX = var.prefix
    ORDERLY_LOG        = var.log_level
    ORDERLY_EVENT_BUS  = aws_cloudwatch_event_bus.orderly.name
  }
}

module "intake" {
  source = "./modules/lambda_function"
  #checkov:skip=CKV_AWS_116:Invoked synchronously by the SQS event source mapping; failed messages are retried by SQS and dead-lettered by the queue's redrive policy (<prefix>-orders-dlq after 3 receives), not by a function DLQ.

  name                 = "${var.prefix}-intake"
  description          = "Orderly intake: starts each order's saga (execution named by the order id), runs cancellations"
  package              = "${var.lambda_dist_dir}/orderly-intake/bootstrap.zip"
  architecture         = var.architecture
  memory_mb            = local.function_memory_mb["intake"]
  timeout_seconds      = local.function_timeout_seconds["intake"]
  role_arn             = aws_iam_role.function["intake"].arn
  kms_key_arn          = aws_kms_key.main.arn
  reserved_concurrency = var.intake_reserved_concurrency

  log_retention_days = var.log_retention_days

  environment = {
    ORDERLY_AWS_PREFIX        = var.prefix
    ORDERLY_LOG               = var.log_level
    ORDERLY_STATE_MACHINE_ARN = aws_sfn_state_machine.saga.arn
  }
}

module "saga_step" {
  source = "./modules/lambda_function"
  #checkov:skip=CKV_AWS_116:Invoked synchronously by Step Functions (lambda:invoke); failures are handled by the state machine's Retry and Catch (compensation), and a failed saga is a failed execution, alarmed.

  name                 = "${var.prefix}-saga-step"
  description          = "Orderly saga step: one saga action or compensation per Step Functions task"
  package              = "${var.lambda_dist_dir}/orderly-saga-step/bootstrap.zip"
  architecture         = var.architecture
  memory_mb            = local.function_memory_mb["saga-step"]
  timeout_seconds      = local.function_timeout_seconds["saga-step"]
  role_arn             = aws_iam_role.function["saga-step"].arn
  kms_key_arn          = aws_kms_key.main.arn
  reserved_concurrency = var.saga_step_reserved_concurrency

  log_retention_days = var.log_retention_days

  # ORDERLY_PAYMENT_ATTEMPTS and ORDERLY_PAYMENT_RETRY_BASE_MS stay at the code's
  # defaults: the state machine's Retry of ProcessPayment is generated from the same
  # defaults (saga.asl.json), and the function must agree with it on the last attempt.
  environment = {
    ORDERLY_AWS_PREFIX              = var.prefix
    ORDERLY_LOG                     = var.log_level
    ORDERLY_PAYMENT_DECLINE_OVER    = var.payment_decline_over
    ORDERLY_PAYMENT_DECLINE_PERCENT = tostring(var.payment_decline_percent)
  }
}

module "events" {
  source = "./modules/lambda_function"
  #checkov:skip=CKV_AWS_115:Invoked asynchronously by EventBridge: Lambda queues throttled asynchronous invocations and retries them for up to 6 h, and each event's work (audit append, fulfilment, one notification) is idempotent, so concurrency needs no reservation carved from the account pool.

  name                   = "${var.prefix}-events"
  description            = "Orderly events: audit log, fulfilment and customer notifications (SNS) per domain event"
  package                = "${var.lambda_dist_dir}/orderly-events/bootstrap.zip"
  architecture           = var.architecture
  memory_mb              = local.function_memory_mb["events"]
  timeout_seconds        = local.function_timeout_seconds["events"]
  role_arn               = aws_iam_role.function["events"].arn
  kms_key_arn            = aws_kms_key.main.arn
  invoked_asynchronously = true
  dead_letter_queue_arn  = aws_sqs_queue.events_dlq.arn

  log_retention_days = var.log_retention_days

  environment = {
    ORDERLY_AWS_PREFIX       = var.prefix
    ORDERLY_LOG              = var.log_level
    ORDERLY_NOTIFY_TOPIC_ARN = aws_sns_topic.customer_notifications.arn
  }
}

module "dlq_replay" {
  source = "./modules/lambda_function"
  #checkov:skip=CKV_AWS_115:Invoked on demand by an operator (aws lambda invoke), one run at a time; there is no event source that could fan it out.
  #checkov:skip=CKV_AWS_116:Invoked synchronously (RequestResponse) by an operator, who reads the result (what was moved back); it has no asynchronous trigger for a DLQ to catch.

  name            = "${var.prefix}-dlq-replay"
  description     = "Orderly DLQ replay: moves dead letters back to the orders queue (invoke with {} or {\"ids\": [...]})"
  package         = "${var.lambda_dist_dir}/orderly-dlq-replay/bootstrap.zip"
  architecture    = var.architecture
  memory_mb       = local.function_memory_mb["dlq-replay"]
  timeout_seconds = local.function_timeout_seconds["dlq-replay"]
  role_arn        = aws_iam_role.function["dlq-replay"].arn
  kms_key_arn     = aws_kms_key.main.arn

  log_retention_days = var.log_retention_days

  environment = {
    ORDERLY_AWS_PREFIX = var.prefix
    ORDERLY_LOG        = var.log_level
  }
}
