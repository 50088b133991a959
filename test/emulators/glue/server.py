#!/usr/bin/python3
"""AWS Glue Data Catalog stand-in for the sfexport tests (read operations).

    test/emulators/start glue --port 0 --port-file F [--fixture catalog.json]
                     --key ACCESS=SECRET [--key ...] [--session-token ACCESS=TOKEN]
                     [--region us-east-1] [--host 127.0.0.1] [--quiet] [--request-log FILE]
                     [--policy ACCESS=iam-policy.json] [--account-id 123456789012]

Protocol (botocore data/glue/2017-03-31/service-2.json: "protocol": "json",
"jsonVersion": "1.1", "targetPrefix": "AWSGlue", "signatureVersion": "v4"):
every call is POST / with X-Amz-Target: AWSGlue.<Operation> and
Content-Type: application/x-amz-json-1.1, a JSON body, a JSON answer.
Errors are HTTP 400 (5xx for server faults) with {"__type": ..., "message":
...}, as botocore's BaseJSONParser reads them.

Every request is SigV4-verified with an independent implementation,
botocore's SigV4Auth (service "glue"), over exactly the headers the client
signed.  Failures answer as AWS JSON services do:
  - no Authorization: 400 MissingAuthenticationTokenException
  - unknown access key or bad session token: 400 UnrecognizedClientException
    ("The security token included in the request is invalid.")
  - wrong signature, wrong scope, clock skew > 15 min: 400
    InvalidSignatureException

Operations (shapes as in the service model; fields the fixture does not
give are left out):
  GetDatabases {NextToken?, MaxResults?}            -> {DatabaseList, NextToken?}
  GetDatabase  {Name}                               -> {Database}
  GetTables    {DatabaseName, Expression?, NextToken?, MaxResults?}
                                                    -> {TableList, NextToken?}
  GetTable     {DatabaseName, Name}                 -> {Table}
  GetPartitions{DatabaseName, TableName, NextToken?, MaxResults?,
                ExcludeColumnSchema?}               -> {Partitions, NextToken?}
MaxResults: 1..100 (CatalogGetterPageSize), else 400 ValidationException;
default page size 100.  Expression (GetTables): "A regular expression
pattern. If present, only those tables whose names match the pattern are
returned." (API_GetTables).  The reference says no more, and readers
differ, so the reading is a setting (--expression-mode, or POST
/_emulator/settings {"expression_mode": ...}):
  regex  (default) the whole name matches the regular expression
         (re.fullmatch);
  search the regular expression matches somewhere in the name (re.search);
  hive   Hive metastore's table patterns, which Glue's Hive-compatible
         clients use: "*" means any characters (".*"), "|" separates
         alternatives, the rest is a regular expression, the whole name
         must match, case-insensitively.
A bad pattern is 400 InvalidInputException.  GetPartitions' Expression (a partition
predicate) is not emulated: 400 InvalidInputException.  Missing database or
table: 400 EntityNotFoundException.

CatalogId (every operation above: "The ID of the Data Catalog ... If none is
provided, the Amazon Web Services account ID is used by default."): 1 to 255
characters (CatalogIdString), else 400 ValidationException.  The fixture's
top level is the catalog of --account-id; other accounts' catalogs are under
"catalogs": {"<id>": {"databases": ..., "tables": ..., "partitions": ...}}.
A CatalogId that is neither is refused as AWS refuses a catalog the caller
has no grant on: 400 AccessDeniedException on arn:aws:glue:<region>:<id>:catalog.
IAM resources (below) name the catalog's account.

Fixture (JSON, re-read whenever the file changes, or replaced with POST
/_emulator/fixture):
  {"databases": [{"Name": "sales__raw", ...}],
   "tables": {"sales__raw": [{"Name": "events", "StorageDescriptor": {...},
                              "PartitionKeys": [...], "Parameters": {...}}]},
   "partitions": {"sales__raw": {"events": [{"Values": [...],
                                             "StorageDescriptor": {"Location": ...}}]}}}

IAM (--policy ACCESS=FILE, ../lib/iam_policy.py): requests signed by ACCESS need
the action glue:<Operation> on each resource AWS lists for it ("AWS Glue API
permissions: Actions and resources reference"; ARNs
arn:aws:glue:<region>:<account-id>:catalog | database/<db> | table/<db>/<t>):
  GetDatabases   catalog, database/*
  GetDatabase    catalog, database/<Name>
  GetTables      catalog, database/<DatabaseName>, table/<DatabaseName>/*
  GetTable, GetPartitions
                 catalog, database/<DatabaseName>, table/<DatabaseName>/<Name>
Refused: 400 AccessDeniedException "User: arn:aws:iam::<account-id>:user/ACCESS
is not authorized to perform: glue:GetTables on resource: <arn> because no
identity-based policy allows the glue:GetTables action".  Keys without a
policy are not restricted.

Admin API (loopback, no auth):
  GET  /_emulator/health
  POST /_emulator/fixture          body: the catalog
  POST /_emulator/settings         {"expression_mode": "regex"|"search"|"hive"}
  POST /_emulator/faults           {"kind": "throttling"|"500"|"503"|"drop"|"delay",
                                    "count": 1, "after": 0, "path_regex": "GetTables",
                                    "delay_ms": 0}   (path_regex matches "/<Operation>")
  GET/DELETE /_emulator/faults
  GET  /_emulator/requests         [{"operation", "body", "status", "error", "access_key"}]
  DELETE /_emulator/requests
Authorization headers, signatures and tokens are never logged or recorded.
"""

import argparse
import base64
import datetime
import hmac
import json
import os
import re
import signal
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from emu_common import (FaultQueue, LoopbackHTTPServer, log,  # noqa: E402
                        write_port_file)
import iam_policy  # noqa: E402
from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.compat import HTTPHeaders  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

PROG = "glue"
JSON_TYPE = "application/x-amz-json-1.1"
MAX_SKEW = datetime.timedelta(minutes=15)
PAGE_MAX = 100
FAULT_KINDS = ("throttling", "500", "503", "drop", "delay")
OPERATIONS = ("GetDatabases", "GetDatabase", "GetTables", "GetTable", "GetPartitions")


class GlueError(Exception):
    def __init__(self, status, type_, message):
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message


class _ExactHeadersSigV4(SigV4Auth):
    """botocore's SigV4Auth over exactly the headers the client signed."""

    def __init__(self, credentials, region, signed_values):
        super().__init__(credentials, "glue", region)
        self._signed_values = signed_values

    def headers_to_sign(self, request):
        hm = HTTPHeaders()
        for name, value in self._signed_values:
            hm[name] = value
        return hm


def parse_amz_date(value):
    try:
        return datetime.datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return None


BAD_SIGNATURE = ("The request signature we calculated does not match the signature you "
                 "provided. Check your AWS Secret Access Key and signing method. Consult "
                 "the service documentation for details.")
BAD_TOKEN = "The security token included in the request is invalid."


class Verifier:
    def __init__(self, keys, tokens, region):
        self.keys = keys
        self.tokens = tokens
        self.region = region

    def verify(self, method, path, headers, body, now=None):
        """Raise GlueError, or return the access key."""
        now = now or datetime.datetime.now(datetime.timezone.utc)
        auth = headers.get("Authorization")
        if not auth:
            raise GlueError(400, "MissingAuthenticationTokenException",
                            "Missing Authentication Token")
        algo, _, rest = auth.strip().partition(" ")
        comps = {}
        for c in rest.split(","):
            k, sep, v = c.strip().partition("=")
            if sep:
                comps[k] = v
        if algo != "AWS4-HMAC-SHA256" or not all(
                k in comps for k in ("Credential", "SignedHeaders", "Signature")):
            raise GlueError(400, "IncompleteSignatureException",
                            "Authorization header requires 'Credential', 'Signature' and "
                            "'SignedHeaders' parameters.")
        parts = comps["Credential"].split("/")
        if len(parts) != 5:
            raise GlueError(400, "IncompleteSignatureException", "Invalid credential scope.")
        access, date, region, service, term = parts
        if access not in self.keys:
            raise GlueError(400, "UnrecognizedClientException", BAD_TOKEN)
        if service != "glue" or term != "aws4_request":
            raise GlueError(400, "InvalidSignatureException",
                            "Credential should be scoped to correct service: 'glue'.")
        if region != self.region:
            raise GlueError(400, "InvalidSignatureException",
                            "Credential should be scoped to a valid region.")
        amz_date_s = headers.get("X-Amz-Date")
        amz_date = parse_amz_date(amz_date_s)
        if amz_date is None or date != amz_date_s[:8]:
            raise GlueError(400, "IncompleteSignatureException",
                            "Date in Credential scope does not match YYYYMMDD from ISO-8601 "
                            "version of date from HTTP.")
        if abs(now - amz_date) > MAX_SKEW:
            raise GlueError(400, "InvalidSignatureException",
                            "Signature expired: %s is now earlier than %s (15 min skew)."
                            % (amz_date_s, (now - MAX_SKEW).strftime("%Y%m%dT%H%M%SZ")))
        signed = [s for s in comps["SignedHeaders"].split(";") if s]
        for must in ("host", "x-amz-date"):
            if must not in signed:
                raise GlueError(400, "InvalidSignatureException",
                                "'%s' must be a signed header." % must)
        token = headers.get("X-Amz-Security-Token")
        want = self.tokens.get(access)
        if want is not None or token is not None:
            if want is None or token is None or "x-amz-security-token" not in signed \
                    or not hmac.compare_digest(token.encode(), want.encode()):
                raise GlueError(400, "UnrecognizedClientException", BAD_TOKEN)
        values = []
        for n in signed:
            for v in headers.get_all(n) or []:
                values.append((n, v))
        signer = _ExactHeadersSigV4(Credentials(access, self.keys[access], token),
                                    self.region, values)
        req = AWSRequest(method=method, url="http://verify.invalid" + path, data=body)
        req.context["timestamp"] = amz_date_s
        creq = signer.canonical_request(req)
        sts = signer.string_to_sign(req, creq)
        sig = signer.signature(sts, req)
        if not hmac.compare_digest(sig, comps["Signature"].lower()):
            raise GlueError(400, "InvalidSignatureException", BAD_SIGNATURE)
        return access


# ---------------------------------------------------------------------------
# The catalog


class Catalog:
    def __init__(self, path=None):
        self.lock = threading.Lock()
        self.path = path
        self.mtime = None
        self.data = {"databases": [], "tables": {}, "partitions": {}}
        self.others = {}
        self.maybe_reload()

    @staticmethod
    def _shape(data):
        return {"databases": list(data.get("databases", [])),
                "tables": dict(data.get("tables", {})),
                "partitions": dict(data.get("partitions", {}))}

    def set(self, data):
        if not isinstance(data, dict):
            raise ValueError("fixture must be a JSON object")
        with self.lock:
            self.data = self._shape(data)
            self.others = {k: self._shape(v) for k, v in dict(data.get("catalogs", {})).items()}
            self.path = None

    def view(self, catalog_id):
        """The catalog of another account (CatalogId), or None."""
        if catalog_id not in self.others:
            return None
        v = Catalog()
        v.data = self.others[catalog_id]
        v.expression_mode = self.expression_mode
        return v

    def maybe_reload(self):
        if not self.path:
            return
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return
        with self.lock:
            if self.mtime == (st.st_mtime_ns, st.st_size):
                return
            with open(self.path) as f:
                data = json.load(f)
            self.data = self._shape(data)
            self.others = {k: self._shape(v) for k, v in dict(data.get("catalogs", {})).items()}
            self.mtime = (st.st_mtime_ns, st.st_size)

    def database(self, name):
        for db in self.data["databases"]:
            if db.get("Name") == name:
                return db
        if name in self.data["tables"]:
            return {"Name": name}
        return None

    def databases(self):
        names = [d.get("Name") for d in self.data["databases"]]
        extra = [{"Name": n} for n in self.data["tables"] if n not in names]
        return list(self.data["databases"]) + extra


def page(items, body, op, key):
    """Cut a page; NextToken is an opaque base64 of the offset and the call."""
    mr = body.get("MaxResults", PAGE_MAX)
    if not isinstance(mr, int) or isinstance(mr, bool) or mr < 1 or mr > PAGE_MAX:
        raise GlueError(400, "ValidationException",
                        "1 validation error detected: Value '%s' at 'maxResults' failed to "
                        "satisfy constraint: Member must have value less than or equal to %d"
                        % (mr, PAGE_MAX))
    start = 0
    tok = body.get("NextToken")
    if tok is not None:
        try:
            t = json.loads(base64.b64decode(tok.encode(), validate=True))
            if t["op"] != op or t["key"] != key:
                raise ValueError
            start = int(t["offset"])
        except Exception:
            raise GlueError(400, "InvalidInputException", "Invalid NextToken.")
    chunk = items[start:start + mr]
    out = {}
    if start + mr < len(items):
        out["NextToken"] = base64.b64encode(json.dumps(
            {"op": op, "key": key, "offset": start + mr}).encode()).decode()
    return chunk, out


def require(body, *names):
    for n in names:
        v = body.get(n)
        if not isinstance(v, str) or not v:
            raise GlueError(400, "ValidationException",
                            "1 validation error detected: Value null at '%s' failed to "
                            "satisfy constraint: Member must not be null"
                            % (n[0].lower() + n[1:]))


def op_get_databases(cat, body):
    chunk, out = page(cat.databases(), body, "GetDatabases", "")
    out["DatabaseList"] = chunk
    return out


def op_get_database(cat, body):
    require(body, "Name")
    db = cat.database(body["Name"])
    if db is None:
        raise GlueError(400, "EntityNotFoundException", "Database %s not found." % body["Name"])
    return {"Database": db}


def _tables(cat, dbname):
    if cat.database(dbname) is None:
        raise GlueError(400, "EntityNotFoundException", "Database %s not found." % dbname)
    out = []
    for t in cat.data["tables"].get(dbname, []):
        t = dict(t)
        t.setdefault("DatabaseName", dbname)
        t.setdefault("CatalogId", "123456789012")
        out.append(t)
    return out


EXPRESSION_MODES = ("regex", "search", "hive")


def expression_matcher(expr, mode):
    """A predicate on table names for a GetTables Expression (see the docstring)."""
    try:
        if mode == "search":
            rx = re.compile(expr)
            return lambda name: rx.search(name) is not None
        if mode == "hive":
            rxs = [re.compile(alt.replace("*", ".*"), re.IGNORECASE)
                   for alt in expr.split("|")]
            return lambda name: any(rx.fullmatch(name) for rx in rxs)
        rx = re.compile(expr)
        return lambda name: rx.fullmatch(name) is not None
    except re.error as e:
        raise GlueError(400, "InvalidInputException", "Invalid Expression: %s" % e)


def op_get_tables(cat, body):
    require(body, "DatabaseName")
    tables = _tables(cat, body["DatabaseName"])
    expr = body.get("Expression")
    if expr is not None:
        match = expression_matcher(expr, cat.expression_mode)
        tables = [t for t in tables if match(t.get("Name", ""))]
    chunk, out = page(tables, body, "GetTables", body["DatabaseName"] + "\0" + (expr or ""))
    out["TableList"] = chunk
    return out


def op_get_table(cat, body):
    require(body, "DatabaseName", "Name")
    for t in _tables(cat, body["DatabaseName"]):
        if t.get("Name") == body["Name"]:
            return {"Table": t}
    raise GlueError(400, "EntityNotFoundException", "Table %s not found." % body["Name"])


def op_get_partitions(cat, body):
    require(body, "DatabaseName", "TableName")
    op_get_table(cat, {"DatabaseName": body["DatabaseName"], "Name": body["TableName"]})
    if body.get("Expression"):
        raise GlueError(400, "InvalidInputException",
                        "Partition expressions are not supported by this stand-in.")
    parts = []
    for p in cat.data["partitions"].get(body["DatabaseName"], {}).get(body["TableName"], []):
        p = dict(p)
        p.setdefault("DatabaseName", body["DatabaseName"])
        p.setdefault("TableName", body["TableName"])
        if body.get("ExcludeColumnSchema") and isinstance(p.get("StorageDescriptor"), dict):
            sd = dict(p["StorageDescriptor"])
            sd.pop("Columns", None)
            p["StorageDescriptor"] = sd
        parts.append(p)
    chunk, out = page(parts, body, "GetPartitions",
                      body["DatabaseName"] + "\0" + body["TableName"])
    out["Partitions"] = chunk
    return out


OPS = {"GetDatabases": op_get_databases, "GetDatabase": op_get_database,
       "GetTables": op_get_tables, "GetTable": op_get_table,
       "GetPartitions": op_get_partitions}


# ---------------------------------------------------------------------------
# HTTP


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "GlueEmulator/1"

    def log_message(self, fmt, *args):
        pass

    def _send(self, status, obj, ctype=JSON_TYPE):
        data = (json.dumps(obj) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(data)

    def _read(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def do_GET(self):
        self._admin("GET")

    def do_DELETE(self):
        self._admin("DELETE")

    def do_POST(self):
        if self.path.startswith("/_emulator/"):
            return self._admin("POST")
        st = self.server.state
        body = self._read()
        op = (self.headers.get("X-Amz-Target") or "")
        op = op[len("AWSGlue."):] if op.startswith("AWSGlue.") else None
        record = {"operation": op, "body": None, "status": None, "error": None,
                  "access_key": None}
        try:
            try:
                record["body"] = json.loads(body or b"{}")
            except ValueError:
                record["body"] = None
            f = st.faults.take("POST", "/%s" % (op or ""))
            if f is not None:
                record["fault"] = f["kind"]
                if f["kind"] == "delay":
                    time.sleep(f.get("delay_ms", 0) / 1000.0)
                elif f["kind"] == "drop":
                    record["status"] = 0
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                elif f["kind"] == "throttling":
                    raise GlueError(400, "ThrottlingException", "Rate exceeded")
                else:
                    raise GlueError(int(f["kind"]), "InternalServiceException",
                                    "Internal service error (injected)")
            path = urlsplit(self.path).path
            record["access_key"] = st.verifier.verify("POST", path, self.headers, body)
            if path != "/":
                raise GlueError(404, "UnknownOperationException", "Not found: %s" % path)
            if op not in OPS:
                raise GlueError(400, "UnknownOperationException",
                                "Operation %r is not supported." % op)
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            if ctype != JSON_TYPE:
                raise GlueError(400, "SerializationException",
                                "Content-Type must be %s" % JSON_TYPE)
            if not isinstance(record["body"], dict):
                raise GlueError(400, "SerializationException", "The body is not a JSON object.")
            st.catalog.maybe_reload()
            catalog_id = record["body"].get("CatalogId")
            if catalog_id is not None and (not isinstance(catalog_id, str) or
                                           not 1 <= len(catalog_id) <= 255):
                raise GlueError(400, "ValidationException",
                                "1 validation error detected: Value at 'catalogId' failed to "
                                "satisfy constraint: Member must have length between 1 and 255")
            st.authorize(record["access_key"], op, record["body"])
            with st.catalog.lock:
                cat = st.catalog
                if catalog_id is not None and catalog_id != st.account_id:
                    cat = st.catalog.view(catalog_id)
                    if cat is None:
                        raise GlueError(400, "AccessDeniedException",
                                        "User: arn:aws:iam::%s:user/%s is not authorized to "
                                        "perform: glue:%s on resource: arn:aws:glue:%s:%s:catalog"
                                        % (st.account_id, record["access_key"], op, st.region,
                                           catalog_id))
                answer = OPS[op](cat, record["body"])
            record["status"] = 200
            self._send(200, answer)
        except GlueError as e:
            record["status"] = e.status
            record["error"] = e.type
            t = e.type
            if t in ("UnrecognizedClientException", "InvalidSignatureException",
                     "IncompleteSignatureException", "MissingAuthenticationTokenException"):
                t = "com.amazon.coral.service#" + t   # as AWS sends auth errors
            self._send(e.status, {"__type": t, "message": e.message})
        finally:
            with st.lock:
                st.requests.append(record)
                if st.request_log:
                    with open(st.request_log, "a", encoding="utf-8") as f:
                        f.write(json.dumps(record, sort_keys=True, default=str) + "\n")
            if not st.quiet:
                log(PROG, "POST %s %s" % (op, record["status"]))

    def _admin(self, method):
        st = self.server.state
        path = urlsplit(self.path).path
        try:
            if method == "POST":
                payload = json.loads(self._read() or b"null")
            if path == "/_emulator/health":
                return self._send(200, {"ok": True}, "application/json")
            if path == "/_emulator/settings" and method == "POST":
                mode = payload.get("expression_mode")
                if mode not in EXPRESSION_MODES:
                    raise ValueError("expression_mode must be one of %s" % (EXPRESSION_MODES,))
                st.catalog.expression_mode = mode
                return self._send(200, {"expression_mode": mode}, "application/json")
            if path == "/_emulator/fixture" and method == "POST":
                st.catalog.set(payload)
                return self._send(200, {"ok": True}, "application/json")
            if path == "/_emulator/faults":
                if method == "POST":
                    specs = payload if isinstance(payload, list) else [payload]
                    added = [st.faults.add(s) for s in specs]
                    return self._send(200, {"faults": added}, "application/json")
                if method == "DELETE":
                    st.faults.clear()
                    return self._send(200, {"ok": True}, "application/json")
                return self._send(200, {"faults": st.faults.list()}, "application/json")
            if path == "/_emulator/requests":
                with st.lock:
                    if method == "DELETE":
                        st.requests = []
                        return self._send(200, {"ok": True}, "application/json")
                    return self._send(200, {"requests": list(st.requests)}, "application/json")
            return self._send(404, {"error": "no such admin path"}, "application/json")
        except (ValueError, KeyError) as e:
            return self._send(400, {"error": str(e)}, "application/json")


class State:
    def __init__(self, args):
        keys = dict(k.split("=", 1) for k in args.key)
        tokens = dict(t.split("=", 1) for t in args.session_token)
        self.verifier = Verifier(keys, tokens, args.region)
        self.catalog = Catalog(args.fixture)
        self.catalog.expression_mode = args.expression_mode
        self.faults = FaultQueue(FAULT_KINDS)
        self.requests = []
        self.lock = threading.Lock()
        self.quiet = args.quiet
        self.request_log = args.request_log
        self.region = args.region
        self.account_id = args.account_id
        self.policies = {}
        for kv in args.policy:
            a, sep, path = kv.partition("=")
            if not sep or a not in keys:
                raise SystemExit("--policy wants ACCESS=FILE for a --key ACCESS")
            try:
                with open(path, "rb") as f:
                    self.policies[a] = iam_policy.Policy(f.read())
            except (OSError, iam_policy.PolicyError) as e:
                raise SystemExit("--policy %s: %s" % (path, e))

    def resources(self, op, body):
        base = "arn:aws:glue:%s:%s:" % (self.region, body.get("CatalogId") or self.account_id)
        db = body.get("DatabaseName") if op != "GetDatabase" else body.get("Name")
        out = [base + "catalog"]
        if op == "GetDatabases":
            return out + [base + "database/*"]
        out.append(base + "database/%s" % db)
        if op == "GetTables":
            out.append(base + "table/%s/*" % db)
        elif op in ("GetTable", "GetPartitions"):
            out.append(base + "table/%s/%s" % (db, body.get("Name") or body.get("TableName")))
        return out

    def authorize(self, access, op, body):
        policy = self.policies.get(access)
        if policy is None:
            return
        action = "glue:" + op
        for res in self.resources(op, body):
            decision = policy.evaluate(action, res, {})
            if decision != "Allow":
                raise GlueError(400, "AccessDeniedException", iam_policy.denial_message(
                    "arn:aws:iam::%s:user/%s" % (self.account_id, access), action, res,
                    decision).replace('"', ""))


def make_server(args):
    httpd = LoopbackHTTPServer(args.host, args.port, Handler)
    httpd.state = State(args)
    return httpd


def parse_args(argv):
    ap = argparse.ArgumentParser(description="AWS Glue Data Catalog stand-in")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--fixture")
    ap.add_argument("--key", action="append", default=[], help="ACCESS=SECRET")
    ap.add_argument("--session-token", action="append", default=[], help="ACCESS=TOKEN")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--quiet", action="store_true", help="do not log requests to stderr")
    ap.add_argument("--policy", action="append", default=[], metavar="ACCESS=FILE",
                    help="IAM identity policy JSON enforced for requests signed by ACCESS")
    ap.add_argument("--expression-mode", choices=EXPRESSION_MODES, default="regex",
                    help="how GetTables reads Expression (see the module docstring)")
    ap.add_argument("--account-id", default="123456789012", help="AWS account in Glue ARNs")
    ap.add_argument("--request-log",
                    help="append every request (operation, body, status) to this file as JSON")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not args.key:
        raise SystemExit("at least one --key ACCESS=SECRET is required")
    httpd = make_server(args)
    port = httpd.server_address[1]
    if args.port_file:
        write_port_file(args.port_file, port)
    log(PROG, "listening on %s:%d" % (args.host, port))
    signal.signal(signal.SIGTERM, lambda *a: threading.Thread(target=httpd.shutdown).start())
    try:
        httpd.serve_forever()
    finally:
        httpd.server_close()


if __name__ == "__main__":
    main()
