variable "name" {
  description = "Function name (<prefix>-<function>); its log group is /aws/lambda/<name>."
  type        = string
}

variable "description" {
  description = "What the function does (shown in the console)."
  type        = string
}

variable "package" {
  description = "Path of the function's zip, <lambda_dist_dir>/orderly-<function>/bootstrap.zip (a cargo-lambda build for provided.al2023)."
  type        = string
}

variable "architecture" {
  description = "x86_64 or arm64; must match the build of the zip."
  type        = string

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be x86_64 or arm64."
  }
}

variable "memory_mb" {
  description = "Memory in MB (CPU scales with it)."
  type        = number
}

variable "timeout_seconds" {
  description = "Timeout in seconds."
  type        = number
}

variable "environment" {
  description = "Environment variables (what the bootstrap reads; see the table in docs/aws.md)."
  type        = map(string)
}

variable "role_arn" {
  description = "ARN of the function's execution role (one per function, iam.tf)."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key encrypting the environment variables and the log group."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the function's log group, in days."
  type        = number
}

variable "reserved_concurrency" {
  description = "Reserved concurrent executions; -1: unreserved (the account's pool)."
  type        = number
  default     = -1
}

variable "invoked_asynchronously" {
  description = "Whether the function is invoked asynchronously (e.g. by EventBridge): then failed invocations are retried by Lambda and dead-lettered to dead_letter_queue_arn."
  type        = bool
  default     = false
}

variable "dead_letter_queue_arn" {
  description = "SQS queue receiving asynchronous invocations that failed every retry (required when invoked_asynchronously)."
  type        = string
  default     = null
}

variable "async_maximum_retry_attempts" {
  description = "Lambda's retries of a failed asynchronous invocation (0-2); used only when invoked_asynchronously."
  type        = number
  default     = 2

  validation {
    condition     = var.async_maximum_retry_attempts >= 0 && var.async_maximum_retry_attempts <= 2
    error_message = "async_maximum_retry_attempts must be 0 to 2."
  }
}

variable "async_maximum_event_age_seconds" {
  description = "How long an asynchronous invocation may wait (throttled or retried) before it is dead-lettered (60-21600 s); used only when invoked_asynchronously."
  type        = number
  default     = 21600

  validation {
    condition     = var.async_maximum_event_age_seconds >= 60 && var.async_maximum_event_age_seconds <= 21600
    error_message = "async_maximum_event_age_seconds must be 60 to 21600."
  }
}
