#!/usr/bin/python3
"""Forward HTTP proxy that records what went through it.

Usage:
  test/emulators/start forward_proxy --port 0 --port-file PATH
      [--auth USER:PASSWORD] [--host 127.0.0.1]

What libcurl does with http_proxy / https_proxy:
  - http:// URLs: the request with an absolute target ("GET http://h:p/x
    HTTP/1.1") is forwarded to h:p (loopback only) and the answer relayed;
  - https:// URLs: "CONNECT h:p" opens a tunnel (loopback only), "200
    Connection established", then bytes are relayed both ways untouched.

--auth USER:PASSWORD requires Proxy-Authorization: Basic; without it (or
with other credentials) the answer is 407 with Proxy-Authenticate.  The
credentials are registered with the test suite's secret scan and never
logged: the record keeps only whether the right ones came.

GET /_proxy/log (an origin-form request to the proxy itself) returns the
record: {"requests": [{"t", "method", "target" (host:port, path without
query), "tunnel", "status", "auth": "ok" | "missing" | "wrong" | "none"}]};
DELETE /_proxy/log clears it.  Loopback only, both ways.
"""

import argparse
import base64
import json
import os
import select
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import emu_common as ec  # noqa: E402

PROG = "forward_proxy"
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
              "proxy-connection", "te", "trailers", "transfer-encoding", "upgrade"}


class State:
    def __init__(self, auth):
        self.auth = auth
        self.lock = threading.Lock()
        self.requests = []

    def record(self, **r):
        r["t"] = round(time.time(), 3)
        with self.lock:
            self.requests.append(r)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sfexport-forward-proxy/1"
    state = None

    def log_message(self, fmt, *args):
        # the request line only, without query strings (may carry signatures)
        ec.log(PROG, "%s %s" % (self.command, ec.redact_target(self.path)))

    def _auth(self):
        want = self.state.auth
        got = self.headers.get("Proxy-Authorization")
        if want is None:
            return "none"
        if not got:
            return "missing"
        expect = "Basic " + base64.b64encode(want.encode()).decode()
        return "ok" if got.strip() == expect else "wrong"

    def _refuse(self, status, msg, extra=()):
        body = (msg + "\n").encode()
        self.send_response(status)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _target_ok(self, host):
        return ec.is_loopback_host(host or "")

    # -- CONNECT tunnels (https:// URLs)
    def do_CONNECT(self):
        host, _, port = self.path.rpartition(":")
        auth = self._auth()
        rec = dict(method="CONNECT", target=self.path, tunnel=True, auth=auth)
        if auth in ("missing", "wrong"):
            self.state.record(status=407, **rec)
            self.close_connection = True
            return self._refuse(407, "proxy authentication required",
                                (("Proxy-Authenticate", 'Basic realm="sfexport-test"'),))
        if not self._target_ok(host) or not port.isdigit():
            self.state.record(status=403, **rec)
            self.close_connection = True
            return self._refuse(403, "only loopback targets")
        try:
            up = socket.create_connection((host, int(port)), timeout=30)
        except OSError as e:
            self.state.record(status=502, **rec)
            self.close_connection = True
            return self._refuse(502, "cannot connect: %s" % e)
        self.state.record(status=200, **rec)
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        relay(self.connection, up)
        up.close()

    # -- plain HTTP proxying (http:// URLs) and the admin API
    def _any(self):
        if self.path.startswith("/"):
            return self._admin()
        u = urlsplit(self.path)
        auth = self._auth()
        rec = dict(method=self.command, target="%s:%s%s" % (u.hostname, u.port or 80, u.path),
                   tunnel=False, auth=auth)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        if auth in ("missing", "wrong"):
            self.state.record(status=407, **rec)
            return self._refuse(407, "proxy authentication required",
                                (("Proxy-Authenticate", 'Basic realm="sfexport-test"'),))
        if u.scheme != "http" or not self._target_ok(u.hostname):
            self.state.record(status=403, **rec)
            return self._refuse(403, "only http:// loopback targets")
        try:
            up = socket.create_connection((u.hostname, u.port or 80), timeout=60)
        except OSError as e:
            self.state.record(status=502, **rec)
            return self._refuse(502, "cannot connect: %s" % e)
        target = u.path or "/"
        if u.query:
            target += "?" + u.query
        lines = ["%s %s HTTP/1.1" % (self.command, target)]
        for k, v in self.headers.items():
            if k.lower() in HOP_BY_HOP or k.lower() == "content-length":
                continue
            lines.append("%s: %s" % (k, v))
        if length or self.command in ("PUT", "POST"):
            lines.append("Content-Length: %d" % len(body))
        lines.append("Connection: close")
        up.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        # the upstream closes after its answer: relay it as is, then close too
        f = up.makefile("rb")
        status_line = f.readline()
        try:
            status = int(status_line.split()[1])
        except (IndexError, ValueError):
            status = 502
        self.state.record(status=status, **rec)
        self.wfile.write(status_line)
        ec.copy_stream(f, self.wfile.write)
        self.wfile.flush()
        self.close_connection = True
        f.close()
        up.close()

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any

    def _admin(self):
        if self.path.rstrip("/") != "/_proxy/log":
            return self._refuse(404, "no such route")
        if self.command == "DELETE":
            with self.state.lock:
                self.state.requests = []
        with self.state.lock:
            data = json.dumps({"requests": self.state.requests}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def relay(a, b):
    """Copy bytes both ways between two sockets until both sides closed."""
    socks = [a, b]
    open_ = {a: True, b: True}
    while open_[a] or open_[b]:
        r, _, _ = select.select([s for s in socks if open_[s]], [], [], 600)
        if not r:
            break
        for s in r:
            other = b if s is a else a
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if not data:
                open_[s] = False
                try:
                    other.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                continue
            try:
                other.sendall(data)
            except OSError:
                return


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--auth", help="USER:PASSWORD required as Proxy-Authorization: Basic")
    args = p.parse_args(argv)
    if args.auth:
        ec.register_secret("forward proxy password", args.auth.partition(":")[2])
    Handler.state = State(args.auth)
    srv = ec.LoopbackHTTPServer(args.host, args.port, Handler)
    port = srv.server_address[1]
    if args.port_file:
        ec.write_port_file(args.port_file, port)
    ec.log(PROG, "listening on http://%s:%d" % (args.host, port))
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    srv.serve_forever()


if __name__ == "__main__":
    main()
