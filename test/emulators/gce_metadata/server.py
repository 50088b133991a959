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
which gcs --issued-tokens reads: the token then works there with
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

Admin API under /_gce/, no Metadata-Flavor needed (cred_common.py: health,
stats with "token_requests" and "tokens_issued", requests [{"path",
"status", "flavor": bool}], faults, reset), and:
  POST /_gce/settings  {"service_account_available": bool}
  POST /_gce/expire    every token handed out so far expires now (at
                       gcs) and the next request gets a new one
  POST /_gce/rotate    the next token request gets a new token
Tokens are never logged.
"""

import argparse
import json
import os
import secrets
import sys
import time
from urllib.parse import parse_qsl, urlsplit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import cred_common  # noqa: E402
import emu_common as ec  # noqa: E402
import issued_creds  # noqa: E402

ROOT = "/computeMetadata/v1"
DEFAULT_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
TOKEN = object()    # the token entry of a service account's directory


class State(cred_common.StandIn):
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
        super().__init__()

    def own_counters(self):
        return {"token_requests": 0, "tokens_issued": 0}

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
                self.writer.add_gcp(tok, exp, self.email, sorted(scopes), "gce_metadata")
        return tok, max(0, int(exp - now))

    def forget_tokens(self):
        with self.lock:
            self.cache.clear()

    def settings(self, body):
        s = json.loads(body or b"{}")
        if "service_account_available" in s:
            self.sa_available = bool(s["service_account_available"])
        return {"service_account_available": self.sa_available}


class Handler(cred_common.Handler):
    server_version = "Metadata Server for VM"
    PROG = "gce_metadata"
    ADMIN = "/_gce/"

    def extra_headers(self):
        return (("Metadata-Flavor", "Google"),)

    def service(self, path, body, fault):
        st = self.state
        flavor = self.headers.get("Metadata-Flavor") == "Google"

        def answer(status, body, ctype="text/html", extra=()):
            st.record({"path": path, "status": status, "flavor": flavor})
            self.send_body(status, body, ctype, extra)
        if fault:
            return answer(int(fault["kind"]), "injected fault")
        if self.headers.get("X-Forwarded-For") is not None:
            return answer(403, "Forbidden")
        if (path == ROOT or path.startswith(ROOT + "/")) and not flavor:
            return answer(403, "Your client does not have permission to get URL %s from "
                          "this server. Missing Metadata-Flavor:Google header." % path)
        if self.command not in ("GET", "HEAD"):
            return answer(405, "Method Not Allowed", extra=[("Allow", "GET")])
        params = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        answer(*self._metadata(path, params))

    def _tree(self):
        """The metadata tree: directories are dicts, values str or list."""
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
        """(status, body, content type, extra headers)."""
        if not (path == ROOT or path.startswith(ROOT + "/")):
            return 404, "Not Found", "text/html", ()
        rel = path[len(ROOT):]
        node = self._tree()
        for s in [s for s in rel.split("/") if s]:
            if not isinstance(node, dict) or s not in node:
                return 404, "Not Found", "text/html", ()
            node = node[s]
        if node is TOKEN:
            scopes = [x for x in params.get("scopes", "").split(",") if x] \
                or list(self.state.scopes)
            tok, left = self.state.token(scopes)
            return 200, json.dumps({"access_token": tok, "expires_in": left,
                                    "token_type": "Bearer"}), "application/json", ()
        if isinstance(node, dict):
            if rel and not rel.endswith("/"):
                return 301, "", "text/html", [("Location", path + "/")]
            if params.get("recursive") == "true":
                return 200, json.dumps(self._strip(node)), "application/json", ()
            return 200, "".join("%s%s\n" % (k, "/" if isinstance(v, dict) else "")
                                for k, v in node.items()), "application/text", ()
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

    def health(self):
        return {"ok": True, "email": self.state.email}

    def admin_routes(self):
        st = self.state
        return {("POST", "settings"): st.settings,
                ("POST", "rotate"): lambda b: st.forget_tokens() or {"ok": True},
                ("POST", "expire"): lambda b: st.forget_tokens() or
                {"expired": st.writer.expire_all()}}


def main(argv=None):
    p = argparse.ArgumentParser(description="GCE metadata server stand-in")
    cred_common.add_common_args(p, "write the tokens handed out here (hashed; "
                                "issued_creds.py), for gcs --issued-tokens")
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
    args = p.parse_args(argv)
    Handler.state = State(args)
    cred_common.serve(Handler, args, "service account %s" % args.email)


if __name__ == "__main__":
    main()
