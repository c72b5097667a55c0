"""detour lint and detour import on the command line, and detour serve reading CSV, nginx
map and Netlify files directly (issue 4: import formats, lint output and exit statuses)."""
import json
import os
import subprocess
import tempfile
import unittest

from harness import DATA, DETOUR, ROOT, Server, exchange, request

NOW = "2026-11-24T00:00:00Z"


def run(*args, input=None):
    return subprocess.run([DETOUR] + list(args), capture_output=True, timeout=60, input=input)


class Files:
    def __init__(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="detour-tools-")

    def write(self, name, text):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path


class Lint(unittest.TestCase):
    def setUp(self):
        self.files = Files()

    def tearDown(self):
        self.files.tmp.cleanup()

    def test_findings_one_a_line_and_exit_1_on_error(self):
        path = self.files.write("r.txt", "/a /b\n/b /c\n/c /d\n/x/* /y/:splat\n/y/* /x/:splat\n")
        p = run("lint", "--now", NOW, path)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertEqual(p.stdout.decode().splitlines(), [
            "%s:1: warning: redirect chain of 3 hops (on to %s:2): send /a straight to /d"
            % (path, path),
            "%s:2: warning: redirect chain of 2 hops (on to %s:3): send /b straight to /d"
            % (path, path),
            "%s:4: error: redirect loop: /x/* -> /y/* -> /x/* (this rule sends to %s:5)"
            % (path, path),
            "%s:5: error: redirect loop: /x/* -> /y/* -> /x/* (this rule sends to %s:4)"
            % (path, path),
        ])
        self.assertIn(b"5 rules, 2 errors, 2 warnings", p.stderr)

    def test_warnings_only_exit_0(self):
        path = self.files.write("r.txt", "/a /b\n/a /b\n")
        p = run("lint", path)
        self.assertEqual(p.returncode, 0)
        self.assertIn(b":2: warning: duplicate of", p.stdout)

    def test_clean_exit_0_and_nothing_printed(self):
        path = self.files.write("r.txt", "/old/url/* /new/url\n")
        p = run("lint", path)
        self.assertEqual((p.returncode, p.stdout), (0, b""))

    def test_syntax_errors_are_findings(self):
        path = self.files.write("r.txt", "/a /b 309\n/ok /fine\n")
        p = run("lint", path)
        self.assertEqual(p.returncode, 1)
        self.assertIn(("%s:1: error: column 7: unknown status 309" % path).encode(), p.stdout)

    def test_s10_old_temporary(self):
        """S10: a 307 older than --max-temporary-age (by since=) is reported."""
        path = self.files.write("r.txt", "/t /u since=2026-09-01\n/p /q 308 since=2020-01-01\n")
        p = run("lint", "--now", NOW, "--max-temporary-age", "30d", path)
        self.assertEqual(p.returncode, 0)
        self.assertEqual(p.stdout.decode().splitlines(), [
            "%s:1: warning: a 307 in place since 2026-09-01T00:00:00Z (84 days): search "
            "engines may take it as permanent (S10); make it 308 if it is, or remove it" % path])
        p = run("lint", "--now", NOW, "--max-temporary-age", "120d", path)
        self.assertEqual(p.stdout, b"")
        p = run("lint", "--now", NOW, "--max-temporary-age", "off", path)
        self.assertEqual(p.stdout, b"")

    def test_json(self):
        path = self.files.write("r.txt", "/a /a\n/go/* /:splat\n")
        p = run("lint", "--json", path)
        self.assertEqual(p.returncode, 1)
        doc = json.loads(p.stdout)
        self.assertEqual(doc["rules"], 2)
        self.assertEqual((doc["errors"], doc["warnings"]), (1, 1))
        kinds = [(f["line"], f["severity"], f["kind"]) for f in doc["findings"]]
        self.assertEqual(kinds, [(1, "error", "loop"), (2, "warning", "steerable")])

    def test_several_files_together(self):
        """Rules of several files are linted together: a loop across files."""
        a = self.files.write("a.txt", "/a /b\n")
        b = self.files.write("b.txt", "/b /a\n")
        p = run("lint", a, b)
        self.assertEqual(p.returncode, 1)
        self.assertIn(("%s:1: error: redirect loop" % a).encode(), p.stdout)
        self.assertIn(("%s:1: error: redirect loop" % b).encode(), p.stdout)

    def test_usage(self):
        self.assertEqual(run("lint").returncode, 2)
        self.assertEqual(run("lint", "--bogus", "x").returncode, 2)
        self.assertEqual(run("lint", "--now", "yesterday", "x").returncode, 2)
        self.assertEqual(run("lint", "--rules-format", "yaml", "x").returncode, 2)
        self.assertEqual(run("lint", "--help").returncode, 0)

    def test_missing_file(self):
        p = run("lint", "/nonexistent/rules.txt")
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"/nonexistent/rules.txt: error: cannot open", p.stdout)


class Import(unittest.TestCase):
    def setUp(self):
        self.files = Files()

    def tearDown(self):
        self.files.tmp.cleanup()

    def test_each_sample_converts_to_its_expected_rules(self):
        for name, fmt in (("sample.csv", "csv"), ("cloudflare.csv", "csv"),
                          ("sample.map", "nginx"), ("_redirects", "netlify")):
            with self.subTest(name=name):
                src = os.path.join(DATA, "import", name)
                p = run("import", "--from", fmt, src)
                self.assertEqual(p.returncode, 0, p.stderr)
                lines = p.stdout.decode().splitlines()
                self.assertEqual(lines[0], "# converted by detour import from %s (%s)" % (src, fmt))
                with open(src + ".expected", encoding="utf-8") as f:
                    want = [l for l in f.read().splitlines() if l and not l.startswith("#")]
                self.assertEqual(lines[1:], want)

    def test_format_by_name_and_output_file(self):
        src = self.files.write("_redirects", "/old /new\n/a/* /b/:splat 302\n")
        out = os.path.join(self.files.tmp.name, "out.rules")
        p = run("import", "-o", out, src)
        self.assertEqual((p.returncode, p.stdout), (0, b""))
        with open(out) as f:
            self.assertEqual(f.read().splitlines()[1:], ["/old /new 301", "/a/* /b/:splat 302"])

    def test_errors_name_line_and_column_and_nothing_is_written(self):
        src = self.files.write("bad.csv", "/a,/b\n/c,,301\n/d,/e,200\n")
        p = run("import", src)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stdout, b"")
        err = p.stderr.decode()
        self.assertIn("%s:2:4: missing target" % src, err)
        self.assertIn("%s:3:7: status '200' is not a redirect status" % src, err)
        self.assertIn("2 errors; nothing written", err)

    def test_status_flag(self):
        src = self.files.write("m.map", 'map $uri $to { "/a" "/b"; }\n')
        p = run("import", "--status", "301", src)
        self.assertEqual(p.stdout.decode().splitlines()[1:], ["/a /b 301"])
        self.assertEqual(run("import", "--status", "200", src).returncode, 2)
        self.assertEqual(run("import", "--from", "yaml", src).returncode, 2)
        self.assertEqual(run("import").returncode, 2)


class ServeForeignFormats(unittest.TestCase):
    """--rules reads CSV, nginx map and _redirects files by name or --rules-format."""

    def check(self, srv, path, status, location):
        (resp,), _ = exchange(srv, request("GET", path))
        self.assertEqual((resp.status, resp.header("Location")), (status, location))

    def test_by_file_name(self):
        files = Files()
        try:
            csv = files.write("list.csv", "source,target,status\n/from-csv,/to-csv,302\n")
            nginx = files.write("maps.map", 'map $uri $new { "/from-map" "/to-map"; }\n')
            netlify = files.write("_redirects", "/from-netlify /to-netlify\n/n/* /m/:splat\n")
            with Server(rule_files=[csv, nginx, netlify]) as srv:
                self.check(srv, "/from-csv", 302, "/to-csv")
                self.check(srv, "/from-map", 307, "/to-map")
                self.check(srv, "/from-netlify", 301, "/to-netlify")
                self.check(srv, "/n/x/y", 301, "/m/x/y")
        finally:
            files.tmp.cleanup()

    def test_rules_format_flag(self):
        files = Files()
        try:
            odd = files.write("redirects.list", "/x,/y,308\n")
            srv = Server(rule_files=[])
            srv.args = ["--rules-format", "csv", "--rules", odd]
            with srv:
                self.check(srv, "/x", 308, "/y")
        finally:
            files.tmp.cleanup()

    def test_errors_name_the_original_line(self):
        files = Files()
        try:
            bad = files.write("list.csv", "/a,/b\n/c,ftp://x,301\n")
            p = subprocess.run([DETOUR, "serve", "--check", "--rules", bad], capture_output=True,
                               timeout=20)
            self.assertEqual(p.returncode, 2)
            self.assertIn(("%s:2:" % bad).encode(), p.stderr)
        finally:
            files.tmp.cleanup()


if __name__ == "__main__":
    unittest.main()
