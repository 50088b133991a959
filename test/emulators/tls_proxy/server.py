#!/usr/bin/python3
"""TLS-terminating reverse proxy in front of a plain-HTTP stand-in.

Usage:
  test/emulators/start tls_proxy --port 0 --port-file PATH \\
      --cert server.pem --key server.key --upstream http://127.0.0.1:PORT \\
      [--host 127.0.0.1] [--log FILE]

Accepts TLS connections (Python's ssl module, TLS 1.2 or later) on a
loopback address and relays the decrypted bytes to the upstream unchanged,
in both directions, one upstream connection per client connection.  HTTP is
not parsed, so keep-alive, chunked bodies and signed headers (Host included)
reach the upstream exactly as the client sent them; a SigV4 signature made
for https://127.0.0.1:TLSPORT still verifies at the S3 front.

A client that does not trust the certificate aborts the handshake: the
proxy logs the failed handshake (the ssl module's reason) and never connects
upstream.  --log FILE gets one JSON line per connection:
{"t": epoch seconds, "event": "connect" | "handshake_failed", "sni": name or
null, "reason": text (failures only)}.  Nothing of the payload is logged.

Certificates come from the test (openssl CLI, a fresh CA per run).
"""

import argparse
import json
import os
import signal
import socket
import ssl
import sys
import threading
import time
from urllib.parse import urlsplit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import emu_common as ec  # noqa: E402

PROG = "tls_proxy"


class Proxy:
    def __init__(self, args):
        up = urlsplit(args.upstream)
        if up.scheme != "http" or not up.port:
            raise SystemExit("--upstream must be http://<loopback>:PORT")
        if not ec.is_loopback_host(up.hostname):
            raise SystemExit("--upstream must be on a loopback address")
        self.upstream = (up.hostname, up.port)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        self.ctx.load_cert_chain(args.cert, args.key)
        self.ctx.set_servername_callback(self._sni)
        self.log_path = args.log
        self.log_lock = threading.Lock()
        self.local = threading.local()

    def _sni(self, sock, name, ctx):
        self.local.sni = name

    def record(self, **ev):
        ev["t"] = round(time.time(), 3)
        if self.log_path:
            with self.log_lock, open(self.log_path, "a") as f:
                f.write(json.dumps(ev) + "\n")

    def serve(self, lsock):
        while True:
            conn, _ = lsock.accept()
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, raw):
        self.local.sni = None
        raw.settimeout(30)
        try:
            tls = self.ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as e:
            reason = getattr(e, "reason", None) or str(e)
            ec.log(PROG, "TLS handshake failed: %s" % reason)
            self.record(event="handshake_failed", sni=self.local.sni, reason=str(reason))
            raw.close()
            return
        self.record(event="connect", sni=self.local.sni)
        try:
            up = socket.create_connection(self.upstream, timeout=30)
        except OSError as e:
            ec.log(PROG, "upstream connect failed: %s" % e)
            tls.close()
            return
        tls.settimeout(None)
        up.settimeout(None)
        t = threading.Thread(target=pipe, args=(up, tls), daemon=True)
        t.start()
        pipe(tls, up)
        t.join(timeout=600)
        for s in (tls, up):
            try:
                s.close()
            except OSError:
                pass


def pipe(src, dst):
    """Copy bytes src -> dst until EOF, then half-close dst."""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except (OSError, ssl.SSLError):
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except (OSError, ssl.SSLError):
        pass


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--cert", required=True, help="server certificate chain (PEM)")
    p.add_argument("--key", required=True, help="its private key (PEM)")
    p.add_argument("--upstream", required=True, help="http://127.0.0.1:PORT")
    p.add_argument("--log", help="append one JSON line per connection here")
    args = p.parse_args(argv)
    if not ec.is_loopback_host(args.host):
        raise SystemExit("refusing to listen on non-loopback address %r" % args.host)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    proxy = Proxy(args)
    lsock = socket.create_server((args.host, args.port))
    port = lsock.getsockname()[1]
    if args.port_file:
        ec.write_port_file(args.port_file, port)
    ec.log(PROG, "listening on https://%s:%d -> http://%s:%d"
           % (args.host, port, *proxy.upstream))
    try:
        proxy.serve(lsock)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
