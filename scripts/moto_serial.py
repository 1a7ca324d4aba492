"""Runs the moto AWS emulator with DynamoDB requests handled one at a time.

moto's own `moto_server` serves requests on many threads and its DynamoDB takes no lock
around a transaction, so two concurrent TransactWriteItems calls can both pass the same
condition check, which real DynamoDB (serializable transactions) never allows. This server
stays threaded (so an SQS long poll does not stall everyone else) but takes one global lock
around every DynamoDB and DynamoDB Streams request, which restores that isolation for the
tests that depend on it.

It also makes the docker-less Lambda report queued error results as function errors (see
canned_function_errors), so Step Functions tests can fail tasks with a chosen error name.

Usage: python moto_serial.py HOST PORT
"""

import json
import os
import sys
import threading

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
    app = SerialDynamo(DomainDispatcherApplication(create_backend_app))
    run_simple(host, port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
