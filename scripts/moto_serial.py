"""Runs the moto AWS emulator on one thread: requests are handled one at a time.

moto's own `moto_server` serves requests on many threads and its DynamoDB takes no lock
around a transaction, so two concurrent TransactWriteItems calls can both pass the same
condition check, which real DynamoDB (serializable transactions) never allows. Serving one
request at a time restores that isolation for the tests that depend on it.

Usage: python moto_serial.py HOST PORT
"""

import os
import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.server import MotoRequestHandler
from werkzeug.serving import run_simple


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, app, threaded=False, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
