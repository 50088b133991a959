"""Stage storage readers and decompression.

  file:///abs/dir/   local directory (development extension, not Snowflake)
  s3://bucket/prefix/  path-style requests to --s3-endpoint, signed with SigV4
                       (botocore) using the stage CREDENTIALS or the --s3 keys
  gcs://bucket/prefix/ GCS JSON API on --gcs-endpoint:
                       GET /storage/v1/b/<bucket>/o/<urlencoded name>?alt=media
Only loopback endpoints are ever contacted.
"""

import bz2
import email.utils
import gzip
import hashlib
import io
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
import zlib

try:
    import zstandard
except ImportError:  # pragma: no cover - depends on the machine
    zstandard = None


class NotFound(Exception):
    pass


class StorageError(Exception):
    pass


class NoEndpoint(StorageError):
    """The stage's cloud has no endpoint in this emulator (no --s3-endpoint ...)."""


class StorageConfig:
    def __init__(self, s3_endpoint=None, s3_access_key=None, s3_secret_key=None,
                 s3_region="us-east-1", gcs_endpoint=None, timeout=30):
        self.s3_endpoint = s3_endpoint.rstrip("/") if s3_endpoint else None
        self.s3_access_key = s3_access_key
        self.s3_secret_key = s3_secret_key
        self.s3_region = s3_region or "us-east-1"
        self.gcs_endpoint = gcs_endpoint.rstrip("/") if gcs_endpoint else None
        self.timeout = timeout
        self.gcs_credentials = None   # service-account key (dict): the integration's account
        self.copy_dir = None          # keep a copy of every staged file read (secret scan)
        self._gcs_token = None
        self._gcs_token_exp = 0

    def gcs_auth(self):
        """Authorization header for GCS reads: "Bearer emulator" without
        --gcs-credentials; else an OAuth token for the service account
        (JWT bearer grant on its token_uri, loopback only), cached."""
        if not self.gcs_credentials:
            return "Bearer emulator"
        now = time.time()
        if self._gcs_token and now < self._gcs_token_exp - 60:
            return "Bearer " + self._gcs_token
        import jwt as _jwt
        c = self.gcs_credentials
        check_loopback(c["token_uri"])
        assertion = _jwt.encode({"iss": c["client_email"], "aud": c["token_uri"], "iat": int(now),
                                 "exp": int(now) + 3600,
                                 "scope": "https://www.googleapis.com/auth/devstorage.read_write"},
                                c["private_key"], algorithm="RS256",
                                headers={"kid": c.get("private_key_id")})
        body = urllib.parse.urlencode({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                                       "assertion": assertion}).encode()
        req = urllib.request.Request(c["token_uri"], data=body, headers={
            "Content-Type": "application/x-www-form-urlencoded"})
        with urllib.request.urlopen(req, timeout=self.timeout) as r:
            doc = json.loads(r.read())
        self._gcs_token = doc["access_token"]
        self._gcs_token_exp = now + int(doc.get("expires_in", 3600))
        return "Bearer " + self._gcs_token


def check_loopback(endpoint):
    host = urllib.parse.urlsplit(endpoint).hostname or ""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise StorageError("endpoint %s is not a loopback address; the emulator only "
                       "talks to 127.0.0.1" % endpoint)


def split_url(url):
    """'s3://b/k/x' -> ('s3', 'b', 'k/x'); 'file:///d/x' -> ('file', '', '/d/x')."""
    low = url.lower()
    if low.startswith("file://"):
        return "file", "", urllib.parse.unquote(url[7:])
    for scheme in ("s3", "gcs", "gs", "azure"):
        pref = scheme + "://"
        if low.startswith(pref):
            rest = url[len(pref):]
            bucket, _, key = rest.partition("/")
            return ("gcs" if scheme == "gs" else scheme), bucket, key
    raise StorageError("unsupported stage URL %s" % url)


def join_url(base, *parts):
    out = base
    for part in parts:
        if not part:
            continue
        if not out.endswith("/"):
            out += "/"
        out += part.lstrip("/")
    return out


# ---------------------------------------------------------------------------

def _http(req, timeout):
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as e:
        body = e.read()
        if e.code == 404:
            raise NotFound(body[:200].decode("utf-8", "replace"))
        raise StorageError("HTTP %d from storage: %s" % (e.code, body[:200].decode("utf-8", "replace")))
    except (urllib.error.URLError, OSError) as e:
        raise StorageError("storage request failed: %s" % e)


def _s3_request(method, bucket, key, creds, cfg, query=None):
    if not cfg.s3_endpoint:
        raise NoEndpoint("s3:// stage used but the emulator has no --s3-endpoint")
    check_loopback(cfg.s3_endpoint)
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    ak = (creds or {}).get("AWS_KEY_ID") or cfg.s3_access_key
    sk = (creds or {}).get("AWS_SECRET_KEY") or cfg.s3_secret_key
    tok = (creds or {}).get("AWS_TOKEN")
    path = "/" + urllib.parse.quote(bucket, safe="")
    if key:
        path += "/" + urllib.parse.quote(key, safe="/~")
    url = cfg.s3_endpoint + path
    if query:
        url += "?" + urllib.parse.urlencode(sorted(query.items()), quote_via=urllib.parse.quote)
    headers = {"x-amz-content-sha256": hashlib.sha256(b"").hexdigest()}
    if ak and sk:
        areq = AWSRequest(method=method, url=url, headers=headers)
        S3SigV4Auth(Credentials(ak, sk, tok), "s3", cfg.s3_region).add_auth(areq)
        headers = dict(areq.headers.items())
    req = urllib.request.Request(url, method=method, headers=headers)
    return _http(req, cfg.timeout)


def _gcs_url(cfg, bucket, name=None, query=None):
    if not cfg.gcs_endpoint:
        raise NoEndpoint("gcs:// stage used but the emulator has no --gcs-endpoint")
    check_loopback(cfg.gcs_endpoint)
    url = "%s/storage/v1/b/%s/o" % (cfg.gcs_endpoint, urllib.parse.quote(bucket, safe=""))
    if name is not None:
        url += "/" + urllib.parse.quote(name, safe="")
    if query:
        url += "?" + urllib.parse.urlencode(query)
    return url


def fetch(url, creds, cfg, with_modified=False):
    """Returns (bytes, etag), or (bytes, etag, last_modified) with
    with_modified: the object's LAST_MODIFIED as seconds since the epoch
    (None when the store does not say).  With cfg.copy_dir, also keeps a
    copy of the file (the test suite's secret scan searches the files
    sfexport staged, which it deletes once they are loaded)."""
    data, etag, modified = _fetch(url, creds, cfg)
    if cfg.copy_dir:
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", url)[-180:] + "." + (etag or "x")[:32]
        try:
            os.makedirs(cfg.copy_dir, exist_ok=True)
            with open(os.path.join(cfg.copy_dir, name), "wb") as f:
                f.write(data)
        except OSError as e:
            sys.stderr.write("[sfemu] cannot keep a copy of %s: %s\n" % (url, e))
    return (data, etag, modified) if with_modified else (data, etag)


def _http_date(headers):
    """Last-Modified (an HTTP-date, RFC 9110) as seconds since the epoch."""
    value = {k.lower(): v for k, v in headers.items()}.get("last-modified")
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def _fetch(url, creds, cfg):
    scheme, bucket, key = split_url(url)
    if scheme == "file":
        try:
            with open(key, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise NotFound(key)
        except IsADirectoryError:
            raise NotFound(key)
        except OSError as e:
            raise StorageError(str(e))
        try:
            modified = os.stat(key).st_mtime
        except OSError:
            modified = None
        return data, hashlib.md5(data).hexdigest(), modified
    if scheme == "s3":
        _, headers, data = _s3_request("GET", bucket, key, creds, cfg)
        etag = {k.lower(): v for k, v in headers.items()}.get("etag", "").strip('"')
        return data, etag or hashlib.md5(data).hexdigest(), _http_date(headers)
    if scheme == "gcs":
        req = urllib.request.Request(_gcs_url(cfg, bucket, key, {"alt": "media"}),
                                     headers={"Authorization": cfg.gcs_auth()})
        _, headers, data = _http(req, cfg.timeout)
        low = {k.lower(): v for k, v in headers.items()}
        etag = low.get("etag", "").strip('"')
        return data, etag or hashlib.md5(data).hexdigest(), _http_date(headers)
    raise StorageError("unsupported stage URL %s" % url)


def list_files(prefix_url, creds, cfg):
    """List object URLs under a prefix URL (recursively)."""
    scheme, bucket, key = split_url(prefix_url)
    out = []
    if scheme == "file":
        base = key
        if os.path.isfile(base):
            return [prefix_url]
        root = base if os.path.isdir(base) else os.path.dirname(base)
        for dirpath, _, files in os.walk(root):
            for fn in files:
                full = os.path.join(dirpath, fn)
                if full.startswith(base):
                    out.append("file://" + full)
        return sorted(out)
    if scheme == "s3":
        token = None
        while True:
            q = {"list-type": "2", "prefix": key}
            if token:
                q["continuation-token"] = token
            _, _, body = _s3_request("GET", bucket, "", creds, cfg, query=q)
            root = ET.fromstring(body)
            ns = ""
            if root.tag.startswith("{"):
                ns = root.tag.split("}")[0] + "}"
            for c in root.findall(ns + "Contents"):
                k = c.find(ns + "Key").text
                if not k.endswith("/"):
                    out.append("s3://%s/%s" % (bucket, k))
            trunc = root.find(ns + "IsTruncated")
            nxt = root.find(ns + "NextContinuationToken")
            if trunc is not None and trunc.text == "true" and nxt is not None:
                token = nxt.text
                continue
            return sorted(out)
    if scheme == "gcs":
        token = None
        while True:
            q = {"prefix": key}
            if token:
                q["pageToken"] = token
            req = urllib.request.Request(_gcs_url(cfg, bucket, None, q),
                                         headers={"Authorization": cfg.gcs_auth()})
            _, _, body = _http(req, cfg.timeout)
            doc = json.loads(body or b"{}")
            for it in doc.get("items", []):
                if not it["name"].endswith("/"):
                    out.append("gcs://%s/%s" % (bucket, it["name"]))
            token = doc.get("nextPageToken")
            if not token:
                return sorted(out)
    raise StorageError("unsupported stage URL %s" % prefix_url)


def delete(url, creds, cfg):
    scheme, bucket, key = split_url(url)
    if scheme == "file":
        os.remove(key)
    elif scheme == "s3":
        _s3_request("DELETE", bucket, key, creds, cfg)
    elif scheme == "gcs":
        req = urllib.request.Request(_gcs_url(cfg, bucket, key), method="DELETE",
                                     headers={"Authorization": cfg.gcs_auth()})
        _http(req, cfg.timeout)


# ---------------------------------------------------------------------------
# Decompression (COMPRESSION = AUTO detects gzip / zstd / bz2 by magic bytes,
# and by the file extension as a fallback).

def _zstd_decompress(data):
    if zstandard is not None:
        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data),
                                                            read_across_frames=True)
        return reader.read()
    exe = shutil.which("zstd")
    if not exe:
        raise StorageError("zstd-compressed file but neither python3-zstandard nor zstd found")
    proc = subprocess.run([exe, "-dc", "-q"], input=data, capture_output=True)
    if proc.returncode != 0:
        raise ValueError(proc.stderr.decode("utf-8", "replace").strip())
    return proc.stdout


def decompress(data, compression, name):
    comp = (compression or "AUTO").upper()
    low = name.lower()
    if comp == "AUTO":
        if data[:2] == b"\x1f\x8b":
            comp = "GZIP"
        elif data[:4] == b"\x28\xb5\x2f\xfd":
            comp = "ZSTD"
        elif data[:3] == b"BZh":
            comp = "BZ2"
        elif low.endswith(".gz"):
            comp = "GZIP"
        elif low.endswith(".zst"):
            comp = "ZSTD"
        elif low.endswith(".bz2"):
            comp = "BZ2"
        elif low.endswith(".deflate"):
            comp = "DEFLATE"
        elif low.endswith(".raw_deflate"):
            comp = "RAW_DEFLATE"
        else:
            comp = "NONE"
    try:
        if comp == "NONE":
            return data
        if comp == "GZIP":
            return gzip.decompress(data)
        if comp == "ZSTD":
            return _zstd_decompress(data)
        if comp == "BZ2":
            return bz2.decompress(data)
        if comp == "DEFLATE":
            return zlib.decompress(data)
        if comp == "RAW_DEFLATE":
            return zlib.decompress(data, -15)
    except (OSError, EOFError, ValueError, zlib.error) as e:
        raise StorageError("Failed to decompress %s file: %s" % (comp.lower(), e))
    raise StorageError("compression %s is not supported by the emulator" % comp)
