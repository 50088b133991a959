"""Test helpers shared by the credential stand-ins' unit tests: start a
stand-in, and the storage stand-ins (s3rver + sigv4_front.py, gcs_emulator.py)
that accept what the credential stand-ins issue (issued_creds.py).
"""

import os
import shutil
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from test_storage_emulators import PY, Proc, http_req  # noqa: E402,F401

REGION = "eu-west-1"
BUCKET = "creds-test"
# the front's own key: what it signs with toward s3rver
FRONT_AK, FRONT_SK = "AKIDFRONTCREDS", "front-secret-creds"


def start(tmp, name, script, args=()):
    """Start a stand-in (--port 0 --port-file) with its log in tmp/NAME.log."""
    pf = os.path.join(tmp, name + ".port")
    return Proc([PY, script, "--port", "0", "--port-file", pf] + list(args), pf,
                os.path.join(tmp, name + ".log"))


def start_s3(tmp, issued_files, policies=()):
    """s3rver + sigv4_front accepting the credentials in issued_files.
    Returns (s3rver, front); the caller stops both."""
    node = shutil.which("node")
    mod = os.path.join(HERE, "s3rver", "node_modules", "s3rver")
    if os.environ.get("SFEXPORT_SKIP_S3RVER") == "1":
        raise unittest.SkipTest("SFEXPORT_SKIP_S3RVER=1")
    if not node or not os.path.isdir(mod):
        raise RuntimeError("s3rver is not installed: run "
                           "`npm ci --prefix test/emulators/s3rver` first")
    pf = os.path.join(tmp, "s3rver.port")
    s3rver = Proc([node, os.path.join(HERE, "s3rver", "start-s3rver.js"),
                   "--directory", os.path.join(tmp, "s3data"), "--port", "0",
                   "--port-file", pf, "--configure-bucket", BUCKET,
                   "--key", "%s=%s" % (FRONT_AK, FRONT_SK), "--silent"],
                  pf, os.path.join(tmp, "s3rver.log"))
    args = ["--upstream", "http://127.0.0.1:%d" % s3rver.port, "--region", REGION,
            "--key", "%s=%s" % (FRONT_AK, FRONT_SK)]
    for f in issued_files:
        args += ["--issued-credentials", f]
    for role, path in policies:
        args += ["--policy", "%s=%s" % (role, path)]
    try:
        front = start(tmp, "front", os.path.join(HERE, "sigv4_front.py"), args)
    except Exception:
        s3rver.stop()
        raise
    return s3rver, front


def start_gcs(tmp, issued_files):
    args = ["--data-dir", os.path.join(tmp, "gcsdata"), "--bucket", BUCKET]
    for f in issued_files:
        args += ["--issued-tokens", f]
    return start(tmp, "gcs", os.path.join(HERE, "gcs_emulator.py"), args)


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
