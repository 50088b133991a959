"""What the credential stand-ins (aws_sts, aws_imds, aws_ecs, gce_metadata,
google_sts) share: counters and a request log, injected faults, the admin
API, the command line and the serving loop (stdlib only).

Admin API of every one of them, under its own prefix (/_sts/, /_imds/, ...;
loopback only like everything else, no auth):
  GET    PREFIX/health          {"ok": true, ...}
  GET    PREFIX/stats           {"requests", "by_status", "errors_by_code",
                                 its own counters, "pending_faults"}
  GET/DELETE PREFIX/requests    the request log (never a secret in it)
  POST/GET/DELETE PREFIX/faults {"kind": K, "count", "after", "method",
                                 "path_regex", "delay_ms"}; kinds "500",
                                 "503" (the stand-in's own error form),
                                 "drop" (close without answering), "delay"
  POST   PREFIX/reset           clear faults, counters and the request log
plus the routes of each stand-in (expire, rotate, settings, ...).
"""

import json
import re
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

import emu_common as ec

FAULT_KINDS = ("500", "503", "drop", "delay")


class StandIn:
    """Faults, counters and the request log of one stand-in."""

    def __init__(self, fault_kinds=FAULT_KINDS):
        self.faults = ec.FaultQueue(fault_kinds)
        self.lock = threading.Lock()
        self.reset()

    def own_counters(self):
        """The stand-in's own counters, all zero."""
        return {}

    def reset(self):
        with self.lock:
            self.counters = dict({"requests": 0, "by_status": {}, "errors_by_code": {}},
                                 **self.own_counters())
            self.requests = []

    def count(self, name, n=1):
        with self.lock:
            self.counters[name] += n

    def record(self, entry):
        """Log one request: entry has "status" and, for a refusal, "code"."""
        with self.lock:
            self.counters["requests"] += 1
            for key, value in (("by_status", entry.get("status")),
                               ("errors_by_code", entry.get("code"))):
                if value is not None:
                    d = self.counters[key]
                    d[str(value)] = d.get(str(value), 0) + 1
            self.requests.append(dict(entry))
            del self.requests[:-10000]

    def stats(self):
        with self.lock:
            out = json.loads(json.dumps(self.counters))
        out["pending_faults"] = self.faults.list()
        return out


class Handler(BaseHTTPRequestHandler):
    """Dispatch to the admin API (ADMIN prefix) or to service()."""

    protocol_version = "HTTP/1.1"
    PROG = "stand-in"
    ADMIN = "/_admin/"
    state = None

    # -- logging: the method, the path (no query) and the status only
    def log_request(self, code="-", size="-"):
        ec.log(self.PROG, "%s %s %s" % (self.command, urlsplit(self.path).path, code))

    def log_message(self, fmt, *args):
        if not fmt.startswith('"%s" %s %s'):
            ec.log(self.PROG, fmt % args)

    def extra_headers(self):
        """Headers on every answer (gce_metadata: Metadata-Flavor)."""
        return ()

    def send_body(self, status, body, ctype, extra=()):
        if isinstance(body, str):
            body = body.encode()
        self.send_response_only(status)
        self.send_header("Date", self.date_time_string())
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in tuple(self.extra_headers()) + tuple(extra):
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.log_request(status)

    def send_json(self, status, obj, extra=(), ctype="application/json"):
        self.send_body(status, ec.json_bytes(obj), ctype, extra)

    def body(self):
        """The request body, or None after answering 400 (a broken body)."""
        try:
            spool, _, _, _ = ec.read_body(self)
        except ec.BodyError:
            self.close_connection = True
            self.send_body(400, "Bad Request", "text/plain")
            return None
        with spool:
            return spool.read()

    def fault(self, target):
        """Apply an injected fault to this request.  Returns None to go on
        (no fault, or a delay), "dropped" (the connection was closed), or
        the fault (a status kind, for the stand-in to answer in its form)."""
        f = self.state.faults.take(self.command, target)
        if f is None:
            return None
        if f["kind"] == "delay":
            time.sleep(f.get("delay_ms", 1000) / 1000.0)
            return None
        if f["kind"] == "drop":
            self.close_connection = True
            self.state.record({"path": urlsplit(self.path).path, "status": None,
                               "code": "drop"})
            return "dropped"
        return f

    def do_GET(self):
        path = urlsplit(self.path).path
        if path.startswith(self.ADMIN):
            return self._admin(path)
        body = self.body()
        if body is None:
            return
        fault = self.fault(self.fault_target(path, body))
        if fault != "dropped":
            self.service(path, body, fault)

    do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_GET

    def fault_target(self, path, body):
        """What a fault's path_regex is matched against (the path)."""
        return path

    def service(self, path, body, fault):
        """Answer a request; fault is an injected status fault to answer
        (in the stand-in's own error form) or None."""
        raise NotImplementedError

    # -- admin API
    def admin_routes(self):
        """{(method, name): function(body) -> JSON-able} of the stand-in."""
        return {}

    def health(self):
        return {"ok": True}

    def _admin(self, path):
        st = self.state
        body = self.body()
        if body is None:
            return
        name = path[len(self.ADMIN):].rstrip("/")
        m = self.command
        routes = {("GET", "health"): lambda b: self.health(),
                  ("GET", "stats"): lambda b: st.stats(),
                  ("GET", "requests"): lambda b: self._requests(False),
                  ("DELETE", "requests"): lambda b: self._requests(True),
                  ("GET", "faults"): lambda b: {"faults": st.faults.list()},
                  ("POST", "faults"): self._add_faults,
                  ("DELETE", "faults"): lambda b: st.faults.clear() or {"faults": []},
                  ("POST", "reset"): lambda b: st.faults.clear() or st.reset() or
                  {"ok": True}}
        routes.update(self.admin_routes())
        fn = routes.get((m, name))
        if fn is None:
            return self.send_json(404, {"error": "no admin route %s %s" % (m, path)})
        try:
            out = fn(body)
        except (ValueError, KeyError, TypeError, re.error) as e:
            return self.send_json(400, {"error": str(e)})
        self.send_json(200, out)

    def _requests(self, clear):
        st = self.state
        with st.lock:
            if clear:
                st.requests = []
            return {"requests": [dict(r) for r in st.requests]}

    def _add_faults(self, body):
        spec = json.loads(body or b"{}")
        return {"added": [self.state.faults.add(s) for s in
                          (spec if isinstance(spec, list) else [spec])]}


def add_common_args(parser, issued_help=None):
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", help="write the listening port here (atomic)")
    if issued_help:
        parser.add_argument("--issued-file", help=issued_help)


def serve(handler_cls, args, banner):
    """Listen on args.host:args.port, write the port file, serve until
    SIGTERM or SIGINT."""
    def _sigterm(signum, frame):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, _sigterm)
    srv = ec.LoopbackHTTPServer(args.host, args.port, handler_cls)
    port = srv.server_address[1]
    if args.port_file:
        ec.write_port_file(args.port_file, port)
    ec.log(handler_cls.PROG, "listening on %s:%d, %s" % (srv.server_address[0], port,
                                                        banner))
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
