#!/usr/bin/python3
"""Throwaway Google service-account key files for tests.

    from gcs_keys import make_service_account
    info = make_service_account("/tmp/sa.json", "http://127.0.0.1:PORT/token")

CLI:
    test/emulators/lib/gcs_keys.py PATH TOKEN_URI [--email NAME@PROJECT.iam.gserviceaccount.com]
                               [--project ID] [--bits 2048]

The JSON has the fields of a real key file downloaded from the Cloud console
("type": "service_account", project_id, private_key_id, private_key (PKCS#8
PEM), client_email, client_id, auth_uri, token_uri, auth_provider_x509_cert_url,
client_x509_cert_url, universe_domain).  The key is generated locally and is
worthless outside the emulator.  token_uri should point at the emulator's
/token so that clients using it (as Google's libraries do: the JWT "aud" is the
token_uri) talk to the emulator.
"""

import argparse
import json
import os
import secrets
import sys
from urllib.parse import quote

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def make_service_account(path, token_uri, email=None, project_id="sfexport-test",
                         bits=2048):
    """Write a realistic service-account key JSON to path (mode 0600).

    Returns the dict that was written.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(serialization.Encoding.PEM,
                            serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    if email is None:
        email = "sfexport-%s@%s.iam.gserviceaccount.com" % (
            secrets.token_hex(3), project_id)
    info = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": email,
        "client_id": str(secrets.randbelow(10 ** 21 - 10 ** 20) + 10 ** 20),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/"
                                + quote(email, safe=""),
        "universe_domain": "googleapis.com",
    }
    tmp = "%s.tmp%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
    return info


def main(argv=None):
    p = argparse.ArgumentParser(description="write a throwaway service-account key")
    p.add_argument("path")
    p.add_argument("token_uri")
    p.add_argument("--email")
    p.add_argument("--project", default="sfexport-test")
    p.add_argument("--bits", type=int, default=2048)
    a = p.parse_args(argv)
    info = make_service_account(a.path, a.token_uri, a.email, a.project, a.bits)
    sys.stdout.write(info["client_email"] + "\n")


if __name__ == "__main__":
    main()
