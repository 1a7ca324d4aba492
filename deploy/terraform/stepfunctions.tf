# The saga. Its definition is generated from the saga in orderly-core (`orderly asl`
# writes saga.asl.json; a test fails when the committed file is stale), so the state
# machine and the local engine take the same steps.
#
# STANDARD, not EXPRESS: the intake starts one execution per order, named by the order
# id, and relies on Step Functions refusing a second execution of the same name (a
# duplicate SQS delivery or a replayed dead letter must not run the saga twice). Standard
# workflows dedupe execution names for 90 days; Express workflows do not dedupe names at
# all. Standard executions are also exactly-once per state and their failures show as
# ExecutionsFailed, which the failure-rate alarm counts.

resource "aws_cloudwatch_log_group" "saga" {
  name              = "/aws/vendedlogs/states/${var.prefix}-saga"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
}

resource "aws_sfn_state_machine" "saga" {
  name     = "${var.prefix}-saga"
  type     = "STANDARD"
  role_arn = aws_iam_role.saga.arn

  definition = templatefile("${path.module}/saga.asl.json", { saga_step_function_arn = module.saga_step.arn })

  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.saga.arn}:*"
    include_execution_data = true
    level                  = "ALL"
  }

  tracing_configuration {
    enabled = true
  }

  depends_on = [aws_iam_role_policy.saga]
}

data "aws_iam_policy_document" "states_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["states.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "saga" {
  name               = "${var.prefix}-saga-states"
  description        = "Role of the ${var.prefix}-saga state machine: invokes saga-step only"
  assume_role_policy = data.aws_iam_policy_document.states_assume.json
}

data "aws_iam_policy_document" "saga" {
  statement {
    sid       = "InvokeSagaStepOnly"
    actions   = ["lambda:InvokeFunction"]
    resources = [module.saga_step.arn, "${module.saga_step.arn}:*"]
  }

  statement {
    # Execution logs go through CloudWatch Logs vended log delivery, whose actions have no
    # resource type (IAM only accepts "*").
    sid = "VendedLogDelivery"
    actions = [
      "logs:CreateLogDelivery",
      "logs:DeleteLogDelivery",
      "logs:DescribeLogGroups",
      "logs:DescribeResourcePolicies",
      "logs:GetLogDelivery",
      "logs:ListLogDeliveries",
      "logs:PutResourcePolicy",
      "logs:UpdateLogDelivery",
    ]
    resources = ["*"]
  }

  statement {
    # X-Ray's actions have no resource type: IAM only accepts "*".
    sid       = "Tracing"
    actions   = ["xray:GetSamplingRules", "xray:GetSamplingTargets", "xray:PutTelemetryRecords", "xray:PutTraceSegments"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "saga" {
  name   = "${var.prefix}-saga-states"
  role   = aws_iam_role.saga.id
  policy = data.aws_iam_policy_document.saga.json
}
