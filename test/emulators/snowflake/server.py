#!/usr/bin/python3
"""Snowflake SQL API v2 emulator for sfexport's tests and demo.

Usage:
  test/emulators/start snowflake --port 0 --port-file PATH --data-dir DIR
      [--account ACCT] [--user NAME=/path/to/rsa_public.pem ...]
      [--token NAME=TOKEN[:OAUTH|:PROGRAMMATIC_ACCESS_TOKEN] ...]
      [--s3-endpoint http://127.0.0.1:PORT --s3-access-key K --s3-secret-key S]
      [--gcs-endpoint http://127.0.0.1:PORT [--gcs-credentials KEY.json]] [--exec-delay-ms N]
      [--partition-rows N] [--sync-wait-ms N] [--pipe-delay-ms N] [--stream-commit-delay-ms N]
Listens on 127.0.0.1 only. See README.md.
"""

import argparse
import os
import signal
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from sfemu.auth import Authenticator  # noqa: E402
from sfemu.catalog import Catalog  # noqa: E402
from sfemu.engine import Engine  # noqa: E402
from sfemu.executor import Config, Executor  # noqa: E402
from sfemu.server import App, serve  # noqa: E402
from sfemu.snowpipe import Snowpipe  # noqa: E402
from sfemu.storage import StorageConfig, check_loopback  # noqa: E402
from sfemu.streaming import Streaming  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description="Snowflake SQL API v2 emulator")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--account", help="account name expected in JWT claims (any if omitted)")
    ap.add_argument("--user", action="append", default=[],
                    help="NAME=/path/to/rsa_public.pem (repeat a NAME for RSA_PUBLIC_KEY_2)")
    ap.add_argument("--token", action="append", default=[],
                    help="NAME=TOKEN[:TYPE] registers an OAUTH or PROGRAMMATIC_ACCESS_TOKEN token")
    ap.add_argument("--s3-endpoint")
    ap.add_argument("--s3-access-key")
    ap.add_argument("--s3-secret-key")
    ap.add_argument("--s3-region", default="us-east-1")
    ap.add_argument("--gcs-endpoint")
    ap.add_argument("--gcs-credentials",
                    help="service-account key JSON used to read gcs:// stages (else 'Bearer emulator')")
    ap.add_argument("--exec-delay-ms", type=int, default=0)
    ap.add_argument("--partition-rows", type=int, default=10000)
    ap.add_argument("--sync-wait-ms", type=int, default=45000,
                    help="how long a POST without async=true waits before answering 202")
    ap.add_argument("--pipe-delay-ms", type=int, default=1000,
                    help="Snowpipe: time from insertFiles to the load and its report")
    ap.add_argument("--stream-commit-delay-ms", type=int, default=1000,
                    help="Snowpipe Streaming: time from an append to its commit")
    ap.add_argument("--sql-log",
                    help="append every statement received on /api/v2/statements to this file")
    ap.add_argument("--stage-copy-dir",
                    help="keep a copy of every staged file read (COPY INTO, Snowpipe) here")
    args = ap.parse_args(argv)

    for ep in (args.s3_endpoint, args.gcs_endpoint):
        if ep:
            check_loopback(ep)

    auth = Authenticator(args.account)
    for spec in args.user:
        name, _, path = spec.partition("=")
        with open(path, "rb") as f:
            auth.add_key(name, f.read())
    for spec in args.token:
        name, _, rest = spec.partition("=")
        tok, _, ttype = rest.rpartition(":") if rest.endswith(
            (":OAUTH", ":PROGRAMMATIC_ACCESS_TOKEN")) else (rest, "", "OAUTH")
        auth.add_token(name, tok, ttype or "OAUTH")

    catalog = Catalog(args.data_dir)
    scfg = StorageConfig(args.s3_endpoint, args.s3_access_key, args.s3_secret_key,
                         args.s3_region, args.gcs_endpoint)
    scfg.copy_dir = args.stage_copy_dir
    if args.gcs_credentials:
        import json
        with open(args.gcs_credentials) as f:
            scfg.gcs_credentials = json.load(f)
    engine = Engine(catalog, scfg, args.account, auth)
    executor = Executor(engine, Catalog(args.data_dir, recover=False), Config(args.partition_rows, args.exec_delay_ms,
                                                args.sync_wait_ms))
    app = App(engine, executor, auth, catalog, args.account.upper() if args.account else None)
    app.snowpipe = Snowpipe(engine, catalog, args.pipe_delay_ms)
    app.streaming = Streaming(engine, catalog, auth, app.account, args.stream_commit_delay_ms)
    app.sql_log = args.sql_log
    httpd = serve(app, args.port)
    port = httpd.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp.%d" % os.getpid()
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.port_file)
    sys.stderr.write("[sfemu] listening on 127.0.0.1:%d (data dir %s)\n" % (port, args.data_dir))

    def stop(*_):
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        httpd.serve_forever(poll_interval=0.2)
    finally:
        httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
