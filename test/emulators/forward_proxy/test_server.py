"""Unit tests of the recording forward proxy (server.py): CONNECT tunnels
(here to the TLS terminator, ../tls_proxy), plain absolute-URI HTTP, Basic
proxy credentials, the request record, loopback-only targets.

Run:  cd test/emulators/forward_proxy && /usr/bin/python3 -m unittest -q test_server
"""

import base64
import http.client
import json
import os
import shutil
import ssl
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from testkit import EchoUpstream, http_req, make_pki, start  # noqa: E402


class ForwardProxyTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = t = tempfile.mkdtemp(prefix="fpemu-")
        make_pki(t)
        cls.up = EchoUpstream()
        cls.up_port = cls.up.port
        cls.tls = start("tls_proxy", ["--cert", os.path.join(t, "srv.pem"),
                                      "--key", os.path.join(t, "srv.key"),
                                      "--upstream", "http://127.0.0.1:%d" % cls.up.port], t, "tls")
        cls.fp = start("forward_proxy", ["--auth", "u:Pw-secret-1"], t, "fp")
        cls.fp_log = cls.fp.log_path

    @classmethod
    def tearDownClass(cls):
        cls.fp.stop()
        cls.tls.stop()
        cls.up.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def ctx(self, ca="ca"):
        return ssl.create_default_context(cafile=os.path.join(self.tmp, ca + ".pem"))

    def proxy_log(self, method="GET"):
        st, _, body = http_req(self.fp.port, method, "/_proxy/log")
        self.assertEqual(st, 200)
        return json.loads(body)["requests"]

    def test_forward_proxy(self):
        self.proxy_log("DELETE")
        auth = {"Proxy-Authorization": "Basic " + base64.b64encode(b"u:Pw-secret-1").decode()}
        # CONNECT tunnel to the TLS terminator
        c = http.client.HTTPSConnection("127.0.0.1", self.fp.port, context=self.ctx(), timeout=10)
        c.set_tunnel("127.0.0.1", self.tls.port, headers=auth)
        c.request("GET", "/t")
        r = c.getresponse()
        self.assertEqual((r.status, r.read().decode()), (200, "/t 127.0.0.1:%d" % self.tls.port))
        c.close()
        # plain HTTP, absolute target
        st, _, body = http_req(self.fp.port, "GET", "http://127.0.0.1:%d/p?sig=1" % self.up_port,
                               headers=auth)
        self.assertEqual((st, body.decode()), (200, "/p?sig=1 127.0.0.1:%d" % self.up_port))
        # without and with wrong credentials: 407
        st, h, _ = http_req(self.fp.port, "GET", "http://127.0.0.1:%d/p" % self.up_port)
        self.assertEqual(st, 407)
        self.assertIn("proxy-authenticate", h)
        c = http.client.HTTPConnection("127.0.0.1", self.fp.port, timeout=10)
        c.set_tunnel("127.0.0.1", self.tls.port,
                     headers={"Proxy-Authorization": "Basic " + base64.b64encode(b"u:bad").decode()})
        with self.assertRaises(OSError):
            c.connect()
        c.close()
        # non-loopback targets are refused
        st, _, _ = http_req(self.fp.port, "GET", "http://192.0.2.1/x", headers=auth)
        self.assertEqual(st, 403)
        log = self.proxy_log()
        self.assertEqual([(r["method"], r["tunnel"], r["auth"], r["status"]) for r in log],
                         [("CONNECT", True, "ok", 200), ("GET", False, "ok", 200),
                          ("GET", False, "missing", 407), ("CONNECT", True, "wrong", 407),
                          ("GET", False, "ok", 403)])
        self.assertEqual(log[1]["target"], "127.0.0.1:%d/p" % self.up_port)  # no query
        with open(self.fp_log) as f:
            text = f.read()
        self.assertNotIn("Pw-secret-1", text)
        self.assertNotIn(base64.b64encode(b"u:Pw-secret-1").decode(), text)
        self.assertNotIn("sig=1", text)


if __name__ == "__main__":
    unittest.main()
