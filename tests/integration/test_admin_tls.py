"""The admin API over TLS (--admin-tls ADDR:PORT, issue 13): the same API and token as the
plain listener, with the server's certificates, HTTP/1.1 only (ALPN), beside or instead of
--admin."""
import http.client
import json
import re
import shutil
import socket
import subprocess
import unittest

from harness import DETOUR, Server, test_pki


class AdminTls(unittest.TestCase):
    def start(self, admin="127.0.0.1:0"):
        srv = Server("/a /b\n", admin=admin,
                     args=["--admin-tls", "127.0.0.1:0", "--cert", test_pki().localhost])
        srv.start()
        self.addCleanup(srv.close)
        line = srv.wait_log(r"started: ")
        m = re.search(r"admin API on (.*)$", line)
        tls = [a for a in m.group(1).split() if a.startswith("tls:")]
        self.assertEqual(len(tls), 1, line)
        host, port = tls[0][4:].rsplit(":", 1)
        return srv, int(port)

    def api(self, port, path, token, method="GET", body=None):
        ctx = test_pki().client_context()
        c = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=10)
        headers = {"Authorization": "Bearer " + token} if token else {}
        if body is not None:
            body = json.dumps(body)
            headers["Content-Type"] = "application/json"
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, data

    def test_the_api_over_tls(self):
        srv, port = self.start()
        st, body = self.api(port, "/api/health", srv.token)
        self.assertEqual(st, 200)
        self.assertEqual(json.loads(body)["status"], "ok")
        st, _ = self.api(port, "/api/health", None)
        self.assertEqual(st, 401)
        st, _ = self.api(port, "/api/rules", srv.token, "POST", {"source": "/n", "target": "/m"})
        self.assertIn(st, (200, 201))
        # the plain admin listener beside it sees the same store
        st, _, rules = srv.api("GET", "/api/rules")
        self.assertEqual(st, 200)
        self.assertIn("/n", json.dumps(rules))

    def test_tls_only(self):
        srv, port = self.start(admin=None)
        self.assertEqual(srv.admin_addr, "tls:127.0.0.1:%d" % port)  # the only one
        st, _ = self.api(port, "/api/health", srv.token)
        self.assertEqual(st, 200)

    @unittest.skipUnless(shutil.which("curl"), "curl not installed")
    def test_http2_is_not_offered(self):
        """curl asks for h2 by ALPN: the admin listener answers with http/1.1."""
        srv, port = self.start()
        p = subprocess.run(["curl", "-sS", "--http2", "--cacert", test_pki().ca,
                            "--resolve", "localhost:%d:127.0.0.1" % port,
                            "-H", "Authorization: Bearer " + srv.token,
                            "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                            "https://localhost:%d/api/health" % port],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(p.stdout, "200 1.1", p.stderr)

    @unittest.skipUnless(shutil.which("openssl"), "openssl not installed")
    def test_http2_is_not_offered_by_the_library_either(self):
        """TLS 1.2 goes to the TLS library (OpenSSL), whose ALPN choice says the same."""
        srv, port = self.start()
        p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                            "-tls1_2", "-alpn", "h2,http/1.1", "-servername", "localhost",
                            "-no_check_time"],
                           input="", capture_output=True, text=True, timeout=20)
        self.assertIn("ALPN protocol: http/1.1", p.stdout, p.stderr)

    def test_plain_http_to_the_tls_port(self):
        srv, port = self.start()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 400 "))

    def test_usage(self):
        for args, says in ((["--admin-tls", "127.0.0.1:0"], "--admin-tls needs a certificate"),
                           (["--admin-tls", "/tmp/x.sock", "--cert", test_pki().localhost],
                            "not a Unix socket")):
            p = subprocess.run([DETOUR, "serve", "--db", ":memory:"] + args,
                               capture_output=True, text=True, timeout=10)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn(says, p.stderr)


if __name__ == "__main__":
    unittest.main()
