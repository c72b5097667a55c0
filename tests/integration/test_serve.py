"""detour serve answers by the spec: S1-S4, S6-S8 checked with curl, http.client and raw
sockets against the real binary."""
import http.client
import os
import shutil
import socket
import subprocess
import tempfile
import unittest

from harness import DETOUR, Reader, Server, exchange, get, request

RULES = """\
/old/url/*            /new/url
/docs/*               /manual/:splat            308
/maintenance          /status                   307  cache=60
/contact/submit       /contact/thanks           303
/moved                /elsewhere                301
/found                /there                    302
/campaign             /landing                  query=drop
/esc                  /a?x=1&y='2'
shop.example.com/*    https://example.com/shop/:splat
"""

CURL = shutil.which("curl")


class Serve(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server(RULES, workers=2).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def get(self, method, path, headers=None, body=None):
        c = self.server.http_connection()
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r, data

    def test_s1_location_and_reason(self):
        """S1, S8: 307 Temporary Redirect with Location from the rule."""
        r, body = self.get("GET", "/old/url/x")
        self.assertEqual((r.status, r.reason), (307, "Temporary Redirect"))
        self.assertEqual(r.getheader("Location"), "/new/url")
        self.assertEqual(r.getheader("Content-Type"), "text/html; charset=utf-8")
        self.assertEqual(int(r.getheader("Content-Length")), len(body))
        self.assertRegex(r.getheader("Date"), r"^\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT$")

    def test_s1_absolute_target(self):
        """S1: an absolute URL target, host-specific rule, query kept."""
        r, _ = self.get("GET", "/a/b?c=1", {"Host": "shop.example.com"})
        self.assertEqual(r.status, 307)
        self.assertEqual(r.getheader("Location"), "https://example.com/shop/a/b?c=1")

    def test_s2_note_names_method_and_link(self):
        """S2: the body is a short HTML note with the escaped link and the method to repeat."""
        r, body = self.get("POST", "/old/url/form", body=b"a=1")
        text = body.decode()
        self.assertIn('<a href="/new/url">/new/url</a>', text)
        self.assertIn("Repeat your POST request there, with the same body", text)
        r, body = self.get("GET", "/esc?ignored")
        self.assertEqual(r.getheader("Location"), "/a?x=1&y='2'")
        self.assertIn('<a href="/a?x=1&amp;y=&#39;2&#39;">', body.decode())

    def test_s2_method_is_escaped(self):
        """S2: an unusual method token is HTML-escaped in the note."""
        (resp,), _ = exchange(self.server, request("A&B'", "/old/url/x"))
        self.assertEqual(resp.status, 307)
        self.assertIn(b"Repeat your A&amp;B&#39; request", resp.body)
        self.assertNotIn(b"A&B'", resp.body)

    def test_s3_head_same_headers_no_body(self):
        """S3: HEAD gets the same status and headers as GET, Content-Length included, no body."""
        s = self.server.connect()
        s.sendall(request("GET", "/old/url/x") + request("HEAD", "/old/url/x")
                  + request("GET", "/maintenance"))
        rd = Reader(s)
        get = rd.response()
        head = rd.response(head=True)
        after = rd.response()
        self.assertEqual(head.status, get.status)
        strip = lambda h: [(n, v) for n, v in h if n != "Date"]
        self.assertEqual(strip(head.headers), strip(get.headers))
        self.assertEqual(head.body, b"")
        # the next response starts right after HEAD's head: no body bytes were sent
        self.assertEqual(after.header("Location"), "/status")
        s.close()

    def test_s4_not_cacheable_by_default(self):
        """S4: no Cache-Control or Expires unless the rule has cache=."""
        r, _ = self.get("GET", "/old/url/x")
        self.assertIsNone(r.getheader("Cache-Control"))
        self.assertIsNone(r.getheader("Expires"))
        r, _ = self.get("GET", "/maintenance")
        self.assertEqual(r.getheader("Cache-Control"), "max-age=60")

    def test_s6_every_method(self):
        """S6: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS and unknown tokens all get 307."""
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PURGE",
                       "FOO", "M-SEARCH"):
            with self.subTest(method=method):
                (resp,), _ = exchange(self.server, request(method, "/old/url/x", body=b"x"
                                      if method in ("POST", "PUT", "PATCH") else b""),
                                      head=method == "HEAD")
                self.assertEqual(resp.status, 307)
                self.assertEqual(resp.header("Location"), "/new/url")

    def test_s6_delete_example(self):
        """S6: the DELETE example of the MDN reference page."""
        r, _ = self.get("DELETE", "/old/url/cars/oldest")
        self.assertEqual((r.status, r.getheader("Location")), (307, "/new/url"))

    def test_s6_body_consumed_keepalive(self):
        """S6: request bodies (Content-Length and chunked) are consumed; the connection stays."""
        s = self.server.connect()
        s.sendall(request("POST", "/old/url/a", body=b"x" * 10000))
        s.sendall(request("PUT", "/docs/b", headers=["Transfer-Encoding: chunked"])
                  + b"4\r\nabcd\r\n0\r\n\r\n")
        s.sendall(request("GET", "/moved"))
        rd = Reader(s)
        self.assertEqual([rd.response().status for _ in range(3)], [307, 308, 301])
        s.close()

    def test_s6_expect_continue_final_at_once(self):
        """S6: Expect: 100-continue gets the final 307 at once, no 100 Continue."""
        s = self.server.connect()
        s.settimeout(2)
        s.sendall(request("POST", "/old/url/x",
                          headers=["Expect: 100-continue", "Content-Length: 1000"]))
        rd = Reader(s)
        resp = rd.response()
        self.assertEqual(resp.status, 307)
        self.assertNotIn(b"100 Continue", resp.raw)
        self.assertEqual(resp.header("Connection"), "close")
        s.close()

    def test_s7_prefix_rules(self):
        """S7: every path under a prefix to one target, or to a new prefix keeping the rest."""
        for path, loc in [("/old/url/", "/new/url"), ("/old/url/a/b/c", "/new/url"),
                          ("/old/url", "/new/url"), ("/docs/guide/x.html?v=2",
                                                     "/manual/guide/x.html?v=2")]:
            with self.subTest(path=path):
                r, _ = self.get("GET", path)
                self.assertEqual(r.getheader("Location"), loc)

    def test_s8_status_per_rule(self):
        """S8: 301, 302, 303, 307, 308 with their standard reason phrases."""
        for path, status, reason in [("/moved", 301, "Moved Permanently"),
                                     ("/found", 302, "Found"),
                                     ("/contact/submit", 303, "See Other"),
                                     ("/old/url/x", 307, "Temporary Redirect"),
                                     ("/docs/x", 308, "Permanent Redirect")]:
            with self.subTest(status=status):
                r, _ = self.get("GET", path)
                self.assertEqual((r.status, r.reason), (status, reason))

    def test_query_drop_and_keep(self):
        r, _ = self.get("GET", "/campaign?utm=1")
        self.assertEqual(r.getheader("Location"), "/landing")
        r, _ = self.get("GET", "/found?a=%20b")
        self.assertEqual(r.getheader("Location"), "/there?a=%20b")

    def test_unsafe_request_bytes_never_reach_headers(self):
        """Bytes the request carries into Location are percent-encoded, never raw."""
        (resp,), _ = exchange(self.server, b"GET /docs/a\"<b>\\c\xc3\xa9?q=<x> HTTP/1.1\r\n"
                              b"Host: a\r\n\r\n")
        self.assertEqual(resp.header("Location"), "/manual/a%22%3Cb%3E%5Cc%C3%A9?q=%3Cx%3E")

    def test_404_note(self):
        r, body = self.get("GET", "/no/<such>")
        self.assertEqual((r.status, r.reason), (404, "Not Found"))
        self.assertIn(b"/no/&lt;such&gt;", body)
        self.assertIsNone(r.getheader("Location"))

    def test_http10(self):
        """HTTP/1.0 closes unless keep-alive was asked; answers are HTTP/1.1."""
        (resp,), rd = exchange(self.server, request("GET", "/old/url/x", host=None,
                                                    version="1.0"))
        self.assertEqual(resp.status, 307)
        self.assertEqual(resp.header("Connection"), "close")
        self.assertTrue(rd.closed())
        s = self.server.connect()
        s.sendall(request("GET", "/old/url/x", version="1.0", headers=["Connection: keep-alive"]))
        rd = Reader(s)
        resp = rd.response()
        self.assertEqual(resp.header("Connection"), "keep-alive")
        s.sendall(request("GET", "/moved", version="1.0", headers=["Connection: keep-alive"]))
        self.assertEqual(rd.response().status, 301)
        s.close()

    def test_connection_close_honoured(self):
        (resp,), rd = exchange(self.server, request("GET", "/old/url/x",
                                                    headers=["Connection: close"]))
        self.assertEqual(resp.header("Connection"), "close")
        self.assertTrue(rd.closed())

    def test_pipelining_in_order(self):
        """Pipelined requests are answered in order, in one connection."""
        paths = ["/moved", "/found", "/nothing", "/docs/a", "/old/url/b"] * 20
        s = self.server.connect()
        s.sendall(b"".join(request("GET", p) for p in paths))
        rd = Reader(s)
        got = [rd.response().status for _ in paths]
        self.assertEqual(got, [301, 302, 404, 308, 307] * 20)
        s.close()

    def test_many_keepalive_requests(self):
        c = self.server.http_connection()
        for i in range(200):
            c.request("GET", "/docs/%d" % i)
            r = c.getresponse()
            r.read()
            self.assertEqual(r.getheader("Location"), "/manual/%d" % i)
        c.close()

    def test_slow_reader_gets_everything(self):
        """A client that pipelines a lot and reads late still gets every answer, in order."""
        n = 3000
        s = self.server.connect(timeout=10)
        data = b"".join(request("GET", "/docs/%d" % i) for i in range(n))
        s.sendall(data)
        rd = Reader(s)
        for i in range(n):
            self.assertEqual(rd.response().header("Location"), "/manual/%d" % i)
        s.close()

    @unittest.skipUnless(CURL, "curl not installed")
    def test_curl_post(self):
        """The README's example: curl POST to /old/url/x gets 307 with Location and a note."""
        out = subprocess.run([CURL, "-si", "-X", "POST", "-d", "a=1"] + self.server.curl_args() +
                             [self.server.url("/old/url/x")],
                             capture_output=True, timeout=10).stdout.decode()
        self.assertTrue(out.startswith("HTTP/1.1 307 Temporary Redirect\r\n"), out)
        self.assertIn("\r\nLocation: /new/url\r\n", out)
        self.assertIn("Repeat your POST request there", out)

    @unittest.skipUnless(CURL, "curl not installed")
    def test_curl_follows_keeping_method(self):
        """A real client (curl -L) follows the 307, keeping method and body."""
        r = subprocess.run([CURL, "-s", "-o", "/dev/null", "-w", "%{http_code} %{num_redirects}",
                            "-L", "--max-redirs", "1", "-X", "POST", "-d", "a=1"] +
                           self.server.curl_args() + [self.server.url("/old/url/x")],
                           capture_output=True, timeout=10)
        # /new/url has no rule: the followed request gets 404
        self.assertEqual(r.stdout.decode(), "404 1")


class Windows(unittest.TestCase):
    def test_window_closes_and_opens_without_reload(self):
        """from= and until= take effect on time while the server runs, with no reload."""
        import datetime
        import time
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        edge = now + datetime.timedelta(seconds=3)
        stamp = edge.strftime("%Y-%m-%dT%H:%M:%SZ")
        rules = ("/sale /winter-sale until=%s\n/sale /no-sale\n"
                 "/soon /open from=%s\n" % (stamp, stamp))
        with Server(rules) as srv:
            (before,), _ = exchange(srv, request("GET", "/sale"))
            (closed,), _ = exchange(srv, request("GET", "/soon"))
            self.assertEqual(before.header("Location"), "/winter-sale")
            self.assertEqual(closed.status, 404)
            time.sleep(max(0.0, (edge - datetime.datetime.now(datetime.timezone.utc))
                           .total_seconds()) + 1.2)
            (after,), _ = exchange(srv, request("GET", "/sale"))
            (opened,), _ = exchange(srv, request("GET", "/soon"))
            self.assertEqual(after.header("Location"), "/no-sale")
            self.assertEqual(opened.header("Location"), "/open")
            self.assertEqual(len([l for l in srv.log if "reload" in l]), 0)


class Listen(unittest.TestCase):
    def test_ipv6_and_ipv4_together(self):
        """--listen is repeatable, IPv4 and IPv6."""
        try:
            with socket.socket(socket.AF_INET6) as probe:
                probe.bind(("::1", 0))
        except OSError:
            self.skipTest("no IPv6 loopback")
        with Server("/a /b\n", listen=("127.0.0.1:0", "[::1]:0")) as srv:
            self.assertEqual(len(srv.addrs), 2)
            for i in range(2):
                s = srv.connect(index=i)
                s.sendall(request("GET", "/a"))
                self.assertEqual(Reader(s).response().header("Location"), "/b")
                s.close()

    def test_port_in_use_exits_1(self):
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        with tempfile.TemporaryDirectory() as d:
            p = subprocess.run([DETOUR, "serve", "--listen", "127.0.0.1:%d" % port,
                                "--db", os.path.join(d, "db"), "--admin", "off"],
                               capture_output=True, timeout=10)
        blocker.close()
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"cannot listen on 127.0.0.1:%d" % port, p.stderr)


class CommandLine(unittest.TestCase):
    def run_detour(self, *args):
        return subprocess.run([DETOUR] + list(args), capture_output=True, timeout=10)

    def test_help_and_version(self):
        p = self.run_detour("--help")
        self.assertEqual(p.returncode, 0)
        self.assertIn(b"serve", p.stdout)
        p = self.run_detour("--version")
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout.decode(), r"^detour \d+\.\d+\.\d+\n$")
        p = self.run_detour("serve", "--help")
        self.assertEqual(p.returncode, 0)
        for flag in (b"--listen", b"--rules", b"--workers", b"--max-body", b"--header-timeout",
                     b"--idle-timeout", b"--max-request-line", b"--max-header-size",
                     b"--max-header-fields"):
            self.assertIn(flag, p.stdout)

    def test_usage_errors_exit_2(self):
        for args in (["nonsense"], ["serve", "--bogus"], ["serve", "--workers", "0"],
                     ["serve", "--workers"], ["serve", "--listen", "nowhere"],
                     ["serve", "--max-body", "12q"], ["serve", "--header-timeout", "-1"],
                     ["serve", "extra"], []):
            with self.subTest(args=args):
                p = self.run_detour(*args)
                self.assertEqual(p.returncode, 2)
                self.assertTrue(p.stderr)

    def test_bad_rule_file_exit_2(self):
        """A bad line is an error naming file, line and column; at start the server exits 2."""
        srv = Server("/a /b\n/c /d 309\n/e\n")
        p = subprocess.run(srv.command(), capture_output=True, timeout=10)
        self.assertEqual(p.returncode, 2)
        err = p.stderr.decode()
        self.assertIn("%s:2:7: unknown status 309" % srv.rules_path, err)
        self.assertIn("%s:3:3: missing target" % srv.rules_path, err)
        srv.close()

    def test_missing_rule_file_exit_2(self):
        p = self.run_detour("serve", "--rules", "/nonexistent/rules.txt")
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"/nonexistent/rules.txt: cannot open", p.stderr)

    def test_check(self):
        srv = Server("/a /b\n/c* /d\n")
        p = self.run_detour("serve", "--check", "--rules", srv.rules_path)
        self.assertEqual((p.returncode, p.stdout), (0, b"ok: 2 rules\n"))
        srv.write_rules("/a\n")
        p = self.run_detour("serve", "--check", "--rules", srv.rules_path)
        self.assertEqual(p.returncode, 2)
        srv.close()

    def test_check_many_placeholders(self):
        """Issue 9: 32 placeholders and a tail wrote past a stack array (ASan abort, a silent
        'ok' in release); the line loads and answers, 33 get an error naming the column."""
        line = "/u/:id  " + "/:id" * 32 + "/end\n"
        srv = Server(line)
        p = self.run_detour("serve", "--check", "--rules", srv.rules_path)
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, b"ok: 1 rules\n", b""))
        with srv:
            self.assertEqual(get(srv, "/u/9"), (307, "/9" * 32 + "/end"))
        srv = Server("/u/:id  " + "/:id" * 33 + "/end\n")
        p = self.run_detour("serve", "--check", "--rules", srv.rules_path)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b":1:138: too many placeholders in one target (at most 32)", p.stderr)
        srv.close()

    def test_example_rules_load(self):
        """The example rule file that `make run` serves loads cleanly."""
        from harness import ROOT
        p = self.run_detour("serve", "--check", "--rules",
                            os.path.join(ROOT, "examples", "rules.txt"))
        self.assertEqual(p.returncode, 0, p.stderr)

if __name__ == "__main__":
    unittest.main()
