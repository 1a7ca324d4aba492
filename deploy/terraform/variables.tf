# ---------------------------------------------------------------------------------------
# Naming and placement
# ---------------------------------------------------------------------------------------

variable "aws_region" {
  description = "AWS region to deploy to. null: the provider's default chain (AWS_REGION, the profile)."
  type        = string
  default     = null
}

variable "prefix" {
  description = "Prefix of every resource name, exactly as the code expects it (ORDERLY_AWS_PREFIX): tables <prefix>-orders, -events, -inventory, -idempotency, -saga; queue <prefix>-orders with <prefix>-orders-dlq; functions <prefix>-<function>."
  type        = string
  default     = "orderly"

  validation {
    # The same rule the code applies to ORDERLY_AWS_PREFIX (crates/orderly-aws/src/deployment.rs).
    condition     = can(regex("^[A-Za-z0-9_-]{1,40}$", var.prefix))
    error_message = "prefix must be 1 to 40 letters, digits, '-' or '_'."
  }
}

variable "event_bus_name" {
  description = "Name of the custom EventBridge bus domain events are published to (ORDERLY_EVENT_BUS). null: the prefix, as the code defaults it."
  type        = string
  default     = null

  validation {
    condition     = var.event_bus_name == null || can(regex("^[A-Za-z0-9._-]{1,256}$", var.event_bus_name))
    error_message = "event_bus_name must be 1 to 256 letters, digits, '.', '-' or '_' (and not 'default')."
  }
}

variable "tags" {
  description = "Extra tags for every resource (merged into the provider's default_tags)."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------------------
# Lambda functions
# ---------------------------------------------------------------------------------------

variable "lambda_dist_dir" {
  description = "Directory holding the built function zips (<dir>/orderly-<function>/bootstrap.zip, as scripts/lambda-build.sh writes them), relative to the directory terraform runs in (deploy/terraform)."
  type        = string
  default     = "../../target/lambda"
}

variable "architecture" {
  description = "Instruction set of the functions; must match how the zips were built (scripts/lambda-build.sh builds x86_64, --arm64 builds for Graviton)."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be x86_64 or arm64."
  }
}

variable "lambda_memory_mb" {
  description = "Memory (MB) per function, overriding the defaults (api 512, relay 256, intake 256, saga-step 256, events 256, dlq-replay 256). Keys: api, relay, intake, saga-step, events, dlq-replay."
  type        = map(number)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.lambda_memory_mb : contains(["api", "relay", "intake", "saga-step", "events", "dlq-replay"], k) && v >= 128 && v <= 10240])
    error_message = "lambda_memory_mb keys must be function names (api, relay, intake, saga-step, events, dlq-replay) and values 128 to 10240."
  }
}

variable "lambda_timeout_seconds" {
  description = "Timeout (s) per function, overriding the defaults (api 25, relay 60, intake 30, saga-step 30, events 30, dlq-replay 300). The orders queue's visibility timeout is computed as 6 x the intake's."
  type        = map(number)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.lambda_timeout_seconds : contains(["api", "relay", "intake", "saga-step", "events", "dlq-replay"], k) && v >= 1 && v <= 900])
    error_message = "lambda_timeout_seconds keys must be function names (api, relay, intake, saga-step, events, dlq-replay) and values 1 to 900."
  }

  validation {
    # API Gateway gives up after 29 s; a longer api timeout only keeps a function busy
    # for a client that has already got a 504.
    condition     = lookup(var.lambda_timeout_seconds, "api", 25) <= 29
    error_message = "The api function's timeout must be at most 29 s (API Gateway's integration timeout)."
  }

  validation {
    # SQS caps the visibility timeout at 12 h: 6 x intake timeout must fit.
    condition     = lookup(var.lambda_timeout_seconds, "intake", 30) * 6 <= 43200
    error_message = "The intake function's timeout must be at most 7200 s (6 x timeout is the queue's visibility timeout, at most 12 h)."
  }
}

variable "log_level" {
  description = "Log filter of every function (ORDERLY_LOG, tracing EnvFilter syntax, e.g. \"info\" or \"orderly=debug,info\")."
  type        = string
  default     = "info"

  validation {
    condition     = length(trimspace(var.log_level)) > 0
    error_message = "log_level must not be empty."
  }
}

variable "log_retention_days" {
  description = "Retention of every log group (functions, state machine, API access logs), in days."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of the values CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  }
}

variable "intake_reserved_concurrency" {
  description = "Reserved concurrency of the intake (it starts Step Functions executions and runs cancellations: this caps the StartExecution rate and the load on DynamoDB). -1: unreserved."
  type        = number
  default     = 10

  validation {
    condition     = var.intake_reserved_concurrency == -1 || var.intake_reserved_concurrency >= 2
    error_message = "intake_reserved_concurrency must be -1 (unreserved) or at least 2 (the SQS event source's minimum concurrency)."
  }
}

variable "intake_max_concurrency" {
  description = "Maximum concurrency of the orders queue's event source mapping (scaling_config); keep it at or below intake_reserved_concurrency so the queue never throttles the function into retries."
  type        = number
  default     = 10

  validation {
    condition     = var.intake_max_concurrency >= 2 && var.intake_max_concurrency <= 1000
    error_message = "intake_max_concurrency must be 2 to 1000."
  }
}

variable "saga_step_reserved_concurrency" {
  description = "Reserved concurrency of saga-step (every saga task: caps the load on the payment provider and on DynamoDB; throttled tasks are retried by the state machine). -1: unreserved."
  type        = number
  default     = 50

  validation {
    condition     = var.saga_step_reserved_concurrency == -1 || var.saga_step_reserved_concurrency >= 1
    error_message = "saga_step_reserved_concurrency must be -1 (unreserved) or at least 1."
  }
}

variable "relay_max_retry_attempts" {
  description = "Retries of a failing batch from a table stream before its metadata goes to the relay's failure queue (<prefix>-relay-failures, alarmed). A record that is dropped there is an order whose processing message was not sent: keep this generous."
  type        = number
  default     = 50

  validation {
    condition     = var.relay_max_retry_attempts >= 0 && var.relay_max_retry_attempts <= 10000
    error_message = "relay_max_retry_attempts must be 0 to 10000."
  }
}

# ---------------------------------------------------------------------------------------
# Application tunables (read by the functions from their environment)
# ---------------------------------------------------------------------------------------

variable "idempotency_ttl_secs" {
  description = "How long a completed Idempotency-Key is remembered, in seconds (ORDERLY_IDEMPOTENCY_TTL_SECS, api)."
  type        = number
  default     = 86400

  validation {
    condition     = var.idempotency_ttl_secs >= 1 && var.idempotency_ttl_secs <= 31536000
    error_message = "idempotency_ttl_secs must be 1 to 31536000 (a year), as orderly serve accepts."
  }
}

variable "max_body_bytes" {
  description = "Largest request body in bytes; larger ones get 413 (ORDERLY_MAX_BODY_BYTES, api)."
  type        = number
  default     = 65536

  validation {
    condition     = var.max_body_bytes >= 256 && var.max_body_bytes <= 6291456
    error_message = "max_body_bytes must be 256 to 6291456 (6 MiB, a synchronous Lambda invocation's payload limit), as orderly serve accepts."
  }
}

variable "payment_decline_over" {
  description = "The payment simulator declines order totals above this amount, a decimal string with at most 2 decimals (ORDERLY_PAYMENT_DECLINE_OVER, saga-step)."
  type        = string
  default     = "10000.00"

  validation {
    condition     = can(regex("^[0-9]+(\\.[0-9]{1,2})?$", var.payment_decline_over))
    error_message = "payment_decline_over must be an amount such as \"10000.00\" (digits, at most 2 decimals)."
  }
}

variable "payment_decline_percent" {
  description = "Share of orders (0-100) the payment simulator declines, chosen by order id so retries never re-roll (ORDERLY_PAYMENT_DECLINE_PERCENT, saga-step)."
  type        = number
  default     = 0

  validation {
    condition     = var.payment_decline_percent >= 0 && var.payment_decline_percent <= 100 && floor(var.payment_decline_percent) == var.payment_decline_percent
    error_message = "payment_decline_percent must be a whole number from 0 to 100."
  }
}

# ---------------------------------------------------------------------------------------
# API Gateway
# ---------------------------------------------------------------------------------------

variable "api_stage_name" {
  description = "Name of the API Gateway stage (the first path segment of the API URL)."
  type        = string
  default     = "v1"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,128}$", var.api_stage_name))
    error_message = "api_stage_name must be 1 to 128 letters, digits, '-' or '_'."
  }
}

variable "api_throttle_rate_limit" {
  description = "Steady-state requests per second the usage plan (and the stage) allows: 100 rps is 6,000 orders/min; raise it (with the account's API Gateway quota) for more."
  type        = number
  default     = 100

  validation {
    condition     = var.api_throttle_rate_limit > 0
    error_message = "api_throttle_rate_limit must be positive."
  }
}

variable "api_throttle_burst_limit" {
  description = "Burst of requests the usage plan (and the stage) allows above the steady rate."
  type        = number
  default     = 200

  validation {
    condition     = var.api_throttle_burst_limit >= 1 && floor(var.api_throttle_burst_limit) == var.api_throttle_burst_limit
    error_message = "api_throttle_burst_limit must be a whole number, at least 1."
  }
}

variable "cognito_user_pool_arn" {
  description = "ARN of a Cognito user pool whose JWTs (Authorization header) every API method then requires, in addition to the API key. null: API key only."
  type        = string
  default     = null

  validation {
    condition     = var.cognito_user_pool_arn == null || can(regex("^arn:aws[a-zA-Z-]*:cognito-idp:[a-z0-9-]+:[0-9]{12}:userpool/.+$", var.cognito_user_pool_arn))
    error_message = "cognito_user_pool_arn must be a Cognito user pool ARN (arn:aws:cognito-idp:<region>:<account>:userpool/<id>) or null."
  }
}

variable "cors_allowed_origins" {
  description = "Origins browsers may call the API from (CORS). [\"*\"]: any origin; otherwise the preflight answers with the request's Origin when it is in this list."
  type        = list(string)
  default     = ["*"]

  validation {
    condition     = length(var.cors_allowed_origins) > 0 && alltrue([for o in var.cors_allowed_origins : o == "*" || can(regex("^https?://[^/\\s]+$", o))])
    error_message = "cors_allowed_origins must be [\"*\"] or a non-empty list of origins such as https://shop.example.com (scheme and host, no path)."
  }
}

variable "api_logging_level" {
  description = "API Gateway execution logging level of every method (ERROR or INFO). Access logs are always written."
  type        = string
  default     = "ERROR"

  validation {
    condition     = contains(["ERROR", "INFO"], var.api_logging_level)
    error_message = "api_logging_level must be ERROR or INFO."
  }
}

variable "manage_api_gateway_account" {
  description = "Create the role API Gateway uses to write logs and set it on the region's API Gateway account settings (needed once per account and region for access and execution logs). false: it is already set."
  type        = bool
  default     = true
}

variable "waf_web_acl_arn" {
  description = "ARN of a WAFv2 web ACL (REGIONAL scope) to associate with the API stage. null: none (throttling and API keys still apply)."
  type        = string
  default     = null
}

# ---------------------------------------------------------------------------------------
# Data protection and alarms
# ---------------------------------------------------------------------------------------

variable "deletion_protection" {
  description = "Deletion protection of the DynamoDB tables (turn it off before destroying the stack)."
  type        = bool
  default     = true
}

variable "kms_deletion_window_days" {
  description = "Waiting period before the stack's KMS key is deleted after destroy, in days."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "kms_deletion_window_days must be 7 to 30."
  }
}

variable "alarm_email" {
  description = "Email address subscribed to the alarms topic (the subscription must be confirmed from the mail). null: no subscription."
  type        = string
  default     = null

  validation {
    condition     = var.alarm_email == null || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alarm_email))
    error_message = "alarm_email must be an email address or null."
  }
}

variable "dlq_depth_alarm_threshold" {
  description = "The DLQ alarm fires when more than this many messages wait in <prefix>-orders-dlq."
  type        = number
  default     = 10
}

variable "saga_failure_rate_alarm_percent" {
  description = "The saga alarm fires when more than this percentage of the executions started in 5 minutes failed."
  type        = number
  default     = 30

  validation {
    condition     = var.saga_failure_rate_alarm_percent > 0 && var.saga_failure_rate_alarm_percent < 100
    error_message = "saga_failure_rate_alarm_percent must be between 0 and 100."
  }
}

variable "api_5xx_rate_alarm_percent" {
  description = "The API alarm fires when more than this percentage of the requests in 5 minutes answered 5xx."
  type        = number
  default     = 5

  validation {
    condition     = var.api_5xx_rate_alarm_percent > 0 && var.api_5xx_rate_alarm_percent < 100
    error_message = "api_5xx_rate_alarm_percent must be between 0 and 100."
  }
}
