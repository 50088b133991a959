"""Helpers of the credential stand-ins' unit tests: start a stand-in, and the
storage stand-ins (s3rver + s3_front, gcs) that accept what the credential
stand-ins issue (issued_creds.py).
"""

import os
import shutil
import unittest

from testkit import EMULATORS, http_req, start as _start  # noqa: F401

REGION = "eu-west-1"
BUCKET = "creds-test"
# the front's own key: what it signs with toward s3rver
FRONT_AK, FRONT_SK = "AKIDFRONTCREDS", "front-secret-creds"


def start(tmp, name, label=None, args=()):
    """Start the stand-in NAME (test/emulators/start NAME --port 0 ...), its
    port file and log TMP/LABEL.port and TMP/LABEL.log (LABEL: NAME)."""
    return _start(name, list(args), tmp, label)


def start_s3(tmp, issued_files, policies=()):
    """s3rver + s3_front accepting the credentials in issued_files.
    Returns (s3rver, front); the caller stops both."""
    node = shutil.which("node")
    mod = os.path.join(EMULATORS, "s3rver", "node_modules", "s3rver")
    if os.environ.get("SFEXPORT_SKIP_S3RVER") == "1":
        raise unittest.SkipTest("SFEXPORT_SKIP_S3RVER=1")
    if not node or not os.path.isdir(mod):
        raise RuntimeError("s3rver is not installed: run "
                           "`npm ci --prefix test/emulators/s3rver` first")
    s3rver = start(tmp, "s3rver", args=["--directory", os.path.join(tmp, "s3data"),
                                   "--configure-bucket", BUCKET,
                                   "--key", "%s=%s" % (FRONT_AK, FRONT_SK), "--silent"])
    args = ["--upstream", "http://127.0.0.1:%d" % s3rver.port, "--region", REGION,
            "--key", "%s=%s" % (FRONT_AK, FRONT_SK)]
    for f in issued_files:
        args += ["--issued-credentials", f]
    for role, path in policies:
        args += ["--policy", "%s=%s" % (role, path)]
    try:
        front = start(tmp, "s3_front", "front", args)
    except Exception:
        s3rver.stop()
        raise
    return s3rver, front


def start_gcs(tmp, issued_files):
    args = ["--data-dir", os.path.join(tmp, "gcsdata"), "--bucket", BUCKET]
    for f in issued_files:
        args += ["--issued-tokens", f]
    return start(tmp, "gcs", args=args)


def s3_client(endpoint, ak, sk, token=None):
    import botocore.session
    from botocore.config import Config
    return botocore.session.get_session().create_client(
        "s3", endpoint_url=endpoint, region_name=REGION,
        aws_access_key_id=ak, aws_secret_access_key=sk, aws_session_token=token,
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                      retries={"total_max_attempts": 1}))


def read_log(tmp, name):
    with open(os.path.join(tmp, name + ".log"), "rb") as f:
        return f.read()
