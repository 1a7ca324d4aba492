#!/usr/bin/env python3
"""What a million orders cost on the serverless deployment, from the work of one order
counted on the emulator.

  ORDERLY_COST_OUT=target/aws-cost.json cargo test -p orderly-lambda --test it \
      the_aws_work_of_one_order_is_counted -- --include-ignored   (moto running)
  scripts/aws_cost.py target/aws-cost.json [--markdown]

The counts (DynamoDB, SQS, SNS, EventBridge, Step Functions requests; Lambda invocations;
state transitions; API requests) come from the test. What the emulator cannot count is an
assumption stated below: request units per DynamoDB call (items are under 1 KB, so a write
is 1 WRU, a transactional write 2 per item, a strongly consistent read 1 RRU, a
transactional read 2), Lambda duration and memory, log bytes per invocation, and X-Ray
sampling. Prices are AWS's public list prices for us-east-1 as published on the AWS pricing
pages on 2025-11-01 (on-demand, after free tiers), written here, not fetched.
"""

import json
import sys

PRICES = {
    "date": "2025-11-01 (aws.amazon.com/pricing, us-east-1, list prices)",
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_second_arm": 0.0000133334,
    "apigw_rest_request": 3.50 / 1e6,
    "dynamodb_wru": 0.625 / 1e6,
    "dynamodb_rru": 0.125 / 1e6,
    "sqs_request": 0.40 / 1e6,
    "sns_publish": 0.50 / 1e6,
    "eventbridge_event": 1.00 / 1e6,
    "sfn_standard_transition": 0.025 / 1e3,
    "sfn_express_request": 1.00 / 1e6,
    "sfn_express_gb_second": 0.00001667,
    "logs_ingest_gb": 0.50,
    "xray_trace": 5.00 / 1e6,
}

ASSUMPTIONS = {
    # Lambda: 256 MB arm64; billed ms per invocation (the functions answer in a few ms
    # once warm; 20 ms covers the SDK round trips of a task).
    "lambda_memory_gb": 0.25,
    "lambda_billed_ms": 20,
    # Express: the execution lasts about as long as its tasks (64 MB billing minimum).
    "express_memory_gb": 0.064,
    "express_ms_per_task": 30,
    # CloudWatch Logs per invocation: START/END/REPORT platform lines (about 330 bytes)
    # plus the function's info lines and one EMF metrics line (about 450 bytes).
    "log_bytes_per_invocation": 780,
    # X-Ray: the API stage traces (xray_tracing_enabled); default sampling is 1 request a
    # second plus 5 %: at a million orders a day, about 5 % of API requests.
    "xray_sampled_share": 0.05,
}

# Request units per DynamoDB call (items under 1 KB; reads strongly consistent).
DYNAMO_UNITS = {
    "GetItem": ("rru", 1),
    "BatchGetItem": ("rru", 2),
    "Query": ("rru", 1),
    "Scan": ("rru", 1),
    "PutItem": ("wru", 1),
    "UpdateItem": ("wru", 1),
    "DeleteItem": ("wru", 1),
    # Transactions are priced per item (the `#items` counts): 2 units each, cancelled
    # ones included.
    "TransactGetItems": ("rru", 0),
    "TransactGetItems#items": ("rru", 2),
    "TransactWriteItems": ("wru", 0),
    "TransactWriteItems#items": ("wru", 2),
}


def cost(w, workflow):
    p, a = PRICES, ASSUMPTIONS
    lines = {}
    inv = sum(w["invocations"].values())
    lines["Lambda requests"] = inv * p["lambda_request"]
    lines["Lambda duration"] = (
        inv * a["lambda_memory_gb"] * a["lambda_billed_ms"] / 1000 * p["lambda_gb_second_arm"]
    )
    lines["API Gateway"] = w["api_requests"] * p["apigw_rest_request"]
    wru = rru = 0
    sqs = sns = other = 0
    for key, n in w["requests"].items():
        service, action = key.split(".", 1)
        if service == "dynamodb":
            kind, units = DYNAMO_UNITS.get(action, ("wru", 1))
            if kind == "wru":
                wru += n * units
            else:
                rru += n * units
        elif service == "amazonsqs":
            sqs += n
        elif service == "sns":
            sns += n
        elif service in ("awsevents", "awsstepfunctions", "dynamodbstreams"):
            pass  # priced by events and transitions below; stream reads by Lambda are free
        else:
            other += n
    # The Lambda event source mapping polls SQS for the intake function (a receive and a delete per
    # message at this volume).
    sqs += 2 * w["invocations"].get("intake", 0)
    lines["DynamoDB"] = wru * p["dynamodb_wru"] + rru * p["dynamodb_rru"]
    lines["SQS"] = sqs * p["sqs_request"]
    lines["SNS"] = sns * p["sns_publish"]
    lines["EventBridge"] = w["events"] * p["eventbridge_event"]
    tasks = w["invocations"].get("saga-step", 0)
    if workflow == "standard":
        lines["Step Functions"] = w["state_transitions"] * p["sfn_standard_transition"]
    else:
        secs = tasks * a["express_ms_per_task"] / 1000
        lines["Step Functions"] = p["sfn_express_request"] + max(secs, 0.1) * a[
            "express_memory_gb"
        ] * p["sfn_express_gb_second"]
    lines["CloudWatch Logs"] = inv * a["log_bytes_per_invocation"] / 1e9 * p["logs_ingest_gb"]
    lines["X-Ray"] = w["api_requests"] * a["xray_sampled_share"] * p["xray_trace"]
    assert other == 0, f"unpriced requests: {w['requests']}"
    return {k: v * 1e6 for k, v in lines.items()}, {"wru": wru, "rru": rru, "sqs": sqs}


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    report = json.load(open(sys.argv[1]))
    md = "--markdown" in sys.argv
    out = {}
    for name in ("fulfilled", "declined"):
        for wf in ("standard", "express"):
            lines, units = cost(report[name], wf)
            out[(name, wf)] = (lines, units)
    if md:
        heads = [f"{n} / {wf}" for (n, wf) in out]
        print("| per million orders (USD) | " + " | ".join(heads) + " |")
        print("|---|" + "---:|" * len(heads))
        keys = list(next(iter(out.values()))[0].keys())
        for k in keys:
            print(f"| {k} | " + " | ".join(f"{out[c][0][k]:.2f}" for c in out) + " |")
        print("| **total** | " + " | ".join(f"**{sum(out[c][0].values()):.2f}**" for c in out) + " |")
        return
    for (name, wf), (lines, units) in out.items():
        total = sum(lines.values())
        print(f"{name:9} {wf:8} ${total:7.2f} per million orders  "
              + ", ".join(f"{k} {v:.2f}" for k, v in lines.items()) + f"  ({units})")
    print(f"prices: {PRICES['date']}")


if __name__ == "__main__":
    main()
