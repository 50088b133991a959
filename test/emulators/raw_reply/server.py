#!/usr/bin/env python3
"""A raw reply server: answers every request with configured bytes.

For the bad-input tests (test/t/060_bad_input.pl): replies no emulator would
give (invalid JSON, HTML pages, wrong shapes, huge or truncated bodies,
odd status codes) to any client pointed at it.

    test/emulators/start raw_reply --port 0 --port-file FILE

Admin API (JSON):
    POST /_raw/replies   {"replies": [REPLY, ...]}  replace the queue
    GET  /_raw/requests                              [{"method", "path"}, ...]
A REPLY is {"status": 200, "headers": {"Name": "value"}, "body": "text",
"repeat": N (body repeated N times, default 1), "truncate": true (announce
the full Content-Length, send half the body, close), "delay_ms": N (wait
that long before answering), "number": true (every "{seq}" in the body
becomes the request's number, 1, 2, ...: a reply that changes each time)}.  Replies are used in
order; the last one is used again for every further request.  With no
reply configured the answer is 200 with an empty body.

Listens on 127.0.0.1 only.
"""
import argparse
import json
import os
import signal
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import emu_common  # noqa: E402  (write_port_file)


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.replies = []
        self.requests = []

    def next_reply(self):
        with self.lock:
            if not self.replies:
                return {"status": 200, "body": ""}
            if len(self.replies) > 1:
                return self.replies.pop(0)
            return self.replies[0]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None

    def log_message(self, fmt, *args):  # quiet
        pass

    def _read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            return self.rfile.read(n)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return b""

    def _send(self, status, body, headers=None, truncate=False):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        if truncate:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body[: len(body) // 2] if truncate else body)
        if truncate:
            self.wfile.flush()
            self.close_connection = True

    def _handle(self):
        body = self._read_body()
        st = self.state
        if self.path.startswith("/_raw/"):
            if self.command == "POST" and self.path == "/_raw/replies":
                spec = json.loads(body or b"{}")
                with st.lock:
                    st.replies = list(spec.get("replies", []))
                    st.requests = []
                return self._send(200, b'{"ok": true}', {"Content-Type": "application/json"})
            if self.command == "GET" and self.path == "/_raw/requests":
                with st.lock:
                    data = json.dumps(st.requests).encode()
                return self._send(200, data, {"Content-Type": "application/json"})
            return self._send(404, b"no such admin route")
        with st.lock:
            st.requests.append({"method": self.command, "path": self.path})
            seq = len(st.requests)
        r = st.next_reply()
        if r.get("delay_ms"):
            time.sleep(int(r["delay_ms"]) / 1000.0)
        text = r.get("body", "")
        if r.get("number"):
            text = text.replace("{seq}", str(seq))
        payload = text.encode("utf-8", "surrogateescape") * int(r.get("repeat", 1))
        self._send(int(r.get("status", 200)), payload, r.get("headers"), bool(r.get("truncate")))

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    a = ap.parse_args()
    Handler.state = State()
    srv = Server(("127.0.0.1", a.port), Handler)
    # a clean exit on SIGTERM: the TAP helpers stop services that way
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    port = srv.server_address[1]
    if a.port_file:
        emu_common.write_port_file(a.port_file, port)
    else:
        print(port, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
