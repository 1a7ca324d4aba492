# One customer-managed key (rotated yearly) encrypts the tables, queues, topics, log
# groups and the functions' environment. The key policy lets the account's IAM policies
# decide who may use it (the function roles get kms:Decrypt/GenerateDataKey in iam.tf),
# and lets the AWS services that write encrypted data on the stack's behalf use it, each
# only for this account.

resource "aws_kms_key" "main" {
  description             = "${var.prefix}: tables, queues, topics, logs and function environment"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministersAndDelegatesToIam"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        # Log groups of the functions, the state machine and the API access logs.
        Sid       = "CloudWatchLogs"
        Effect    = "Allow"
        Principal = { Service = "logs.${local.region}.amazonaws.com" }
        Action    = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*"
          }
        }
      },
      {
        # EventBridge (rule dead-letter queue), CloudWatch alarms (the encrypted alarms
        # topic) and SNS/SQS themselves send to encrypted queues and topics.
        Sid    = "ServicesSendingToEncryptedQueuesAndTopics"
        Effect = "Allow"
        Principal = {
          Service = ["events.amazonaws.com", "cloudwatch.amazonaws.com", "sns.amazonaws.com", "sqs.amazonaws.com"]
        }
        Action   = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource = "*"
        Condition = {
          StringEquals = { "aws:SourceAccount" = local.account_id }
        }
      },
    ]
  })
}

resource "aws_kms_alias" "main" {
  name          = "alias/${var.prefix}"
  target_key_id = aws_kms_key.main.key_id
}
