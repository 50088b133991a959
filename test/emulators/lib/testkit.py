"""Helpers shared by the stand-ins' unit tests (test/emulators/*/test_*.py).

    from testkit import Proc, start, http_req, make_pki, EchoUpstream

start(NAME, args, tmpdir) runs test/emulators/start NAME args... with
--port 0 --port-file, waits for the port file and returns a Proc (.port,
.stop(), .log_path): the same way the TAP tests, the demo and the bench
start a stand-in.
"""

import http.client
import os
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

EMULATORS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START = os.path.join(EMULATORS, "start")


def wait_port_file(path, proc, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("process exited early with %s" % proc.returncode)
        try:
            with open(path) as f:
                s = f.read().strip()
            if s:
                return int(s)
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    raise RuntimeError("no port file %s after %ss" % (path, timeout))


class Proc:
    def __init__(self, cmd, port_file, log_path):
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self.port = wait_port_file(port_file, self.proc)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def start(name, args, tmpdir, label=None):
    """Start the stand-in NAME (a folder of test/emulators) on a free port;
    its port file and log are TMPDIR/LABEL.port and TMPDIR/LABEL.log."""
    label = label or name
    port_file = os.path.join(tmpdir, label + ".port")
    return Proc([START, name, "--port", "0", "--port-file", port_file] + list(args),
                port_file, os.path.join(tmpdir, label + ".log"))


def http_req(port, method, target, body=b"", headers=None, timeout=30):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, target, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def make_pki(t):
    """With the openssl command, in directory T: two CAs (ca.pem, other.pem)
    and a server certificate srv.pem / srv.key for 127.0.0.1 and localhost
    signed by ca."""
    def ossl(*args):
        subprocess.run(("openssl",) + args, check=True, capture_output=True)
    for ca in ("ca", "other"):
        ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-keyout", os.path.join(t, ca + ".key"), "-out", os.path.join(t, ca + ".pem"),
             "-subj", "/CN=test " + ca)
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", os.path.join(t, "srv.key"),
         "-out", os.path.join(t, "srv.csr"), "-subj", "/CN=127.0.0.1")
    with open(os.path.join(t, "ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ossl("x509", "-req", "-in", os.path.join(t, "srv.csr"), "-CA", os.path.join(t, "ca.pem"),
         "-CAkey", os.path.join(t, "ca.key"), "-CAcreateserial", "-days", "1",
         "-out", os.path.join(t, "srv.pem"), "-extfile", os.path.join(t, "ext"))


class EchoUpstream:
    """A tiny HTTP upstream on 127.0.0.1 answering GET with "PATH HOST"."""

    def __init__(self):
        class Up(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                data = ("%s %s" % (self.path, self.headers.get("Host"))).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Up)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.port = self.httpd.server_address[1]

    def stop(self):
        self.httpd.shutdown()
