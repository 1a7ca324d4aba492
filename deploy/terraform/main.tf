# Orderly on AWS: API Gateway -> Lambda -> DynamoDB (+ streams) -> SQS -> Step Functions
# -> EventBridge -> SNS, observed by CloudWatch. Every name is "<prefix>-...", exactly as
# crates/orderly-aws derives it from ORDERLY_AWS_PREFIX.

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition

  event_bus_name = coalesce(var.event_bus_name, var.prefix)

  # The functions of apps/orderly-lambda (each is "<prefix>-<name>", code orderly-<name>).
  functions = toset(["api", "relay", "intake", "saga-step", "events", "dlq-replay"])

  # Function name -> memory and timeout (defaults, overridable per function).
  function_memory_mb = merge({
    api          = 512
    relay        = 256
    intake       = 256
    "saga-step"  = 256
    events       = 256
    "dlq-replay" = 256
  }, var.lambda_memory_mb)

  function_timeout_seconds = merge({
    api          = 25
    relay        = 60
    intake       = 30
    "saga-step"  = 30
    events       = 30
    "dlq-replay" = 300
  }, var.lambda_timeout_seconds)

  # The log group of each function (created by the lambda_function module under this
  # name; IAM grants reference it by ARN so the roles need not wait for the module).
  function_log_group_arns = {
    for name in local.functions :
    name => "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/lambda/${var.prefix}-${name}"
  }

  # SQS: a consumer may hold a message for its whole timeout, plus Lambda's own retries
  # of the batch; AWS's rule is visibility >= 6 x the function timeout. Shorter and a
  # message could be delivered twice while the first delivery is still running.
  orders_visibility_timeout_seconds = 6 * local.function_timeout_seconds["intake"]
}
