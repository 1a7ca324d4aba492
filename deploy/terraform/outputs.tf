output "api_url" {
  description = "Base URL of the API (stage URL); e.g. POST <api_url>/orders with header x-api-key."
  value       = aws_api_gateway_stage.api.invoke_url
}

output "api_key_id" {
  description = "Id of the default API key (its value: aws apigateway get-api-key --api-key <id> --include-value, or terraform output -raw api_key_value)."
  value       = aws_api_gateway_api_key.default.id
}

output "api_key_value" {
  description = "Value of the default API key (the x-api-key header)."
  value       = aws_api_gateway_api_key.default.value
  sensitive   = true
}

output "state_machine_arn" {
  description = "ARN of the saga state machine (ORDERLY_STATE_MACHINE_ARN of the intake)."
  value       = aws_sfn_state_machine.saga.arn
}

output "table_names" {
  description = "DynamoDB table names by role."
  value       = { for k, t in local.tables : k => t.name }
}

output "queue_urls" {
  description = "SQS queue URLs: the orders queue, its dead-letter queue, and the relay and events failure queues."
  value = {
    orders         = aws_sqs_queue.orders.url
    orders_dlq     = aws_sqs_queue.orders_dlq.url
    relay_failures = aws_sqs_queue.relay_failures.url
    events_dlq     = aws_sqs_queue.events_dlq.url
  }
}

output "topic_arns" {
  description = "SNS topic ARNs: customer notifications and alarms."
  value = {
    customer_notifications = aws_sns_topic.customer_notifications.arn
    alarms                 = aws_sns_topic.alarms.arn
  }
}

output "event_bus_name" {
  description = "Name of the EventBridge bus domain events are published to."
  value       = aws_cloudwatch_event_bus.orderly.name
}

output "function_names" {
  description = "Lambda function names by function (dlq-replay: aws lambda invoke --function-name <name> --payload '{}' out.json)."
  value       = local.function_names
}

output "dashboard_name" {
  description = "Name of the CloudWatch dashboard."
  value       = aws_cloudwatch_dashboard.orderly.dashboard_name
}

output "kms_key_arn" {
  description = "ARN of the stack's KMS key."
  value       = aws_kms_key.main.arn
}
