# The five tables of crates/orderly-aws/src/dynamo/schema.rs: on-demand, point-in-time
# recovery, encrypted with the stack key, protected from deletion. Every key attribute is
# a string.

# Orders: one item per order. The three indexes list newest first (createdKey sorts by
# creation time): by user, by status, and all orders (kind is the same on every order).
# The stream (old and new images) feeds the relay, which queues an order's processing
# message: accepting an order and queuing its work cannot come apart.
resource "aws_dynamodb_table" "orders" {
  name                        = "${var.prefix}-orders"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "orderId"
  deletion_protection_enabled = var.deletion_protection
  stream_enabled              = true
  stream_view_type            = "NEW_AND_OLD_IMAGES"

  attribute {
    name = "orderId"
    type = "S"
  }
  attribute {
    name = "userId"
    type = "S"
  }
  attribute {
    name = "status"
    type = "S"
  }
  attribute {
    name = "kind"
    type = "S"
  }
  attribute {
    name = "createdKey"
    type = "S"
  }

  global_secondary_index {
    name            = "byUser"
    hash_key        = "userId"
    range_key       = "createdKey"
    projection_type = "ALL"
  }
  global_secondary_index {
    name            = "byStatus"
    hash_key        = "status"
    range_key       = "createdKey"
    projection_type = "ALL"
  }
  global_secondary_index {
    name            = "all"
    hash_key        = "kind"
    range_key       = "createdKey"
    projection_type = "ALL"
  }

  point_in_time_recovery {
    enabled = true
  }
  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.main.arn
  }
}

# The audit log: every domain event of an order (sk = time#event id), oldest first. Its
# stream (new images) is how events reach EventBridge.
resource "aws_dynamodb_table" "events" {
  name                        = "${var.prefix}-events"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "orderId"
  range_key                   = "sk"
  deletion_protection_enabled = var.deletion_protection
  stream_enabled              = true
  stream_view_type            = "NEW_IMAGE"

  attribute {
    name = "orderId"
    type = "S"
  }
  attribute {
    name = "sk"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }
  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.main.arn
  }
}

# The catalogue with available stock (reservations are conditional updates).
resource "aws_dynamodb_table" "inventory" {
  name                        = "${var.prefix}-inventory"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "productId"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "productId"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }
  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.main.arn
  }
}

# Idempotency-Key records; DynamoDB deletes them after their "ttl" (epoch seconds).
resource "aws_dynamodb_table" "idempotency" {
  name                        = "${var.prefix}-idempotency"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "key"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "key"
    type = "S"
  }

  ttl {
    attribute_name = "ttl"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }
  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.main.arn
  }
}

# Saga state: one item per completed step or compensation (sk), which makes every step
# idempotent per order and step.
resource "aws_dynamodb_table" "saga" {
  name                        = "${var.prefix}-saga"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "orderId"
  range_key                   = "sk"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "orderId"
    type = "S"
  }
  attribute {
    name = "sk"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }
  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.main.arn
  }
}

locals {
  tables = {
    orders      = aws_dynamodb_table.orders
    events      = aws_dynamodb_table.events
    inventory   = aws_dynamodb_table.inventory
    idempotency = aws_dynamodb_table.idempotency
    saga        = aws_dynamodb_table.saga
  }

  # Every table and its indexes: what the data-plane grants in iam.tf cover.
  table_and_index_arns = flatten([for t in local.tables : [t.arn, "${t.arn}/index/*"]])
}
