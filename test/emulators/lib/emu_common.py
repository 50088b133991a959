"""Small shared pieces of the sfexport storage stand-ins (stdlib only).

- loopback-only threaded HTTP/1.1 server with "--port 0" + port file
- request body reading (Content-Length or chunked) into a spooled temp file
- a fault-injection queue shared by the S3 front, GCS and Glue stand-ins
- log redaction helpers (never log Authorization headers, tokens, signatures)
"""

import hashlib
import ipaddress
import json
import base64
import os
import re
import socket
import sys
import tempfile
import threading
import time
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit, urlencode

SPOOL_MAX_MEMORY = 8 * 1024 * 1024
COPY_CHUNK = 64 * 1024


def register_secret(label, value):
    """Add a secret this stand-in made or accepted (e.g. an access token it
    issued) to the test suite's secrets registry, if the suite keeps one
    (SFEXPORT_SECRETS_FILE, see scripts/secret-scan.py)."""
    path = os.environ.get("SFEXPORT_SECRETS_FILE")
    if not path or not value:
        return
    if isinstance(value, str):
        value = value.encode("utf-8")
    line = label.encode("utf-8") + b"\t" + base64.b64encode(value) + b"\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def log(prog, msg):
    sys.stderr.write("%s %s: %s\n" % (time.strftime("%H:%M:%S"), prog, msg))
    sys.stderr.flush()


def is_loopback_host(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def write_port_file(path, port):
    """Write the port atomically: temp file in the same directory, then rename."""
    path = os.path.abspath(path)
    d = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".port.", dir=d)
    try:
        with os.fdopen(fd, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class LoopbackHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, host, port, handler):
        if not is_loopback_host(host):
            raise SystemExit("refusing to listen on non-loopback address %r" % host)
        if host == "localhost":
            host = "127.0.0.1"
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), handler)

    def verify_request(self, request, client_address):
        # Loopback only, also for the admin endpoints.
        return is_loopback_host(client_address[0])


# ---------------------------------------------------------------------------
# Request bodies


class BodyError(Exception):
    pass


def read_body(handler, hasher_names=("sha256",)):
    """Read the request body into a SpooledTemporaryFile.

    Returns (spool, length, {name: hexdigest}, chunked).  Supports
    Content-Length and Transfer-Encoding: chunked.  The spool is rewound.
    """
    hashers = {n: hashlib.new(n) for n in hasher_names}
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX_MEMORY)
    rfile = handler.rfile
    te = (handler.headers.get("Transfer-Encoding") or "").lower()
    total = 0
    chunked = False

    def take(data):
        nonlocal total
        spool.write(data)
        for h in hashers.values():
            h.update(data)
        total += len(data)

    if "chunked" in te:
        chunked = True
        while True:
            line = rfile.readline(65537)
            if not line:
                raise BodyError("connection closed inside chunked body")
            size_s = line.split(b";", 1)[0].strip()
            try:
                size = int(size_s, 16)
            except ValueError:
                raise BodyError("bad chunk size line")
            if size == 0:
                # trailers until blank line
                while True:
                    t = rfile.readline(65537)
                    if not t or t in (b"\r\n", b"\n"):
                        break
                break
            remaining = size
            while remaining:
                data = rfile.read(min(remaining, COPY_CHUNK))
                if not data:
                    raise BodyError("connection closed inside chunk")
                take(data)
                remaining -= len(data)
            rfile.readline(3)  # CRLF after chunk
    else:
        cl = handler.headers.get("Content-Length")
        if cl is not None:
            try:
                remaining = int(cl)
                if remaining < 0:
                    raise ValueError
            except ValueError:
                raise BodyError("bad Content-Length")
            while remaining:
                data = rfile.read(min(remaining, COPY_CHUNK))
                if not data:
                    raise BodyError("connection closed before end of body "
                                    "(%d bytes missing)" % remaining)
                take(data)
                remaining -= len(data)
    spool.seek(0)
    return spool, total, {n: h.hexdigest() for n, h in hashers.items()}, chunked


def copy_stream(src, write, length=None):
    """Copy from file-like src to write(); length None = until EOF."""
    while True:
        n = COPY_CHUNK if length is None else min(COPY_CHUNK, length)
        if n == 0:
            return
        data = src.read(n)
        if not data:
            return
        write(data)
        if length is not None:
            length -= len(data)


# ---------------------------------------------------------------------------
# Redaction for logs

_SENSITIVE_QUERY = re.compile(
    r"^(x-amz-signature|x-amz-credential|x-amz-security-token|signature|"
    r"awsaccesskeyid|access_token|assertion|key|upload_id|upload-id)$",
    re.I)


def redact_target(target):
    """Request target with sensitive query parameter values replaced."""
    parts = urlsplit(target)
    if not parts.query:
        return target
    pairs = []
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        pairs.append((k, "REDACTED" if _SENSITIVE_QUERY.match(k) else v))
    return parts.path + "?" + urlencode(pairs)


# ---------------------------------------------------------------------------
# Fault injection


class FaultQueue:
    """FIFO of faults; each applies to the next `count` matching requests.

    A fault is a dict:
      kind      one of the kinds the service understands (see its README)
      count     how many matching requests it applies to (default 1)
      after     let this many matching requests through first (default 0)
      method    only requests with this HTTP method (optional)
      path_regex  only request targets matching this regex (re.search; optional)
      plus kind-specific fields (status, code, message, delay_ms, ...)
    """

    def __init__(self, kinds):
        self.kinds = set(kinds)
        self.lock = threading.Lock()
        self.faults = []
        self.injected = 0

    def add(self, spec):
        if not isinstance(spec, dict):
            raise ValueError("fault must be a JSON object")
        kind = spec.get("kind")
        if kind not in self.kinds:
            raise ValueError("unknown fault kind %r; expected one of %s"
                             % (kind, ", ".join(sorted(self.kinds))))
        f = dict(spec)
        f["count"] = int(f.get("count", 1))
        f["after"] = int(f.get("after", 0))
        if f["count"] < 1 or f["after"] < 0:
            raise ValueError("count must be >= 1 and after >= 0")
        if "delay_ms" in f:
            f["delay_ms"] = int(f["delay_ms"])
        if "status" in f:
            f["status"] = int(f["status"])
        if f.get("path_regex"):
            re.compile(f["path_regex"])
        with self.lock:
            self.faults.append(f)
        return f

    def clear(self):
        with self.lock:
            self.faults = []

    def list(self):
        with self.lock:
            return [dict(f) for f in self.faults]

    def take(self, method, target):
        """Return the fault to apply to this request, or None."""
        with self.lock:
            for f in self.faults:
                if f.get("method") and f["method"].upper() != method.upper():
                    continue
                if f.get("path_regex") and not re.search(f["path_regex"], target):
                    continue
                if f["after"] > 0:
                    f["after"] -= 1
                    return None
                f["count"] -= 1
                if f["count"] <= 0:
                    self.faults.remove(f)
                self.injected += 1
                return dict(f)
            return None


def json_bytes(obj):
    return (json.dumps(obj, indent=1, sort_keys=False) + "\n").encode()
