# The REST API: every path goes to the api function (Lambda proxy), which serves the
# whole router. API Gateway adds what belongs at the edge: API keys with a usage plan
# (throttling), an optional Cognito authorizer, validation of POST /orders against the
# JSON schema generated from the Rust request type (create_order.schema.json, so gateway
# and code agree), CORS preflights, access logs and X-Ray.

locals {
  api_authorization = var.cognito_user_pool_arn == null ? "NONE" : "COGNITO_USER_POOLS"
  api_authorizer_id = var.cognito_user_pool_arn == null ? null : aws_api_gateway_authorizer.cognito[0].id

  # Path -> resource id. "/orders" has its own resource so POST /orders can be validated;
  # every other method and path reaches the function through ANY (root, /orders and
  # {proxy+}).
  api_resources = {
    root   = aws_api_gateway_rest_api.api.root_resource_id
    orders = aws_api_gateway_resource.orders.id
    proxy  = aws_api_gateway_resource.proxy.id
  }

  cors_any_origin     = contains(var.cors_allowed_origins, "*")
  cors_default_origin = local.cors_any_origin ? "*" : var.cors_allowed_origins[0]
  cors_allow_headers  = "Content-Type,Authorization,X-Api-Key,Idempotency-Key,X-Amz-Date,X-Amz-Security-Token"
  cors_allow_methods  = "DELETE,GET,OPTIONS,POST,PUT"

  # A preflight from another allowed origin gets that origin back (a static header can
  # name only one).
  cors_origin_template = local.cors_any_origin ? "" : join("\n", [
    "#set($origin = $input.params().header.get(\"Origin\"))",
    "#if(\"$!origin\" == \"\")#set($origin = $input.params().header.get(\"origin\"))#end",
    "#set($allowed = ${jsonencode(var.cors_allowed_origins)})",
    "#if($allowed.contains($origin))#set($context.responseOverride.header.Access-Control-Allow-Origin = $origin)#end",
  ])
}

resource "aws_api_gateway_rest_api" "api" {
  name           = "${var.prefix}-api"
  description    = "Orderly order API (${var.prefix})"
  api_key_source = "HEADER"

  endpoint_configuration {
    types = ["REGIONAL"]
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_api_gateway_resource" "orders" {
  rest_api_id = aws_api_gateway_rest_api.api.id
  parent_id   = aws_api_gateway_rest_api.api.root_resource_id
  path_part   = "orders"
}

resource "aws_api_gateway_resource" "proxy" {
  rest_api_id = aws_api_gateway_rest_api.api.id
  parent_id   = aws_api_gateway_rest_api.api.root_resource_id
  path_part   = "{proxy+}"
}

# --- request validation ----------------------------------------------------------------

resource "aws_api_gateway_model" "create_order" {
  rest_api_id  = aws_api_gateway_rest_api.api.id
  name         = "CreateOrder"
  description  = "POST /orders body (generated from the Rust request type)"
  content_type = "application/json"
  schema       = file("${path.module}/create_order.schema.json")
}

resource "aws_api_gateway_request_validator" "body" {
  rest_api_id                 = aws_api_gateway_rest_api.api.id
  name                        = "body-and-parameters"
  validate_request_body       = true
  validate_request_parameters = true
}

resource "aws_api_gateway_request_validator" "parameters" {
  rest_api_id                 = aws_api_gateway_rest_api.api.id
  name                        = "parameters"
  validate_request_body       = false
  validate_request_parameters = true
}

# --- authorizer (optional) -------------------------------------------------------------

resource "aws_api_gateway_authorizer" "cognito" {
  count = var.cognito_user_pool_arn == null ? 0 : 1

  name            = "${var.prefix}-cognito"
  rest_api_id     = aws_api_gateway_rest_api.api.id
  type            = "COGNITO_USER_POOLS"
  provider_arns   = [var.cognito_user_pool_arn]
  identity_source = "method.request.header.Authorization"
}

# --- methods and the Lambda proxy integration ------------------------------------------

resource "aws_api_gateway_method" "create_order" {
  rest_api_id          = aws_api_gateway_rest_api.api.id
  resource_id          = aws_api_gateway_resource.orders.id
  http_method          = "POST"
  authorization        = local.api_authorization
  authorizer_id        = local.api_authorizer_id
  api_key_required     = true
  request_validator_id = aws_api_gateway_request_validator.body.id

  request_models = {
    "application/json" = aws_api_gateway_model.create_order.name
  }
}

resource "aws_api_gateway_integration" "create_order" {
  rest_api_id             = aws_api_gateway_rest_api.api.id
  resource_id             = aws_api_gateway_resource.orders.id
  http_method             = aws_api_gateway_method.create_order.http_method
  type                    = "AWS_PROXY"
  integration_http_method = "POST"
  uri                     = module.api.invoke_arn
  timeout_milliseconds    = 29000
}

resource "aws_api_gateway_method" "any" {
  for_each = local.api_resources

  rest_api_id          = aws_api_gateway_rest_api.api.id
  resource_id          = each.value
  http_method          = "ANY"
  authorization        = local.api_authorization
  authorizer_id        = local.api_authorizer_id
  api_key_required     = true
  request_validator_id = aws_api_gateway_request_validator.parameters.id
  request_parameters   = each.key == "proxy" ? { "method.request.path.proxy" = true } : {}
}

resource "aws_api_gateway_integration" "any" {
  for_each = local.api_resources

  rest_api_id             = aws_api_gateway_rest_api.api.id
  resource_id             = each.value
  http_method             = aws_api_gateway_method.any[each.key].http_method
  type                    = "AWS_PROXY"
  integration_http_method = "POST"
  uri                     = module.api.invoke_arn
  timeout_milliseconds    = 29000
}

resource "aws_lambda_permission" "api_gateway" {
  statement_id   = "AllowApiGateway"
  action         = "lambda:InvokeFunction"
  function_name  = module.api.function_name
  principal      = "apigateway.amazonaws.com"
  source_arn     = "${aws_api_gateway_rest_api.api.execution_arn}/*/*"
  source_account = local.account_id
}

# --- CORS: preflights answered by API Gateway (no API key: browsers send none) ---------

resource "aws_api_gateway_method" "cors" {
  for_each = local.api_resources

  rest_api_id          = aws_api_gateway_rest_api.api.id
  resource_id          = each.value
  http_method          = "OPTIONS"
  authorization        = "NONE"
  api_key_required     = false
  request_validator_id = aws_api_gateway_request_validator.parameters.id
}

resource "aws_api_gateway_integration" "cors" {
  for_each = local.api_resources

  rest_api_id = aws_api_gateway_rest_api.api.id
  resource_id = each.value
  http_method = aws_api_gateway_method.cors[each.key].http_method
  type        = "MOCK"

  request_templates = {
    "application/json" = jsonencode({ statusCode = 200 })
  }
}

resource "aws_api_gateway_method_response" "cors" {
  for_each = local.api_resources

  rest_api_id = aws_api_gateway_rest_api.api.id
  resource_id = each.value
  http_method = aws_api_gateway_method.cors[each.key].http_method
  status_code = "200"

  response_parameters = {
    "method.response.header.Access-Control-Allow-Origin"  = true
    "method.response.header.Access-Control-Allow-Headers" = true
    "method.response.header.Access-Control-Allow-Methods" = true
    "method.response.header.Access-Control-Max-Age"       = true
    "method.response.header.Vary"                         = true
  }
}

resource "aws_api_gateway_integration_response" "cors" {
  for_each = local.api_resources

  rest_api_id = aws_api_gateway_rest_api.api.id
  resource_id = each.value
  http_method = aws_api_gateway_method.cors[each.key].http_method
  status_code = aws_api_gateway_method_response.cors[each.key].status_code

  response_parameters = {
    "method.response.header.Access-Control-Allow-Origin"  = "'${local.cors_default_origin}'"
    "method.response.header.Access-Control-Allow-Headers" = "'${local.cors_allow_headers}'"
    "method.response.header.Access-Control-Allow-Methods" = "'${local.cors_allow_methods}'"
    "method.response.header.Access-Control-Max-Age"       = "'600'"
    "method.response.header.Vary"                         = "'Origin'"
  }

  response_templates = {
    "application/json" = local.cors_origin_template
  }

  depends_on = [aws_api_gateway_integration.cors]
}

# Errors API Gateway answers itself (missing API key, throttling, invalid body) carry the
# CORS header too, and an invalid body answers in the API's error shape.
resource "aws_api_gateway_gateway_response" "cors" {
  for_each = toset(["DEFAULT_4XX", "DEFAULT_5XX"])

  rest_api_id   = aws_api_gateway_rest_api.api.id
  response_type = each.key

  response_parameters = {
    "gatewayresponse.header.Access-Control-Allow-Origin" = "'${local.cors_default_origin}'"
  }
}

resource "aws_api_gateway_gateway_response" "bad_request_body" {
  rest_api_id   = aws_api_gateway_rest_api.api.id
  response_type = "BAD_REQUEST_BODY"
  status_code   = "400"

  response_parameters = {
    "gatewayresponse.header.Access-Control-Allow-Origin" = "'${local.cors_default_origin}'"
  }

  response_templates = {
    "application/json" = "{\"error\": \"validation_failed\", \"message\": \"The request body does not match the order schema.\", \"details\": [{\"message\": \"$util.escapeJavaScript($context.error.validationErrorString)\"}]}"
  }
}

# --- deployment, stage, logging --------------------------------------------------------

resource "aws_api_gateway_deployment" "api" {
  rest_api_id = aws_api_gateway_rest_api.api.id

  triggers = {
    redeployment = sha1(jsonencode([
      file("${path.module}/create_order.schema.json"),
      aws_api_gateway_resource.orders,
      aws_api_gateway_resource.proxy,
      aws_api_gateway_model.create_order,
      aws_api_gateway_request_validator.body,
      aws_api_gateway_request_validator.parameters,
      aws_api_gateway_method.create_order,
      aws_api_gateway_integration.create_order,
      aws_api_gateway_method.any,
      aws_api_gateway_integration.any,
      aws_api_gateway_method.cors,
      aws_api_gateway_integration.cors,
      aws_api_gateway_integration_response.cors,
      aws_api_gateway_gateway_response.cors,
      aws_api_gateway_gateway_response.bad_request_body,
      aws_api_gateway_authorizer.cognito,
    ]))
  }

  lifecycle {
    create_before_destroy = true
  }

  depends_on = [
    aws_api_gateway_integration.create_order,
    aws_api_gateway_integration.any,
    aws_api_gateway_integration_response.cors,
  ]
}

resource "aws_cloudwatch_log_group" "api_access" {
  name              = "/aws/apigateway/${var.prefix}-api/access"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
}

# Created here (rather than by API Gateway on first use) so execution logs get the
# stack's retention and key too.
resource "aws_cloudwatch_log_group" "api_execution" {
  name              = "API-Gateway-Execution-Logs_${aws_api_gateway_rest_api.api.id}/${var.api_stage_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
}

resource "aws_api_gateway_stage" "api" {
  #checkov:skip=CKV_AWS_120:No response cache on purpose: responses are per user and order status changes within seconds as the saga runs; a cache would serve stale orders and could replay one caller's response to another.
  #checkov:skip=CKV2_AWS_29:WAF is optional (var.waf_web_acl_arn associates an existing web ACL with this stage): its rules and cost are the operator's choice; without it every method still requires an API key and the usage plan and stage throttle every caller.
  #checkov:skip=CKV2_AWS_77:This stack creates no web ACL: the optional association (var.waf_web_acl_arn) attaches the operator's own, whose managed rule groups (AWSManagedRulesKnownBadInputsRuleSet covers Log4j) are theirs to choose; the backend is Rust and runs no Java or Log4j.
  #checkov:skip=CKV2_AWS_51:Client certificates authenticate API Gateway to HTTP backends; the only backend here is a Lambda proxy integration, which API Gateway invokes with IAM (the lambda permission), so there is nothing for a certificate to authenticate.
  rest_api_id          = aws_api_gateway_rest_api.api.id
  deployment_id        = aws_api_gateway_deployment.api.id
  stage_name           = var.api_stage_name
  xray_tracing_enabled = true

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.api_access.arn
    format = jsonencode({
      requestId          = "$context.requestId"
      extendedRequestId  = "$context.extendedRequestId"
      requestTime        = "$context.requestTimeEpoch"
      ip                 = "$context.identity.sourceIp"
      userAgent          = "$context.identity.userAgent"
      apiKeyId           = "$context.identity.apiKeyId"
      user               = "$context.authorizer.claims.sub"
      httpMethod         = "$context.httpMethod"
      resourcePath       = "$context.resourcePath"
      path               = "$context.path"
      protocol           = "$context.protocol"
      status             = "$context.status"
      responseLength     = "$context.responseLength"
      responseLatency    = "$context.responseLatency"
      integrationLatency = "$context.integrationLatency"
      integrationStatus  = "$context.integrationStatus"
      errorMessage       = "$context.error.message"
      validationError    = "$context.error.validationErrorString"
      xrayTraceId        = "$context.xrayTraceId"
    })
  }

  depends_on = [aws_api_gateway_account.this, aws_cloudwatch_log_group.api_execution]
}

resource "aws_api_gateway_method_settings" "all" {
  #checkov:skip=CKV_AWS_225:Caching is off on purpose (see the stage): order responses are per user and change within seconds.
  rest_api_id = aws_api_gateway_rest_api.api.id
  stage_name  = aws_api_gateway_stage.api.stage_name
  method_path = "*/*"

  settings {
    metrics_enabled        = true
    logging_level          = var.api_logging_level
    data_trace_enabled     = false
    throttling_rate_limit  = var.api_throttle_rate_limit
    throttling_burst_limit = var.api_throttle_burst_limit
    caching_enabled        = false
    cache_data_encrypted   = true
  }
}

resource "aws_wafv2_web_acl_association" "api" {
  count = var.waf_web_acl_arn == null ? 0 : 1

  resource_arn = aws_api_gateway_stage.api.arn
  web_acl_arn  = var.waf_web_acl_arn
}

# --- API keys and the usage plan -------------------------------------------------------

resource "aws_api_gateway_usage_plan" "default" {
  name        = "${var.prefix}-default"
  description = "Orderly API: ${var.api_throttle_rate_limit} rps, burst ${var.api_throttle_burst_limit}, per key"

  api_stages {
    api_id = aws_api_gateway_rest_api.api.id
    stage  = aws_api_gateway_stage.api.stage_name
  }

  throttle_settings {
    rate_limit  = var.api_throttle_rate_limit
    burst_limit = var.api_throttle_burst_limit
  }
}

resource "aws_api_gateway_api_key" "default" {
  name        = "${var.prefix}-default"
  description = "Default API key of ${var.prefix} (more keys: add them to the ${var.prefix}-default usage plan)"
  enabled     = true
}

resource "aws_api_gateway_usage_plan_key" "default" {
  key_id        = aws_api_gateway_api_key.default.id
  key_type      = "API_KEY"
  usage_plan_id = aws_api_gateway_usage_plan.default.id
}

# --- the region's API Gateway logging role (once per account and region) ---------------

data "aws_iam_policy_document" "apigateway_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["apigateway.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "apigateway_cloudwatch" {
  count = var.manage_api_gateway_account ? 1 : 0

  name               = "${var.prefix}-apigateway-cloudwatch"
  description        = "Lets API Gateway write access and execution logs (account setting of the region)"
  assume_role_policy = data.aws_iam_policy_document.apigateway_assume.json
}

resource "aws_iam_role_policy_attachment" "apigateway_cloudwatch" {
  count = var.manage_api_gateway_account ? 1 : 0

  role       = aws_iam_role.apigateway_cloudwatch[0].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
}

resource "aws_api_gateway_account" "this" {
  count = var.manage_api_gateway_account ? 1 : 0

  cloudwatch_role_arn = aws_iam_role.apigateway_cloudwatch[0].arn

  depends_on = [aws_iam_role_policy_attachment.apigateway_cloudwatch]
}
