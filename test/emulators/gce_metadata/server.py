#!/usr/bin/python3
"""GCE metadata server stand-in (service-account access tokens) for the
sfexport tests.

    server.py --port 0 --port-file F
              [--email exporter@PROJECT.iam.gserviceaccount.com]
              [--scope https://www.googleapis.com/auth/cloud-platform ...]
              [--project-id P] [--numeric-project-id N] [--zone europe-west1-b]
              [--lifetime 3599] [--refresh-before 300]
              [--issued-file ISSUED.json] [--host 127.0.0.1]

Point a client at it with GCE_METADATA_HOST=127.0.0.1:PORT (google-auth's
name for the override, google/auth/compute_engine/_metadata.py).  Every
token handed out is written to --issued-file (issued_creds.py, as a hash),
which gcs_emulator.py --issued-tokens reads: the token then works there with
its scopes.

Rules, from "View and query VM metadata"
(https://cloud.google.com/compute/docs/metadata/querying-metadata), "About
VM metadata" (https://cloud.google.com/compute/docs/metadata/overview) and
"Authenticate workloads using service accounts"
(https://cloud.google.com/compute/docs/access/authenticate-workloads):
- Every request under /computeMetadata/v1/ must carry Metadata-Flavor:
  Google (this stand-in wants the value exactly as documented), else 403; a request carrying X-Forwarded-For is refused (403),
  "the metadata server ... rejects requests that contain X-Forwarded-For".
  Every answer carries Metadata-Flavor: Google.  Only GET (405 otherwise).
- .../instance/service-accounts/default/token (also by e-mail instead of
  "default") -> {"access_token", "expires_in", "token_type": "Bearer"},
  application/json; ?scopes=A,B (comma-separated, as google-auth sends
  them) asks for those scopes instead of the instance's.  The server hands
  out the same token, with expires_in counting down, until --refresh-before
  seconds before it expires, then a new one.
- .../default/email, .../default/scopes (one per line),
  .../default/aliases, .../default/?recursive=true -> {"aliases", "email",
  "scopes"} (google-auth's get_service_account_info asks this way).
- Directories end with a slash and list their entries; a directory without
  its slash answers 301 to the slashed path.  ?recursive=true gives JSON.
- /computeMetadata/v1/project/project-id, .../numeric-project-id,
  /computeMetadata/v1/instance/zone ("projects/N/zones/Z"), .../instance/id.
- Unknown paths 404; an instance without a service account (settings
  below): service-accounts/ is empty and .../default/... answers 404.

Admin API (loopback; under /_gce/, no Metadata-Flavor needed):
  GET  /_gce/health, /_gce/stats ({"token_requests", "tokens_issued",
       "by_status", "pending_faults"})
  GET/DELETE /_gce/requests  [{"path", "status", "flavor": bool}]
  POST /_gce/settings  {"service_account_available": bool}
  POST /_gce/expire    every token handed out so far expires now (at
                       gcs_emulator) and the next request gets a new one
  POST /_gce/rotate    the next token request gets a new token
  POST/GET/DELETE /_gce/faults {"kind": "503"|"500"|"drop"|"delay", ...}
  POST /_gce/reset
Tokens are never logged.
"""

import argparse
import json
import os
import re
import secrets
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, urlsplit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import emu_common as ec  # noqa: E402
import issued_creds  # noqa: E402

PROG = "gce_metadata"
ROOT = "/computeMetadata/v1"
FAULT_KINDS = ("500", "503", "drop", "delay")
DEFAULT_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
TOKEN = object()    # the token entry of a service account's directory


class State:
    def __init__(self, args):
        self.email = args.email
        self.scopes = tuple(args.scope or DEFAULT_SCOPES)
        self.project_id = args.project_id
        self.numeric = args.numeric_project_id
        self.zone = args.zone
        self.lifetime = args.lifetime
        self.refresh_before = min(args.refresh_before, args.lifetime / 2.0)
        self.writer = issued_creds.IssuedWriter(args.issued_file)
        self.sa_available = True
        self.cache = {}     # frozenset(scopes) -> (token, expires_at)
        self.faults = ec.FaultQueue(FAULT_KINDS)
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.counters = {"token_requests": 0, "tokens_issued": 0, "by_status": {}}
            self.requests = []

    def record(self, path, status, flavor):
        with self.lock:
            d = self.counters["by_status"]
            d[str(status)] = d.get(str(status), 0) + 1
            self.requests.append({"path": path, "status": status, "flavor": flavor})
            del self.requests[:-10000]

    def token(self, scopes):
        key = frozenset(scopes)
        now = time.time()
        with self.lock:
            self.counters["token_requests"] += 1
            tok, exp = self.cache.get(key, (None, 0))
            if tok is None or exp - now <= self.refresh_before:
                tok = "ya29.c.emu-" + secrets.token_urlsafe(60)
                exp = now + self.lifetime
                self.cache[key] = (tok, exp)
                self.counters["tokens_issued"] += 1
                ec.register_secret("GCE metadata access token", tok)
                self.writer.add_gcp(tok, exp, self.email, sorted(scopes), PROG)
        return tok, max(0, int(exp - now))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Metadata Server for VM"
    state = None

    def log_request(self, code="-", size="-"):
        ec.log(PROG, "%s %s %s" % (self.command, urlsplit(self.path).path, code))

    def log_message(self, fmt, *args):
        if not fmt.startswith('"%s" %s %s'):
            ec.log(PROG, fmt % args)

    def _send(self, status, body, ctype="application/text", extra=()):
        if isinstance(body, str):
            body = body.encode()
        self.send_response_only(status)
        self.send_header("Date", self.date_time_string())
        self.send_header("Metadata-Flavor", "Google")
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.log_request(status)

    def do_GET(self):
        self._handle()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_GET

    def _handle(self):
        parts = urlsplit(self.path)
        path = parts.path
        if path.startswith("/_gce/"):
            return self._admin(path)
        st = self.state
        try:
            ec.read_body(self)[0].close()
        except ec.BodyError:
            self.close_connection = True
            return self._send(400, "Bad Request", "text/html")
        fault = st.faults.take(self.command, path)
        if fault:
            if fault["kind"] == "delay":
                time.sleep(fault.get("delay_ms", 1000) / 1000.0)
            elif fault["kind"] == "drop":
                self.close_connection = True
                return
            else:
                st.record(path, int(fault["kind"]), None)
                return self._send(int(fault["kind"]), "injected fault", "text/html")
        flavor = self.headers.get("Metadata-Flavor")
        has_flavor = flavor is not None and flavor == "Google"
        if self.headers.get("X-Forwarded-For") is not None or (
                (path == ROOT or path.startswith(ROOT + "/")) and not has_flavor):
            st.record(path, 403, has_flavor)
            return self._send(403, "Your client does not have permission to get URL "
                              "%s from this server. Missing Metadata-Flavor:Google header."
                              % path if not has_flavor else "Forbidden", "text/html")
        if self.command not in ("GET", "HEAD"):
            st.record(path, 405, has_flavor)
            return self._send(405, "Method Not Allowed", "text/html", [("Allow", "GET")])
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        status, body, ctype, extra = self._metadata(path, params)
        st.record(path, status, has_flavor)
        self._send(status, body, ctype, extra)

    def _tree(self):
        """The metadata tree: directories are dicts, values are str or list."""
        st = self.state
        instance = {"id": "4567890123456789012",
                    "zone": "projects/%s/zones/%s" % (st.numeric, st.zone),
                    "service-accounts": {}}
        if st.sa_available:
            sa = {"aliases": ["default"], "email": st.email, "scopes": list(st.scopes),
                  "token": TOKEN}
            instance["service-accounts"] = {"default": sa, st.email: sa}
        return {"instance": instance,
                "project": {"project-id": st.project_id,
                            "numeric-project-id": st.numeric}}

    def _metadata(self, path, params):
        st = self.state
        if not (path == ROOT or path.startswith(ROOT + "/")):
            return 404, "Not Found", "text/html", ()
        rel = path[len(ROOT):]
        segs = [s for s in rel.split("/") if s]
        node = self._tree()
        for i, s in enumerate(segs):
            if not isinstance(node, dict) or s not in node:
                return 404, "Not Found", "text/html", ()
            if s == "token" and i == len(segs) - 1 and segs[i - 2] == "service-accounts":
                scopes = [x for x in params.get("scopes", "").split(",") if x] \
                    or list(st.scopes)
                tok, left = st.token(scopes)
                return 200, json.dumps({"access_token": tok, "expires_in": left,
                                        "token_type": "Bearer"}), "application/json", ()
            node = node[s]
        if isinstance(node, dict):
            if not rel.endswith("/") and rel:
                return 301, "", "text/html", [("Location", path + "/")]
            if params.get("recursive") == "true":
                return 200, json.dumps(self._strip(node)), "application/json", ()
            return 200, "".join("%s%s\n" % (k, "/" if isinstance(v, dict) else "")
                                for k, v in node.items()), \
                "application/text", ()
        if params.get("alt") == "json":
            return 200, json.dumps(node), "application/json", ()
        if isinstance(node, list):
            return 200, "".join(v + "\n" for v in node), "application/text", ()
        return 200, node, "application/text", ()

    @classmethod
    def _strip(cls, node):
        if isinstance(node, dict):
            return {k: cls._strip(v) for k, v in node.items() if v is not TOKEN}
        return node

    def _admin(self, path):
        st = self.state
        try:
            spool, _, _, _ = ec.read_body(self)
            body = spool.read()
        except ec.BodyError:
            self.close_connection = True
            return self._send(400, ec.json_bytes({"error": "bad body"}), "application/json")
        m = self.command
        path = path.rstrip("/")
        try:
            if path == "/_gce/health" and m == "GET":
                out = {"ok": True, "email": st.email}
            elif path == "/_gce/stats" and m == "GET":
                with st.lock:
                    out = json.loads(json.dumps(st.counters))
                out["pending_faults"] = st.faults.list()
            elif path == "/_gce/requests" and m in ("GET", "DELETE"):
                with st.lock:
                    if m == "DELETE":
                        st.requests = []
                    out = {"requests": [dict(r) for r in st.requests]}
            elif path == "/_gce/settings" and m == "POST":
                s = json.loads(body or b"{}")
                if "service_account_available" in s:
                    st.sa_available = bool(s["service_account_available"])
                out = {"service_account_available": st.sa_available}
            elif path == "/_gce/rotate" and m == "POST":
                with st.lock:
                    st.cache.clear()
                out = {"ok": True}
            elif path == "/_gce/expire" and m == "POST":
                with st.lock:
                    st.cache.clear()
                out = {"expired": st.writer.expire_all()}
            elif path == "/_gce/faults" and m == "GET":
                out = {"faults": st.faults.list()}
            elif path == "/_gce/faults" and m == "POST":
                spec = json.loads(body or b"{}")
                out = {"added": [st.faults.add(s) for s in
                                 (spec if isinstance(spec, list) else [spec])]}
            elif path == "/_gce/faults" and m == "DELETE":
                st.faults.clear()
                out = {"faults": []}
            elif path == "/_gce/reset" and m == "POST":
                st.faults.clear()
                st.reset()
                out = {"ok": True}
            else:
                return self._send(404, ec.json_bytes({"error": "no admin route %s %s"
                                                      % (m, path)}), "application/json")
        except (ValueError, TypeError, re.error) as e:
            return self._send(400, ec.json_bytes({"error": str(e)}), "application/json")
        self._send(200, ec.json_bytes(out), "application/json")


def main(argv=None):
    p = argparse.ArgumentParser(description="GCE metadata server stand-in")
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--port-file", help="write the listening port here (atomic)")
    p.add_argument("--email", default="exporter@sfexport-test.iam.gserviceaccount.com")
    p.add_argument("--scope", action="append", default=[],
                   help="the instance's scopes (default cloud-platform)")
    p.add_argument("--project-id", default="sfexport-test")
    p.add_argument("--numeric-project-id", default="123456789012")
    p.add_argument("--zone", default="europe-west1-b")
    p.add_argument("--lifetime", type=int, default=3599,
                   help="seconds a token is valid when issued")
    p.add_argument("--refresh-before", type=int, default=300,
                   help="a new token this many seconds before the old one expires")
    p.add_argument("--issued-file", help="write the tokens handed out here (hashed; "
                   "issued_creds.py), for gcs_emulator.py --issued-tokens")
    args = p.parse_args(argv)
    Handler.state = State(args)
    srv = ec.LoopbackHTTPServer(args.host, args.port, Handler)
    port = srv.server_address[1]
    if args.port_file:
        ec.write_port_file(args.port_file, port)
    ec.log(PROG, "listening on %s:%d, service account %s"
           % (srv.server_address[0], port, args.email))
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()


def _sigterm(signum, frame):
    raise KeyboardInterrupt()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _sigterm)
    main()
