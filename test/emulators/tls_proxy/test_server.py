"""Unit tests of the TLS-terminating proxy (server.py) in front of a tiny
upstream, with a CA and certificates made by the openssl command.

Run:  cd test/emulators/tls_proxy && /usr/bin/python3 -m unittest -q test_server
"""

import http.client
import json
import os
import shutil
import ssl
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from testkit import EchoUpstream, make_pki, start  # noqa: E402


class TlsProxyTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = t = tempfile.mkdtemp(prefix="tlsemu-")
        make_pki(t)
        cls.up = EchoUpstream()
        cls.tls_log = os.path.join(t, "tls.jsonl")
        cls.tls = start("tls_proxy", ["--cert", os.path.join(t, "srv.pem"),
                                      "--key", os.path.join(t, "srv.key"),
                                      "--upstream", "http://127.0.0.1:%d" % cls.up.port,
                                      "--log", cls.tls_log], t, "tls")

    @classmethod
    def tearDownClass(cls):
        cls.tls.stop()
        cls.up.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def ctx(self, ca="ca"):
        return ssl.create_default_context(cafile=os.path.join(self.tmp, ca + ".pem"))

    def https_get(self, ctx, host="127.0.0.1", path="/x"):
        c = http.client.HTTPSConnection(host, self.tls.port, context=ctx, timeout=10)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read().decode()
        finally:
            c.close()

    def events(self):
        with open(self.tls_log) as f:
            return [json.loads(line) for line in f]

    def test_tls_terminator(self):
        st, body = self.https_get(self.ctx(), path="/a?b=1")
        self.assertEqual(st, 200)
        self.assertEqual(body, "/a?b=1 127.0.0.1:%d" % self.tls.port)  # Host unchanged
        self.assertEqual(self.https_get(self.ctx(), host="localhost")[0], 200)
        self.assertIn("localhost", [e.get("sni") for e in self.events()])
        with self.assertRaises(ssl.SSLCertVerificationError):
            self.https_get(self.ctx("other"))
        time.sleep(0.2)
        self.assertEqual(self.events()[-1]["event"], "handshake_failed")


if __name__ == "__main__":
    unittest.main()
