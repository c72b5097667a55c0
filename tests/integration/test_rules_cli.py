"""Integration tests for `detour rules`, the admin API's command-line client (S5, S10): every
subcommand against a real `detour serve`, tables and --json, the token from DETOUR_TOKEN or a
token file, a wrong token, a server that is down, usage errors, imports with errors naming
FILE:LINE:COL, lint refusals, dry runs, export -> import round trips, a Unix socket, and the
upload's progress bar on a terminal."""
import json
import os
import pty
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

from harness import DETOUR, Server, exchange, get, request, without_date


def run(args, cwd=None, env=None, input=None, text=True):
    """Runs `detour rules ARGS` without DETOUR_TOKEN (unless env sets it); returns the
    CompletedProcess with stdout and stderr (bytes with text=False: CRLF kept)."""
    e = {k: v for k, v in os.environ.items() if k != "DETOUR_TOKEN"}
    e.update(env or {})
    return subprocess.run([DETOUR, "rules"] + list(args), cwd=cwd, env=e, input=input,
                          capture_output=True, text=text, timeout=120)


def cli(srv, *args, **kw):
    """`detour rules --server ADMIN --token-file FILE ARGS` against srv."""
    return run(["--server", srv.admin_addr, "--token-file", srv.token_file] + list(args), **kw)



def table(stdout):
    """The rows of a table printed by the command, split on runs of two or more spaces."""
    import re
    lines = [l for l in stdout.splitlines() if l.strip()]
    return [re.split(r"\s{2,}", l.rstrip()) for l in lines]


def store_rules(srv):
    """Every store rule as (source, target, status, query, cache, from, until)."""
    out, after = [], 0
    while True:
        st, _, page = srv.api("GET", "/api/rules?limit=10000&after=%d" % after)
        assert st == 200, page
        out += [(r["source"], r["target"], r["status"], r["query"], r["cache"], r["from"],
                 r["until"], r.get("promote_after")) for r in page["rules"]]
        if page["next_after"] is None:
            return sorted(out)
        after = page["next_after"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Help(unittest.TestCase):
    def test_help_for_the_command_and_each_subcommand(self):
        p = run(["--help"])
        self.assertEqual(p.returncode, 0, p.stderr)
        for sub in ("list", "get", "add", "set", "rm", "import", "export", "match", "history",
                    "versions", "rollback", "--server", "--token-file", "--json",
                    "DETOUR_TOKEN"):
            self.assertIn(sub, p.stdout)
        for sub, word in (("list", "--old-temporary"), ("add", "query=keep|drop"),
                          ("set", "cache=none"), ("import", "FILE:LINE:COL"),
                          ("export", "import --replace"), ("match", "--method"),
                          ("rollback", "VERSION"), ("history", "--before")):
            p = run([sub, "--help"])
            self.assertEqual(p.returncode, 0, (sub, p.stderr))
            self.assertIn("Usage: detour rules", p.stdout)
            self.assertIn(word, p.stdout, sub)
        p = subprocess.run([DETOUR, "--help"], capture_output=True, text=True)
        self.assertIn("rules", p.stdout)


class Usage(unittest.TestCase):
    def test_usage_errors_exit_2_with_a_usage_line_and_change_nothing(self):
        with Server("") as srv:
            cases = [
                [],
                ["frobnicate"],
                ["list", "--bogus"],
                ["list", "--limit", "0"],
                ["list", "--limit", "10001"],
                ["list", "--status", "200"],
                ["list", "extra"],
                ["list", "--note", "x"],
                ["get"],
                ["get", "1", "2"],
                ["get", "abc"],
                ["add", "/a"],
                ["add", "/a", "/b", "999"],
                ["add", "/a", "/b", "query=drop", "301"],
                ["add", "/a", "/b", "colour=red"],
                ["add", "/a", "/b", "cache=soon"],
                ["add", "/a", "/b", "note=x", "--note", "y"],
                ["add", "/a", "/b", "--note"],
                ["set", "1"],
                ["set", "0", "status=301"],
                ["set", "1", "status=200"],
                ["set", "1", "colour=red"],
                ["set", "1", "target"],
                ["rm", "x"],
                ["rm"],
                ["import"],
                ["import", "f", "--format", "yaml"],
                ["import", "f", "--status", "304"],
                ["match"],
                ["history", "1", "2"],
                ["versions", "--before", "0"],
                ["rollback"],
                ["rollback", "v1"],
                ["--server", "ftp://example.com", "list"],
            ]
            for args in cases:
                p = cli(srv, *args)
                self.assertEqual(p.returncode, 2, (args, p.stdout, p.stderr))
                self.assertIn("detour rules", p.stderr, args)
                self.assertIn("Try 'detour rules", p.stderr, args)
                self.assertEqual(p.stdout, "", args)
            p = cli(srv, "add", "/a", "/b", "colour=red")
            self.assertIn("Usage: detour rules add SOURCE TARGET", p.stderr)
            self.assertIn("colour", p.stderr)
            # the arguments are checked before the token is looked for
            for args in (["add", "/a", "/b", "colour=red"], ["set", "1", "cache=soon"],
                         ["get", "x"], ["rollback"]):
                p = run(["--token-file", "/nonexistent/t"] + args)
                self.assertEqual(p.returncode, 2, args)
                self.assertIn("Usage: detour rules", p.stderr, args)
                self.assertNotIn("token", p.stderr, args)
            self.assertEqual(srv.api("GET", "/api/versions")[2]["current"], 0)


class Token(unittest.TestCase):
    def test_detour_token_is_used_before_the_token_file(self):
        with Server("") as srv:
            p = run(["--server", srv.admin_addr, "--token-file", "/nonexistent/token", "list"],
                    env={"DETOUR_TOKEN": srv.token})
            self.assertEqual(p.returncode, 0, p.stderr)
            # and over a token file that holds another token
            bad = os.path.join(srv.tmp.name, "other.token")
            with open(bad, "w") as f:
                f.write("f" * 64 + "\n")
            p = run(["--server", srv.admin_addr, "--token-file", bad, "list"],
                    env={"DETOUR_TOKEN": srv.token})
            self.assertEqual(p.returncode, 0, p.stderr)
            p = run(["--server", srv.admin_addr, "--token-file", bad, "list"])
            self.assertEqual(p.returncode, 1)
            self.assertIn("HTTP 401", p.stderr)
            self.assertIn(bad, p.stderr, "says where the token came from")

    def test_the_default_token_file_is_detour_db_token_in_the_current_directory(self):
        with Server("") as srv:
            cwd = tempfile.TemporaryDirectory()
            self.addCleanup(cwd.cleanup)
            p = run(["--server", srv.admin_addr, "list"], cwd=cwd.name)
            self.assertEqual(p.returncode, 2)
            self.assertIn("./detour.db.token", p.stderr)
            shutil.copy(srv.token_file, os.path.join(cwd.name, "detour.db.token"))
            p = run(["--server", srv.admin_addr, "add", "/d", "/e"], cwd=cwd.name)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(get(srv, "/d"), (307, "/e"))

    def test_a_missing_or_empty_token_file_is_a_clear_error_exit_2(self):
        with Server("") as srv:
            p = run(["--server", srv.admin_addr, "--token-file", "/nonexistent/t", "list"])
            self.assertEqual(p.returncode, 2)
            self.assertIn("cannot read the token file /nonexistent/t", p.stderr)
            self.assertIn("No such file", p.stderr)
            empty = os.path.join(srv.tmp.name, "empty")
            open(empty, "w").close()
            p = run(["--server", srv.admin_addr, "--token-file", empty, "list"])
            self.assertEqual(p.returncode, 2)
            self.assertIn("empty", p.stderr)

    def test_a_wrong_token_exits_1_with_the_apis_message(self):
        with Server("") as srv:
            for env in ({"DETOUR_TOKEN": "0" * 64}, {"DETOUR_TOKEN": srv.token + "x"}):
                p = run(["--server", srv.admin_addr, "--token-file", srv.token_file,
                         "add", "/x", "/y"], env=env)
                self.assertEqual(p.returncode, 1)
                self.assertIn("detour rules: HTTP 401: a valid bearer token is required",
                              p.stderr)
                self.assertIn("DETOUR_TOKEN", p.stderr)
            self.assertEqual(srv.api("GET", "/api/rules")[2]["total"], 0)


class Down(unittest.TestCase):
    def test_server_down_exits_1_with_a_clear_message(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        tf = os.path.join(tmp.name, "t")
        with open(tf, "w") as f:
            f.write("a" * 64)
        port = free_port()
        for server in ("127.0.0.1:%d" % port, "http://127.0.0.1:%d/" % port,
                       "unix:" + os.path.join(tmp.name, "none.sock")):
            p = run(["--server", server, "--token-file", tf, "list"])
            self.assertEqual(p.returncode, 1, (server, p.stderr))
            self.assertIn("cannot connect to the admin API at", p.stderr)
            self.assertIn("detour serve", p.stderr)
        # a server that has stopped
        srv = Server("")
        srv.start()
        addr, token = srv.admin_addr, srv.token_file
        srv.stop()
        p = run(["--server", addr, "--token-file", token, "versions"])
        self.assertEqual(p.returncode, 1)
        self.assertIn("cannot connect", p.stderr)
        srv.close()


class Rules(unittest.TestCase):
    def test_add_get_list_set_rm_and_each_is_live_at_once(self):
        """S5: every change answers the redirect listener as soon as the command returns."""
        with Server("/file /from-file 301\n") as srv:
            p = cli(srv, "add", "/sale", "/winter-sale", "--note", "Q4 campaign")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout, "added rule 1: /sale /winter-sale 307 (version 1)\n")
            self.assertEqual(get(srv, "/sale"), (307, "/winter-sale"))
            p = cli(srv, "add", "/old/*", "https://new.example.com/:splat", "308", "cache=60",
                    "query=drop", "from=2000-01-01T00:00:00Z", "until=2099-01-01T00:00:00Z")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("/old/* https://new.example.com/:splat 308 query=drop cache=60 "
                          "from=2000-01-01T00:00:00Z until=2099-01-01T00:00:00Z", p.stdout)
            self.assertEqual(get(srv, "/old/x?q=1"), (308, "https://new.example.com/x"))
            st, _, r = srv.api("GET", "/api/rules/2")
            self.assertEqual((r["status"], r["cache"], r["query"], r["from"], r["until"]),
                             (308, 60, "drop", "2000-01-01T00:00:00Z", "2099-01-01T00:00:00Z"))

            p = cli(srv, "get", "1")
            self.assertEqual(p.returncode, 0, p.stderr)
            lines = dict(l.split(None, 1) for l in p.stdout.splitlines())
            self.assertEqual(lines["rule"], "/sale /winter-sale 307")
            self.assertEqual(lines["note"], "Q4 campaign")
            self.assertEqual(lines["cache"], "-")
            self.assertRegex(lines["since"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

            p = cli(srv, "list")
            self.assertEqual(p.returncode, 0, p.stderr)
            rows = table(p.stdout)
            self.assertEqual(rows[0], ["ID", "STATUS", "SOURCE", "TARGET", "SINCE/UPDATED",
                                       "NOTE"])
            self.assertEqual(rows[1][:4], ["1", "307", "/sale", "/winter-sale"])
            self.assertEqual(rows[1][5], "Q4 campaign")
            self.assertEqual(rows[2][:4], ["2", "308", "/old/*",
                                           "https://new.example.com/:splat"])
            # columns line up: every row's TARGET starts where the header's does
            col = p.stdout.splitlines()[0].index("TARGET")
            for line in p.stdout.splitlines()[1:]:
                self.assertNotEqual(line[col], " ")
                self.assertEqual(line[col - 2:col], "  ")

            # set: PATCH, only the fields given
            p = cli(srv, "set", "1", "status=301", "cache=30", "note=new note")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout, "changed rule 1: /sale /winter-sale 301 cache=30 "
                                       "(version 3)\n")
            self.assertEqual(get(srv, "/sale"), (301, "/winter-sale"))
            p = cli(srv, "set", "2", "cache=none", "until=none", "target=/new/:splat",
                    "query=keep")
            self.assertEqual(p.returncode, 0, p.stderr)
            st, _, r = srv.api("GET", "/api/rules/2")
            self.assertEqual((r["target"], r["cache"], r["until"], r["query"], r["status"],
                              r["from"]), ("/new/:splat", None, None, "keep", 308,
                                           "2000-01-01T00:00:00Z"))
            self.assertEqual(srv.api("GET", "/api/rules/1")[2]["note"], "new note")
            p = cli(srv, "set", "1", "source=/file")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(get(srv, "/file"), (301, "/winter-sale"), "the store rule wins")

            p = cli(srv, "rm", "1")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout, "removed rule 1 (version 6)\n")
            self.assertEqual(get(srv, "/file"), (301, "/from-file"), "the file rule again")
            p = cli(srv, "rm", "1")
            self.assertEqual(p.returncode, 1)
            self.assertEqual(p.stderr, "detour rules: HTTP 404: no rule 1\n")

    def test_api_errors_say_status_message_and_field(self):
        with Server("") as srv:
            self.assertEqual(cli(srv, "add", "/a", "/b").returncode, 0)
            p = cli(srv, "add", "/a", "/c")
            self.assertEqual(p.returncode, 1)
            self.assertEqual(p.stderr, "detour rules: HTTP 409: a rule with the source '/a' "
                                       "exists (field source)\n")
            p = cli(srv, "add", "/z", "/:splat")
            self.assertEqual(p.returncode, 1)
            self.assertRegex(p.stderr, r"^detour rules: HTTP 400: .*\(field target\)\n$")
            p = cli(srv, "add", "/z", "/y", "until=soon")
            self.assertEqual(p.returncode, 1)
            self.assertIn("(field until)", p.stderr)
            p = cli(srv, "set", "1", "from=2027-01-01T00:00:00Z", "until=2026-01-01T00:00:00Z")
            self.assertEqual(p.returncode, 1)
            self.assertIn("HTTP 400", p.stderr)
            p = cli(srv, "get", "42")
            self.assertEqual((p.returncode, p.stderr), (1, "detour rules: HTTP 404: no rule 42\n"))
            p = cli(srv, "rollback", "99")
            self.assertEqual(p.returncode, 1)
            self.assertIn("HTTP 404: no such version (field version)", p.stderr)
            self.assertEqual(srv.api("GET", "/api/rules")[2]["total"], 1)

    def test_list_filters_limit_and_all_pages(self):
        with Server("") as srv:
            for i in range(25):
                src = ("shop.example.com/p/%d" if i % 2 else "/p/%d") % i
                self.assertEqual(srv.api("POST", "/api/rules", {
                    "source": src, "target": "/n/%d" % i,
                    "status": 301 if i % 5 == 0 else 307})[0], 201)
            p = cli(srv, "list", "--limit", "10")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(len(table(p.stdout)), 11)
            self.assertIn("10 of 25 rules shown (--all for every one)", p.stderr)
            p = cli(srv, "list", "--all", "--limit", "10")
            rows = table(p.stdout)
            self.assertEqual(rows[0][0], "ID", "one header for all pages")
            self.assertEqual([int(r[0]) for r in rows[1:]], list(range(1, 26)))
            self.assertEqual(p.stderr, "")
            p = cli(srv, "list", "--all")
            self.assertEqual(len(table(p.stdout)), 26)
            p = cli(srv, "list", "--status", "301")
            self.assertEqual([r[1] for r in table(p.stdout)[1:]], ["301"] * 5)
            p = cli(srv, "list", "--host", "shop.example.com")
            self.assertEqual(len(table(p.stdout)) - 1, 12)
            p = cli(srv, "list", "--text", "/n/1")
            self.assertEqual(len(table(p.stdout)) - 1, 11)  # /n/1, /n/10 .. /n/19
            p = cli(srv, "list", "--text", "nothing like it")
            self.assertEqual((p.returncode, p.stdout), (0, ""))
            self.assertIn("no rules match", p.stderr)

    def test_s10_old_temporary_and_since(self):
        """S10: a 307's SINCE is when it started answering 307; --old-temporary lists those
        in place longer than --max-temporary-age."""
        with Server("", args=["--max-temporary-age", "1s"]) as srv:
            cli(srv, "add", "/t", "/u")
            cli(srv, "add", "/p", "/u", "308")
            time.sleep(2.2)
            p = cli(srv, "list", "--old-temporary")
            self.assertEqual(p.returncode, 0, p.stderr)
            rows = table(p.stdout)
            self.assertEqual([r[2] for r in rows[1:]], ["/t"])
            since = srv.api("GET", "/api/rules/1")[2]["since"]
            self.assertEqual(rows[1][4], since)
            # a 308 has no since: its column shows when it was updated
            p = cli(srv, "list", "--status", "308")
            self.assertEqual(table(p.stdout)[1][4], srv.api("GET", "/api/rules/2")[2]["updated"])


class Json(unittest.TestCase):
    def test_json_prints_the_apis_answers_as_they_are(self):
        with Server("") as srv:
            p = cli(srv, "--json", "add", "/a", "/b", "302")
            self.assertEqual(p.returncode, 0, p.stderr)
            body = json.loads(p.stdout)
            self.assertEqual((body["id"], body["version"], body["rule"]["status"]), (1, 1, 302))
            # --json goes before or after the command
            p = cli(srv, "get", "1", "--json")
            self.assertEqual(json.loads(p.stdout), srv.api("GET", "/api/rules/1")[2])
            p = cli(srv, "list", "--json")
            self.assertEqual(json.loads(p.stdout), srv.api("GET", "/api/rules")[2])
            for cmd in (["versions"], ["history"], ["history", "1"],
                        ["match", "http://example.com/a"]):
                p = cli(srv, "--json", *cmd)
                self.assertEqual(p.returncode, 0, (cmd, p.stderr))
                self.assertIsInstance(json.loads(p.stdout), dict, cmd)
            # several requests: one answer per line
            for i in range(4):
                srv.api("POST", "/api/rules", {"source": "/m/%d" % i, "target": "/x"})
            p = cli(srv, "--json", "list", "--all", "--limit", "2")
            pages = [json.loads(l) for l in p.stdout.splitlines()]
            self.assertEqual(len(pages), 3)
            self.assertEqual(sum(len(pg["rules"]) for pg in pages), 5)
            self.assertIsNone(pages[-1]["next_after"])
            # an error: the API's JSON on stdout, the message on stderr, exit 1
            p = cli(srv, "--json", "add", "/a", "/c")
            self.assertEqual(p.returncode, 1)
            self.assertEqual(json.loads(p.stdout)["field"], "source")
            self.assertIn("HTTP 409", p.stderr)
            p = cli(srv, "--json", "rm", "1", "--dry-run")
            self.assertEqual(json.loads(p.stdout)["dry_run"], True)


class DryRun(unittest.TestCase):
    def test_dry_runs_show_the_diff_and_lint_and_change_nothing(self):
        with Server("") as srv:
            cli(srv, "add", "/a", "/b")
            p = cli(srv, "add", "/b", "/a", "--dry-run")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("+ /b /a 307\n", p.stdout)
            self.assertIn("lint error loop", p.stdout)
            self.assertIn("dry run: 1 added, 0 changed, 0 removed; nothing was written",
                          p.stdout)
            p = cli(srv, "set", "1", "target=/c", "--dry-run")
            self.assertIn("~ 1: /a /b 307 => /a /c 307\n", p.stdout)
            p = cli(srv, "rm", "1", "--dry-run")
            self.assertIn("- 1: /a /b 307\n", p.stdout)
            p = cli(srv, "rollback", "0", "--dry-run")
            self.assertIn("- 1: /a /b 307\n", p.stdout)
            self.assertEqual(srv.api("GET", "/api/versions")[2]["current"], 1)
            self.assertEqual(get(srv, "/a"), (307, "/b"))
            self.assertEqual(get(srv, "/b"), (404, None))


class Import(unittest.TestCase):
    def write(self, srv, name, text):
        path = os.path.join(srv.tmp.name, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def test_import_merge_replace_and_stdin(self):
        with Server("") as srv:
            cli(srv, "add", "/keep", "/k")
            f = self.write(srv, "r.txt", "/a /b\n# comment\n/c /d 302 cache=5\n")
            p = cli(srv, "import", f)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout, "imported %s: 2 rules; 2 added, 0 changed, 0 removed "
                                       "(version 2)\n" % f)
            self.assertEqual(p.stderr, "", "no progress bar when stderr is not a terminal")
            self.assertEqual(get(srv, "/c"), (302, "/d"))
            p = cli(srv, "import", "-", input="/a /b2\n/x /y\n")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("imported <stdin>: 2 rules; 1 added, 1 changed, 0 removed", p.stdout)
            self.assertEqual(get(srv, "/a"), (307, "/b2"))
            p = cli(srv, "import", "--replace", "-", input="/x /y\n")
            self.assertIn("0 added, 0 changed, 3 removed", p.stdout)
            self.assertEqual(get(srv, "/keep"), (404, None))
            self.assertEqual(store_rules(srv),
                             [("/x", "/y", 307, "keep", None, None, None, None)])

    def test_foreign_formats_by_name_or_format(self):
        with Server("") as srv:
            f = self.write(srv, "list.csv", "source,target,status\n/c1,/t1,301\n/c2,/t2,\n")
            p = cli(srv, "import", f)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(get(srv, "/c1"), (301, "/t1"))
            self.assertEqual(get(srv, "/c2"), (307, "/t2"))
            f = self.write(srv, "redirs", "/n1 /t 302\n/n2 /t\n")
            p = cli(srv, "import", f, "--format", "netlify")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(get(srv, "/n2"), (301, "/t"), "netlify's default status")
            p = cli(srv, "import", "-", "--format", "nginx", "--status", "308",
                    input="map $uri $t {\n  /m1 /t;\n}\n")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(get(srv, "/m1"), (308, "/t"))

    def test_import_errors_name_file_line_and_column_and_nothing_is_written(self):
        with Server("") as srv:
            f = self.write(srv, "bad.txt", "/a /b\n/c\n/d /e 999\n/f /g colour=red\n")
            p = cli(srv, "import", f)
            self.assertEqual(p.returncode, 1)
            lines = p.stderr.splitlines()
            self.assertTrue(lines[0].startswith(f + ":2:3: missing target"), lines)
            self.assertTrue(lines[1].startswith(f + ":3:7: unknown status 999"), lines)
            self.assertTrue(lines[2].startswith(f + ":4:7: unknown option 'colour'"), lines)
            self.assertEqual(lines[3], "detour rules: HTTP 400: the import has errors; nothing "
                                       "was written")
            self.assertEqual(srv.api("GET", "/api/rules")[2]["total"], 0)
            p = cli(srv, "import", "-", input="/ok /fine\n/bad\n")
            self.assertIn("<stdin>:2:", p.stderr)
            p = cli(srv, "import", os.path.join(srv.tmp.name, "missing.txt"))
            self.assertEqual(p.returncode, 1)
            self.assertIn("cannot open", p.stderr)

    def test_an_import_with_a_loop_is_refused_with_the_findings_unless_forced(self):
        with Server("") as srv:
            f = self.write(srv, "loop.txt", "/a /b\n/b /a\n")
            p = cli(srv, "import", f)
            self.assertEqual(p.returncode, 1)
            self.assertIn(f + ": lint error loop", p.stderr)
            self.assertIn("detour rules: HTTP 409: refused", p.stderr)
            self.assertEqual(srv.api("GET", "/api/rules")[2]["total"], 0)
            p = cli(srv, "import", f, "--dry-run")
            self.assertEqual(p.returncode, 1, "a dry run that would be refused exits 1")
            self.assertIn("+ /a /b 307\n+ /b /a 307\n", p.stdout)
            self.assertIn("would be refused", p.stderr)
            p = cli(srv, "import", f, "--dry-run", "--force")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(srv.api("GET", "/api/rules")[2]["total"], 0)
            p = cli(srv, "import", f, "--force")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(srv.api("GET", "/api/rules")[2]["total"], 2)

    def test_content_over_the_servers_limit(self):
        with Server("", args=["--admin-max-body", "2k"]) as srv:
            f = self.write(srv, "big.txt", "".join("/k/%d /v/%d\n" % (i, i)
                                                   for i in range(1000)))
            p = cli(srv, "import", f)
            self.assertEqual(p.returncode, 1)
            self.assertIn("HTTP 413", p.stderr)
            self.assertIn("--admin-max-body", p.stderr)
            self.assertEqual(cli(srv, "versions").returncode, 0, "the server still answers")

    def test_progress_bar_on_a_terminal(self):
        with Server("") as srv:
            f = self.write(srv, "r.txt", "".join("/k/%d /v/%d\n" % (i, i) for i in range(3000)))
            master, slave = pty.openpty()
            p = subprocess.Popen([DETOUR, "rules", "--server", srv.admin_addr, "--token-file",
                                  srv.token_file, "import", f], stdout=subprocess.PIPE,
                                 stderr=slave)
            os.close(slave)
            err = b""
            while True:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                err += chunk
            out, _ = p.communicate(timeout=60)
            os.close(master)
            self.assertEqual(p.returncode, 0, err)
            self.assertIn(b"imported", out)
            text = err.decode()
            self.assertIn("uploading", text)
            self.assertIn("100%", text)
            size = os.path.getsize(f)
            self.assertIn("[" + "#" * 30 + "]", text)
            self.assertIn("of %.1f KiB" % (size / 1024), text)
            self.assertEqual(srv.api("GET", "/api/rules")[2]["total"], 3000)


class Export(unittest.TestCase):
    RULES = [
        ("/sale", "/winter-sale", 307, {}),
        ("/docs/*", "/manual/:splat", 308, {"cache": 3600}),
        ("/users/:id", "/people/:id", 301, {"query": "drop"}),
        ("~^/item/([0-9]+)$", "/items/$1", 302, {}),
        ("shop.example.com/*", "https://example.com/shop/:splat", 307, {}),
        ("/window", "/w", 307, {"from": "2026-01-01T00:00:00Z",
                                "until": "2099-12-01T06:00:00Z"}),
        ("/frag", "/page#top", 303, {"note": "a note\nwith a line break"}),
    ]

    def fill(self, srv):
        for src, tgt, status, extra in self.RULES:
            body = {"source": src, "target": tgt, "status": status}
            body.update(extra)
            st, _, got = srv.api("POST", "/api/rules", body)
            self.assertEqual(st, 201, got)

    def test_export_then_import_replace_round_trips(self):
        with Server("") as srv:
            self.fill(srv)
            before = store_rules(srv)
            p = cli(srv, "export")
            self.assertEqual(p.returncode, 0, p.stderr)
            lines = [l for l in p.stdout.splitlines() if not l.startswith("#")]
            self.assertEqual(len(lines), len(self.RULES))
            self.assertIn("/docs/* /manual/:splat 308 cache=3600", lines)
            self.assertIn("/users/:id /people/:id 301 query=drop", lines)
            self.assertIn("/window /w 307 from=2026-01-01T00:00:00Z "
                          "until=2099-12-01T06:00:00Z", lines)
            self.assertIn("/frag /page#top 303  # a note with a line break", lines)
            path = os.path.join(srv.tmp.name, "export.txt")
            with open(path, "w") as f:
                f.write(p.stdout)
            # the store drifts: a rule changed, one removed, one added
            srv.api("PATCH", "/api/rules/1", {"target": "/summer-sale", "status": 302})
            srv.api("DELETE", "/api/rules/2")
            srv.api("POST", "/api/rules", {"source": "/new", "target": "/thing"})
            self.assertNotEqual(store_rules(srv), before)
            p = cli(srv, "import", "--replace", path)
            self.assertEqual(p.returncode, 0, p.stderr)
            # /sale is changed back (and /frag loses its note: an import carries none)
            self.assertRegex(p.stdout, r"7 rules; 1 added, \d changed, 1 removed")
            self.assertEqual(store_rules(srv), before)
            self.assertEqual(get(srv, "/sale"), (307, "/winter-sale"))
            self.assertEqual(get(srv, "/docs/a/b"), (308, "/manual/a/b"))
            # importing the export again changes nothing
            p = cli(srv, "import", "--replace", path)
            self.assertIn("0 added, 0 changed, 0 removed", p.stdout)
            # and into another server: the same rules
            with Server("") as other:
                p = cli(other, "import", path)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(store_rules(other), before)

    def test_promotions_export_with_their_since_and_import_back(self):
        """S10: a temporary redirect with promote-after= exports with the since= a rule file
        needs for it, and imports back with the same promotion."""
        with Server("") as srv:
            p = cli(srv, "add", "/p7", "/q", "promote-after=90d")
            self.assertEqual(p.returncode, 0, p.stderr)
            p = cli(srv, "add", "/p2", "/q", "302", "promote-after=30d")
            self.assertEqual(p.returncode, 0, p.stderr)
            r7 = srv.api("GET", "/api/rules/1")[2]
            self.assertEqual(r7["promote_after"], "90d")
            p = cli(srv, "export")
            self.assertIn("/p7 /q 307 since=%s promote-after=90d\n" % r7["since"], p.stdout)
            self.assertIn("/p2 /q 302 since=", p.stdout)
            with Server("") as other:
                q = cli(other, "import", "-", input=p.stdout)
                self.assertEqual(q.returncode, 0, q.stderr)
                self.assertEqual(store_rules(other), store_rules(srv))
            p = cli(srv, "set", "1", "promote-after=none")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIsNone(srv.api("GET", "/api/rules/1")[2]["promote_after"])

    def test_an_exported_promotion_is_served_after_import(self):
        """An exported rule with since= and promote-after= imports and answers (the import
        once kept the line's since= next to the store's own, and the rule did not load)."""
        with Server("") as srv:
            cli(srv, "add", "/p7", "/q", "promote-after=90d")
            exported = cli(srv, "export").stdout
            with Server("") as other:
                p = cli(other, "import", "-", input=exported)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(get(other, "/p7"), (307, "/q"))

    def test_export_pages_through_more_than_one_page(self):
        with Server("") as srv:
            n = 10050
            st, _, body = srv.api("POST", "/api/import",
                                  "".join("/e/%d /t/%d\n" % (i, i) for i in range(n)))
            self.assertEqual(st, 200, body)
            p = cli(srv, "export")
            self.assertEqual(p.returncode, 0, p.stderr)
            lines = [l for l in p.stdout.splitlines() if not l.startswith("#")]
            self.assertEqual(len(lines), n)
            self.assertEqual(sorted(lines), sorted("/e/%d /t/%d 307" % (i, i) for i in range(n)))
            self.assertTrue(p.stdout.endswith("# %d rules\n" % n))
            p = cli(srv, "--json", "export")
            pages = [json.loads(l) for l in p.stdout.splitlines()]
            self.assertEqual([len(pg["rules"]) for pg in pages], [10000, 50])


class Match(unittest.TestCase):
    def test_match_names_the_rule_and_prints_the_exact_response(self):
        with Server("/old/* /new/:splat 308\n") as srv:
            p = cli(srv, "match", "http://example.com/old/x?q=1", "--method", "POST",
                    text=False)
            self.assertEqual(p.returncode, 0, p.stderr)
            head, response = p.stdout.decode().split("\n\n", 1)
            self.assertIn("rule: %s:1: /old/* /new/:splat 308" % srv.rules_path, head)
            self.assertIn("status: 308", head)
            self.assertIn("location: /new/x?q=1", head)
            self.assertTrue(response.startswith("HTTP/1.1 308 Permanent Redirect\r\n"))
            self.assertIn("POST", response)
            # the bytes the redirect listener sends, but for the Date
            (real,), _ = exchange(srv, request("POST", "/old/x?q=1",
                                               headers=("Content-Length: 0",)))
            self.assertEqual(without_date(response), without_date(real.raw))
            cli(srv, "add", "/old/x", "/exact")
            p = cli(srv, "match", "example.com/old/x")
            self.assertIn("rule: store rule 1: /old/x /exact 307", p.stdout)
            self.assertIn("location: /exact", p.stdout)
            p = cli(srv, "match", "http://example.com/none")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("rule: none (404)", p.stdout)
            self.assertIn("HTTP/1.1 404 Not Found", p.stdout)
            p = cli(srv, "match", "http://example.com/x", "--method", "G T")
            self.assertEqual(p.returncode, 1)
            self.assertIn("(field method)", p.stderr)


class Versions(unittest.TestCase):
    def test_history_versions_and_rollback(self):
        with Server("") as srv:
            cli(srv, "import", "-", input="/a /1\n/b /1\n")   # v1
            cli(srv, "set", "1", "target=/2")                  # v2
            cli(srv, "rm", "2")                                # v3
            cli(srv, "add", "/c", "/3")                        # v4
            p = cli(srv, "versions")
            self.assertEqual(p.returncode, 0, p.stderr)
            rows = table(p.stdout)
            self.assertEqual(rows[0][:6], ["VERSION", "AT", "ACTOR", "ADDED", "CHANGED",
                                           "REMOVED"])
            self.assertEqual([(r[0], r[2]) for r in rows[1:]],
                             [("4", "api"), ("3", "api"), ("2", "api"), ("1", "import")])
            self.assertEqual(rows[4][3:6], ["2", "0", "0"])
            p = cli(srv, "versions", "--limit", "1", "--before", "3")
            self.assertEqual([r[0] for r in table(p.stdout)[1:]], ["2"])
            p = cli(srv, "history", "1")
            rows = table(p.stdout)
            self.assertEqual([r[3] for r in rows[1:]], ["changed", "added"])
            self.assertEqual(rows[1][5], "/a /1 307 => /a /2 307")
            p = cli(srv, "history", "--limit", "2")
            self.assertEqual([(r[0], r[3]) for r in table(p.stdout)[1:]],
                             [("4", "added"), ("3", "removed")])
            p = cli(srv, "rollback", "1")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout, "rolled back to version 1 as version 5: 1 added, "
                                       "1 changed, 1 removed\n")
            self.assertEqual(get(srv, "/a"), (307, "/1"))
            self.assertEqual(get(srv, "/b"), (307, "/1"))
            self.assertEqual(get(srv, "/c"), (404, None))
            p = cli(srv, "rollback", "0")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(srv.api("GET", "/api/rules")[2]["total"], 0)


class UnixSocket(unittest.TestCase):
    def test_every_kind_of_request_over_a_unix_socket(self):
        srv = Server("", admin=None)
        path = os.path.join(srv.tmp.name, "admin.sock")
        srv.admin = path
        with srv:
            self.assertEqual(srv.admin_addr, "unix:" + path)
            for server in ("unix:" + path, path):
                p = run(["--server", server, "--token-file", srv.token_file, "add",
                         "/u%d" % len(server), "/v"])
                self.assertEqual(p.returncode, 0, p.stderr)
            p = cli(srv, "import", "-", input="/i /j 302\n")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(get(srv, "/i"), (302, "/j"))
            p = cli(srv, "list")
            self.assertEqual(len(table(p.stdout)), 4)
            p = cli(srv, "rm", "1")
            self.assertEqual(p.returncode, 0, p.stderr)
            p = run(["--server", path, "--token-file", srv.token_file, "export"])
            self.assertEqual(len([l for l in p.stdout.splitlines()
                                  if not l.startswith("#")]), 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
