#!/usr/bin/env python3
"""Cold start of the Lambda bootstraps, measured against a fake Lambda Runtime API.

For each run the script starts a fresh bootstrap process with AWS_LAMBDA_RUNTIME_API
pointing at a small HTTP server of its own on 127.0.0.1, and measures

  init          from spawn to the process's first `GET /2018-06-01/runtime/invocation/next`
                (the runtime is wired and ready for work: what Lambda bills as init);
  first invoke  from handing it the first event to its `POST .../response` (or `/error`).

The first event of the `api` function is an API Gateway `GET /health` (no store call). The
other functions get an event that their handler answers without reaching AWS (an empty
batch, or input it refuses), so the figure is the runtime's round trip, not a service's.
The AWS endpoint is 127.0.0.1:9 (nothing listens), the credentials are fixed, so nothing
leaves the machine.

  scripts/lambda_cold_start.py [--runs N] [--json] BOOTSTRAP...

BOOTSTRAP is a built function, e.g. target/lambda/orderly-api/bootstrap (from
scripts/lambda-build.sh) or target/lambda/orderly-api (from `cargo build --profile
lambda`); its name says which function it is. Prints p50/p90/max per function.
"""

import argparse
import http.server
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid

API_EVENT = {
    "resource": "/health",
    "path": "/health",
    "httpMethod": "GET",
    "headers": {"Host": "localhost"},
    "multiValueHeaders": {"Host": ["localhost"]},
    "queryStringParameters": None,
    "multiValueQueryStringParameters": None,
    "pathParameters": None,
    "stageVariables": None,
    "requestContext": {
        "resourcePath": "/health",
        "httpMethod": "GET",
        "path": "/prod/health",
        "stage": "prod",
        "requestId": "cold-start",
        "accountId": "123456789012",
        "identity": {"sourceIp": "127.0.0.1"},
    },
    "body": None,
    "isBase64Encoded": False,
}

FIRST_EVENTS = {
    "api": API_EVENT,
    "relay": {"Records": []},
    "intake": {"Records": []},
    "events": {"subscriber": "nobody", "event": {}},
    "saga-step": {"action": "ReserveInventory"},
    "dlq-replay": {"ids": "not-a-list"},
}


def function_of(path):
    name = os.path.basename(path)
    if name == "bootstrap":
        name = os.path.basename(os.path.dirname(path))
    name = name.removeprefix("orderly-")
    if name not in FIRST_EVENTS:
        sys.exit(f"{path}: cannot tell which function this is ({name})")
    return name


class Runtime(http.server.BaseHTTPRequestHandler):
    """The Runtime API: one event, then records the answer."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        st = self.server.state
        if not self.path.endswith("/runtime/invocation/next"):
            self.send_error(404)
            return
        now = time.perf_counter()
        with st["lock"]:
            first = st["next_at"] is None
            if first:
                st["next_at"] = now
        if not first:
            # Second poll: the answer came; keep the connection waiting until killed.
            st["done"].wait(30)
            self.send_error(500)
            return
        body = json.dumps(st["event"]).encode()
        st["sent_at"] = time.perf_counter()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Lambda-Runtime-Aws-Request-Id", st["request_id"])
        self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30000))
        self.send_header(
            "Lambda-Runtime-Invoked-Function-Arn",
            "arn:aws:lambda:us-east-1:123456789012:function:cold-start",
        )
        self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        st = self.server.state
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        if "/invocation/" in self.path:
            st["answered_at"] = time.perf_counter()
            st["kind"] = self.path.rsplit("/", 1)[-1]
            st["done"].set()
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # the killed bootstrap's connections reset: expected, not worth a traceback


def one_run(path, function):
    server = Server(("127.0.0.1", 0), Runtime)
    server.state = {
        "lock": threading.Lock(),
        "next_at": None,
        "sent_at": None,
        "answered_at": None,
        "kind": None,
        "done": threading.Event(),
        "event": FIRST_EVENTS[function],
        "request_id": str(uuid.uuid4()),
    }
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_address[1]}",
        "AWS_LAMBDA_FUNCTION_NAME": f"orderly-{function}",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": "cold-start",
        "AWS_LAMBDA_LOG_STREAM_NAME": "cold-start",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "ORDERLY_AWS_REGION": "us-east-1",
        "ORDERLY_AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "ORDERLY_AUTH_MODE": "gateway",
        "ORDERLY_LOG": "warn",
        # Lambda's images hold one CA bundle file; Debian's /etc/ssl/certs is ~150 files
        # that the TLS client would read one by one. Point it at the bundle, as on Lambda.
        "SSL_CERT_FILE": os.environ.get("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"),
    }
    t0 = time.perf_counter()
    proc = subprocess.Popen([path], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if not server.state["done"].wait(30):
            err = proc.stderr.read1(4000).decode(errors="replace") if proc.poll() is not None else ""
            raise RuntimeError(f"{function}: no answer within 30 s {err}")
    finally:
        proc.kill()
        proc.wait()
        server.shutdown()
        server.server_close()
    st = server.state
    return {
        "init_ms": (st["next_at"] - t0) * 1000,
        "first_invoke_ms": (st["answered_at"] - st["sent_at"]) * 1000,
        "answer": st["kind"],
    }


def summary(values):
    values = sorted(values)
    p = lambda q: values[min(len(values) - 1, int(q * len(values)))]
    return {"p50": statistics.median(values), "p90": p(0.9), "max": values[-1]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("bootstraps", nargs="+")
    args = ap.parse_args()
    if not 1 <= args.runs <= 10_000:
        sys.exit("--runs must be 1 to 10000")
    report = {}
    for path in args.bootstraps:
        function = function_of(path)
        runs = [one_run(path, function) for _ in range(args.runs)]
        report[function] = {
            "bootstrap": path,
            "bytes": os.path.getsize(path),
            "runs": args.runs,
            "init_ms": summary([r["init_ms"] for r in runs]),
            "first_invoke_ms": summary([r["first_invoke_ms"] for r in runs]),
            "answers": sorted({r["answer"] for r in runs}),
        }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for f, r in report.items():
        i, v = r["init_ms"], r["first_invoke_ms"]
        print(
            f"{f:11} init p50 {i['p50']:.2f} ms p90 {i['p90']:.2f} max {i['max']:.2f}; "
            f"first invoke p50 {v['p50']:.2f} ms p90 {v['p90']:.2f} ({'/'.join(r['answers'])}); "
            f"{r['bytes'] / 1e6:.1f} MB, {r['runs']} runs"
        )


if __name__ == "__main__":
    main()
