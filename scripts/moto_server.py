"""moto's S3 server, single-threaded.

The threaded `moto_server` lets two concurrent If-None-Match creates both win
(see ../shared/local-s3.md); serving one request at a time is what makes moto
honour create-only writes. Usage: moto_server.py PORT
"""
import sys

from moto.moto_server.threaded_moto_server import MotoRequestHandler
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

run_simple(
    "127.0.0.1",
    int(sys.argv[1]),
    DomainDispatcherApplication(create_backend_app),
    threaded=False,
    request_handler=MotoRequestHandler,
)
