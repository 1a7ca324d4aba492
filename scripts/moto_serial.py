"""Runs the moto AWS emulator with DynamoDB requests handled one at a time.

moto's own `moto_server` serves requests on many threads and its DynamoDB takes no lock
around a transaction, so two concurrent TransactWriteItems calls can both pass the same
condition check, which real DynamoDB (serializable transactions) never allows. This server
stays threaded (so an SQS long poll does not stall everyone else) but takes one global lock
around every DynamoDB and DynamoDB Streams request, which restores that isolation for the
tests that depend on it.

It also makes the docker-less Lambda report queued error results as function errors (see
canned_function_errors), so Step Functions tests can fail tasks with a chosen error name,
and counts requests for the cost model (see RequestCounter).

Usage: python moto_serial.py HOST PORT
"""

import io
import json
import os
import sys
import threading
import urllib.parse

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.server import MotoRequestHandler
from werkzeug.serving import run_simple

_DYNAMO_LOCK = threading.Lock()


class SerialDynamo:
    """WSGI middleware: DynamoDB calls (JSON protocol, X-Amz-Target DynamoDB_*) run alone."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith("DynamoDB"):
            return self.app(environ, start_response)
        with _DYNAMO_LOCK:
            # Materialise the body inside the lock: WSGI apps may answer lazily.
            return list(self.app(environ, start_response))


class RequestCounter:
    """WSGI middleware: counts the requests that mention a watched marker (a test's resource
    name prefix), by service and action, so a test can count what one order costs while
    other tests share the emulator.

      POST /orderly-counts/watch/<marker>   start counting (from zero) for <marker>
      GET  /orderly-counts/<marker>         {"dynamodb.PutItem": 3, ...}
    """

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.counts = {}  # marker -> {key: n}

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/orderly-counts/"):
            return self.control(environ, start_response, path[len("/orderly-counts/"):])
        with self.lock:
            markers = list(self.counts)
        if markers:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(body)
            text = body.decode("utf-8", "replace") + environ.get("QUERY_STRING", "") + path
            text = urllib.parse.unquote_plus(text)
            hits = [m for m in markers if m in text]
            if hits:
                key = self.key(environ, body)
                items = 0
                if key in ("dynamodb.TransactWriteItems", "dynamodb.TransactGetItems"):
                    try:
                        items = len(json.loads(body).get("TransactItems", []))
                    except ValueError:
                        items = 0
                with self.lock:
                    for m in hits:
                        c = self.counts[m]
                        c[key] = c.get(key, 0) + 1
                        if items:
                            c[key + "#items"] = c.get(key + "#items", 0) + items
        return self.app(environ, start_response)

    @staticmethod
    def key(environ, body):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target:  # JSON protocols: DynamoDB_20120810.PutItem, AWSEvents.PutEvents, ...
            service, _, action = target.partition(".")
            service = service.split("_")[0].lower()
            return f"{service}.{action}"
        auth = environ.get("HTTP_AUTHORIZATION", "")
        service = "unknown"
        if "Credential=" in auth:
            parts = auth.split("Credential=", 1)[1].split("/")
            if len(parts) > 3:
                service = parts[3]
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        action = form.get("Action", ["?"])[0]
        return f"{service}.{action}"

    def control(self, environ, start_response, rest):
        if environ["REQUEST_METHOD"] == "POST" and rest.startswith("watch/"):
            with self.lock:
                self.counts[rest[len("watch/"):]] = {}
            out = b"{}"
        else:
            with self.lock:
                out = json.dumps(self.counts.get(rest, {}), sort_keys=True).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(out)))])
        return [out]


def canned_function_errors() -> None:
    """moto's docker-less Lambda answers each Invoke with the next result queued through
    /moto-api/static/lambda-simple/response, but always as a success, so Step Functions
    never sees a task fail. Answer a queued result shaped like a Lambda handler error
    ({"errorType", "errorMessage"}) with X-Amz-Function-Error, as real Lambda does; Step
    Functions then fails the task with errorType as the error name."""
    from moto.awslambda_simple.models import LambdaSimpleBackend

    plain = LambdaSimpleBackend.invoke

    def invoke(self, function_name, qualifier, body, headers, response_headers):
        out = plain(self, function_name, qualifier, body, headers, response_headers)
        try:
            result = json.loads(out)
        except ValueError:
            return out
        if isinstance(result, dict) and isinstance(result.get("errorType"), str):
            response_headers["x-amz-function-error"] = "Unhandled"
        return out

    LambdaSimpleBackend.invoke = invoke


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    canned_function_errors()
    app = RequestCounter(SerialDynamo(DomainDispatcherApplication(create_backend_app)))
    run_simple(host, port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
