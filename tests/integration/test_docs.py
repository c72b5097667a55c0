"""The examples in docs/rules.md are true: each ```rules block is loaded into a real
server and each row of the table after it is requested (S1, S7, S8 and the precedence)."""
import os
import re
import unittest
import urllib.parse

from harness import ROOT, Server, exchange, request

DOC = os.path.join(ROOT, "docs", "rules.md")


def examples(text):
    """Yields (rules, rows) for each ```rules block; rows are (url, status, location)."""
    for m in re.finditer(r"```rules\n(.*?)```\n", text, re.S):
        rows = []
        rest = text[m.end():].lstrip("\n").splitlines()
        for line in rest:
            if not line.startswith("|"):
                break
            cells = [c.strip() for c in line.strip("|").split("|")]
            if cells[0] in ("request", "---"):
                continue
            url = cells[0].strip("`")
            rows.append((url, int(cells[1]), cells[2].strip("`") or None))
        yield m.group(1), rows


class DocExamples(unittest.TestCase):
    def test_every_example(self):
        with open(DOC, encoding="utf-8") as f:
            found = list(examples(f.read()))
        self.assertGreaterEqual(len(found), 4, "docs/rules.md lost its examples")
        for rules, rows in found:
            self.assertTrue(rows, "a rules block without a table:\n" + rules)
            with Server(rules) as srv:
                for url, status, location in rows:
                    with self.subTest(url=url):
                        u = urllib.parse.urlsplit(url)
                        target = u.path + ("?" + u.query if u.query else "")
                        (resp,), _ = exchange(srv, request("GET", target, host=u.netloc))
                        self.assertEqual(resp.status, status)
                        self.assertEqual(resp.header("Location"), location)


class LintDocExample(unittest.TestCase):
    def test_lint_example(self):
        """docs/lint.md: its rules give exactly the findings shown."""
        import subprocess
        import tempfile
        from harness import DETOUR
        with open(os.path.join(ROOT, "docs", "lint.md"), encoding="utf-8") as f:
            text = f.read()
        rules = re.search(r"```rules\n(.*?)```", text, re.S).group(1)
        want = re.search(r"```lint\n(.*?)```", text, re.S).group(1).splitlines()
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "rules.txt"), "w") as f:
                f.write(rules)
            p = subprocess.run([DETOUR, "lint", "--now", "2026-11-24T00:00:00Z", "rules.txt"],
                               cwd=tmp, capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stdout.splitlines(), want)


if __name__ == "__main__":
    unittest.main()


class CheckDocExample(unittest.TestCase):
    """docs/check.md (issue 14): the migration walk-through is what detour check says. Each
    ```rules block is served by a real server for old.example, the new site is a fixture,
    and the ```check block after it is the report of the command shown, times left out."""

    NEW_SITE = {"/company": 200, "/plans": 200, "/news/launch": 200, "/jobs": 200,
                "/news": 200}

    def new_site(self):
        import http.server
        import threading
        pages = self.NEW_SITE

        class Handler(http.server.BaseHTTPRequestHandler):
            def answer(self):
                if self.path == "/blog/launch":
                    self.send_response(308)
                    self.send_header("Location", "http://new.example/news/launch")
                else:
                    self.send_response(pages.get(self.path, 404))
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_HEAD = answer

            def log_message(self, *args):
                pass

        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        self.addCleanup(httpd.server_close)
        self.addCleanup(httpd.shutdown)
        return httpd.server_address[1]

    @staticmethod
    def untimed(out):
        """The report without what varies from run to run: times, rates, slowest hosts."""
        out = re.sub(r", [0-9.]+ ms\)", ")", out)
        out = re.sub(r" in [0-9.]+ s \([0-9]+/s\)", "", out)
        return out.split("slowest hosts")[0].rstrip("\n") + "\n"

    def test_walk_through(self):
        import subprocess
        import tempfile
        from harness import DETOUR
        with open(os.path.join(ROOT, "docs", "check.md"), encoding="utf-8") as f:
            text = f.read()
        plan = re.search(r"```csv\n(.*?)```", text, re.S).group(1)
        steps = re.findall(r"```rules\n(.*?)```.*?```check\n(.*?)```", text, re.S)
        self.assertEqual(len(steps), 2, "docs/check.md lost its steps")
        new_port = self.new_site()
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "redirects.csv"), "w") as f:
                f.write(plan)
            for (rules, want), status in zip(steps, (1, 0)):
                with Server(rules) as srv:
                    p = subprocess.run(
                        [DETOUR, "check", "--concurrency", "1", "--connect-to",
                         "old.example:80:127.0.0.1:%d" % srv.port, "--connect-to",
                         "new.example:80:127.0.0.1:%d" % new_port, "redirects.csv"],
                        cwd=tmp, capture_output=True, text=True, timeout=60)
                self.assertEqual(self.untimed(p.stdout), want, p.stderr)
                self.assertEqual(p.returncode, status, p.stderr)
