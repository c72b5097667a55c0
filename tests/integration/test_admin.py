"""Integration tests for the admin API and the store (S5, S10): every endpoint, every bad
input, authentication, live changes seen by the redirect listener, imports all or nothing,
dry runs, versions and rollback, durability across kill -9, and no failed request while
rules change under load."""
import json
import os
import re
import signal
import tempfile
import subprocess
import threading
import time
import unittest
import urllib.parse

from harness import DETOUR, Server, exchange, get, request, without_date


class Auth(unittest.TestCase):
    def test_every_request_without_the_token_gets_401_and_nothing_else(self):
        # (24 failures from one address: without --admin-auth-failures 0, the sixth on
        # would be 429s; test_admin_throttle tests that)
        with Server("/a /b\n", args=["--admin-auth-failures", "0"]) as srv:
            for method, path in (("GET", "/api/rules"), ("POST", "/api/rules"),
                                 ("GET", "/api/health"), ("GET", "/metrics"),
                                 ("DELETE", "/api/rules/1"), ("GET", "/nowhere")):
                for token in (False, "wrong-token-wrong-token", srv.token + "x",
                              srv.token[:-1]):
                    st, h, body = srv.api(method, path, token=token,
                                          body={"source": "/x", "target": "/y"})
                    self.assertEqual(st, 401, (method, path, token))
                    self.assertEqual(h.get("www-authenticate"), 'Bearer realm="detour"')
                    self.assertNotIn("rules", body)
            st, _, _ = srv.api("GET", "/api/rules")
            self.assertEqual(st, 200)
            # the scheme name is case-insensitive
            st, _, _ = srv.api("GET", "/api/health", token=False,
                               headers={"Authorization": "bearer " + srv.token})
            self.assertEqual(st, 200)
            st, _, _ = srv.api("GET", "/api/rules")
            self.assertEqual(st, 200)
            # nothing was written by the refused requests
            self.assertEqual(srv.api("GET", "/api/rules")[2]["total"], 0)

    def test_token_file_is_created_owner_only_and_kept(self):
        keep = tempfile.TemporaryDirectory()
        db, tf = os.path.join(keep.name, "d.db"), os.path.join(keep.name, "t")
        with Server("", db=db, token_file=tf) as srv:
            mode = os.stat(srv.token_file).st_mode & 0o777
            self.assertEqual(mode, 0o600)
            token = srv.token
            self.assertRegex(token, r"^[0-9a-f]{64}$")
            srv.wait_log(r"token written to")
        # a second start reads the same token and says nothing about it
        with Server("", db=db, token_file=tf) as srv2:
            self.assertEqual(srv2.token, token)
            self.assertEqual(srv2.api("GET", "/api/health")[0], 200)
            self.assertFalse(any("token written" in l for l in srv2.log))

    def test_a_token_file_others_can_read_is_refused(self):
        srv = Server("")
        with open(srv.token_file, "w") as f:
            f.write("0123456789abcdef0123456789abcdef\n")
        os.chmod(srv.token_file, 0o644)
        p = subprocess.run(srv.command(), capture_output=True, timeout=10)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"readable by its owner only", p.stderr)


class Rules(unittest.TestCase):
    def test_create_get_list_replace_patch_delete_and_live_effect(self):
        with Server("/file /from-file 301\n") as srv:
            self.assertEqual(get(srv, "/sale"), (404, None))
            st, h, body = srv.api("POST", "/api/rules",
                                  {"source": "/sale", "target": "/winter-sale", "note": "Q4"})
            self.assertEqual(st, 201, body)
            rid = body["id"]
            self.assertEqual(h["location"], "/api/rules/%d" % rid)
            self.assertEqual(body["version"], 1)
            rule = body["rule"]
            self.assertEqual((rule["source"], rule["target"], rule["status"], rule["query"],
                              rule["cache"], rule["note"]),
                             ("/sale", "/winter-sale", 307, "keep", None, "Q4"))
            self.assertIsNotNone(rule["since"], "S10: a 307 records since when")
            self.assertIsNotNone(rule["created"])
            # S5: visible on the redirect listener as soon as the API has answered
            self.assertEqual(get(srv, "/sale"), (307, "/winter-sale"))
            st, _, got = srv.api("GET", "/api/rules/%d" % rid)
            self.assertEqual((st, got["target"]), (200, "/winter-sale"))
            # PATCH changes the given fields only
            st, _, body = srv.api("PATCH", "/api/rules/%d" % rid, {"status": 308, "cache": 60})
            self.assertEqual(st, 200, body)
            self.assertEqual(body["version"], 2)
            self.assertEqual((body["rule"]["status"], body["rule"]["cache"],
                              body["rule"]["note"], body["rule"]["since"]),
                             (308, 60, "Q4", None))
            self.assertEqual(get(srv, "/sale"), (308, "/winter-sale"))
            # PUT replaces it whole
            st, _, body = srv.api("PUT", "/api/rules/%d" % rid,
                                  {"source": "/sale", "target": "/spring-sale"})
            self.assertEqual(st, 200, body)
            self.assertEqual((body["rule"]["status"], body["rule"]["cache"],
                              body["rule"]["note"]), (307, None, ""))
            self.assertEqual(get(srv, "/sale"), (307, "/spring-sale"))
            # a store rule overrides the file rule with the same source
            st, _, body = srv.api("POST", "/api/rules", {"source": "/file", "target": "/store"})
            self.assertEqual(st, 201)
            self.assertEqual(get(srv, "/file"), (307, "/store"))
            fid = body["id"]
            st, _, lst = srv.api("GET", "/api/rules")
            self.assertEqual((st, lst["total"], [r["id"] for r in lst["rules"]]),
                             (200, 2, [rid, fid]))
            st, _, body = srv.api("DELETE", "/api/rules/%d" % fid)
            self.assertEqual((st, body["removed"]), (200, 1))
            self.assertEqual(get(srv, "/file"), (301, "/from-file"), "the file rule again")
            st, _, body = srv.api("DELETE", "/api/rules/%d" % fid)
            self.assertEqual(st, 404)
            st, _, body = srv.api("GET", "/api/rules/%d" % fid)
            self.assertEqual(st, 404)

    def test_list_filters_and_paging(self):
        with Server("") as srv:
            for i in range(25):
                body = {"source": "/p/%d" % i, "target": "https://new.example.com/%d" % i,
                        "status": 301 if i % 5 == 0 else 307}
                if i % 2:
                    body["source"] = "shop.example.com/p/%d" % i
                self.assertEqual(srv.api("POST", "/api/rules", body)[0], 201)
            st, _, page = srv.api("GET", "/api/rules?limit=10")
            self.assertEqual((len(page["rules"]), page["total"]), (10, 25))
            seen = [r["id"] for r in page["rules"]]
            while page["next_after"] is not None:
                st, _, page = srv.api("GET", "/api/rules?limit=10&after=%d" % page["next_after"])
                seen += [r["id"] for r in page["rules"]]
            self.assertEqual(len(seen), 25)
            self.assertEqual(seen, sorted(seen))
            st, _, page = srv.api("GET", "/api/rules?status=301")
            self.assertEqual(page["total"], 5)
            st, _, page = srv.api("GET", "/api/rules?host=shop.example.com")
            self.assertEqual(page["total"], 12)
            st, _, page = srv.api("GET", "/api/rules?text=%2Fp%2F1")
            self.assertEqual(page["total"], 11)  # /p/1, /p/10../p/19
            for bad in ("limit=0", "limit=x", "status=200", "after=-1", "limit=100000"):
                st, _, body = srv.api("GET", "/api/rules?" + bad)
                self.assertEqual(st, 400, bad)
                self.assertIn("field", body)

    def test_bad_input_gets_400_naming_the_field(self):
        with Server("") as srv:
            cases = [
                ("{not json", None),
                ("[1, 2]", None),
                ({"target": "/b"}, "source"),
                ({"source": "/a"}, "target"),
                ({"source": "/a", "target": "/b", "colour": "red"}, "colour"),
                ({"source": "/a", "target": "/b", "status": 200}, "status"),
                ({"source": "/a", "target": "/b", "status": "307"}, "status"),
                ({"source": "/a", "target": "/b", "status": 2 ** 32 + 307}, "status"),
                ({"source": "/a", "target": "/b", "query": "maybe"}, "query"),
                ({"source": "/a", "target": "/b", "cache": -1}, "cache"),
                ({"source": "/a", "target": "/b", "until": "soon"}, "until"),
                ({"source": "/a b", "target": "/b"}, "source"),
                ({"source": "/a", "target": "/b c"}, "target"),
                ({"source": "a", "target": "/b"}, "source"),
                ({"source": "/a", "target": "/:splat"}, "target"),
                ({"source": "~^(/x", "target": "/b"}, "source"),
                ({"source": 5, "target": "/b"}, "source"),
                ({"source": "/a", "target": "/b", "from": "2026-02-01T00:00:00Z",
                  "until": "2026-01-01T00:00:00Z"}, "options"),
            ]
            for body, field in cases:
                st, _, got = srv.api("POST", "/api/rules", body)
                self.assertEqual(st, 400, (body, got))
                self.assertIn("error", got)
                if field:
                    self.assertEqual(got.get("field"), field, (body, got))
            self.assertEqual(srv.api("GET", "/api/rules")[2]["total"], 0)
            self.assertEqual(srv.api("GET", "/api/versions")[2]["current"], 0)
            # duplicates, unknown rules, methods, endpoints
            self.assertEqual(srv.api("POST", "/api/rules", {"source": "/a", "target": "/b"})[0],
                             201)
            st, _, got = srv.api("POST", "/api/rules", {"source": "/a", "target": "/c"})
            self.assertEqual((st, got["field"]), (409, "source"))
            self.assertEqual(srv.api("PUT", "/api/rules/999", {"source": "/z", "target": "/y"})[0],
                             404)
            self.assertEqual(srv.api("PATCH", "/api/rules/999", {"status": 301})[0], 404)
            self.assertEqual(srv.api("GET", "/api/rules/abc")[0], 404)
            st, h, _ = srv.api("DELETE", "/api/rules")
            self.assertEqual((st, h.get("allow")), (405, "GET,POST"))
            self.assertEqual(srv.api("GET", "/api/nothing")[0], 404)
            st, _, got = srv.api("GET", "/api/match")
            self.assertEqual((st, got["field"]), (400, "url"))
            st, _, got = srv.api("GET", "/api/match?url=/relative")
            self.assertEqual((st, got["field"]), (400, "url"))

    def test_an_unknown_parameter_gets_400_naming_it(self):
        """A misspelt parameter is refused rather than ignored (a filter or a mode that
        silently does not apply): 400 naming it and what the endpoint takes."""
        with Server("") as srv:
            srv.api("POST", "/api/rules", {"source": "/a", "target": "/b"})
            for method, path, body, name in [
                    ("GET", "/api/rules?q=/a", None, "q"),
                    ("GET", "/api/rules?limit=5&Text=x", None, "Text"),
                    ("POST", "/api/import?mode=replace&dryrun=true", "/x /y\n", "dryrun"),
                    ("GET", "/api/health?verbose=1", None, "verbose"),
                    ("GET", "/metrics?name[]=x", None, "name[]"),
                    ("PATCH", "/api/rules/1?force=true", {"target": "/c"}, "force"),
                    ("GET", "/api/history?rule=1", None, "rule"),
                    ("GET", "/api/match?url=http%3A%2F%2Fx%2Fa&host=x", None, "host")]:
                st, _, got = srv.api(method, path, body)
                self.assertEqual((st, got.get("field")), (400, name), (path, got))
                self.assertIn("unknown parameter", got["error"])
            # nothing was done by the refused ones; the known and empty ones still work
            self.assertEqual(srv.api("GET", "/api/rules")[2]["total"], 1)
            self.assertEqual(get(srv, "/a"), (307, "/b"))
            self.assertEqual(srv.api("GET", "/api/rules?&limit=1&")[0], 200)
            st, _, got = srv.api("GET", "/api/rules?text=%2Fa&limit=5")
            self.assertEqual((st, got["total"]), (200, 1))

    def test_content_over_the_limit_gets_413(self):
        with Server("", args=["--admin-max-body", "2k"]) as srv:
            st, _, _ = srv.api("POST", "/api/import", "/a /b\n" * 1000)
            self.assertEqual(st, 413)
            self.assertEqual(srv.api("GET", "/api/health")[0], 200)


class Match(unittest.TestCase):
    def test_match_names_the_rule_and_gives_the_exact_response(self):
        with Server("/old/* /new/:splat 308\n") as srv:
            st, _, m = srv.api("GET", "/api/match?url=" +
                               urllib.parse.quote("http://example.com/old/x?q=1", safe="") +
                               "&method=POST")
            self.assertEqual(st, 200)
            self.assertEqual((m["status"], m["location"]), (308, "/new/x?q=1"))
            self.assertEqual(m["rule"]["line"], 1)
            self.assertTrue(m["rule"]["file"].endswith("rules.txt"))
            self.assertTrue(m["response"].startswith("HTTP/1.1 308 Permanent Redirect\r\n"))
            self.assertIn("Location: /new/x?q=1\r\n", m["response"])
            self.assertIn("POST", m["response"])  # the note names the method (S2)
            # the same bytes as the redirect listener sends, but for the Date
            (real,), _ = exchange(srv, request("POST", "/old/x?q=1",
                                               headers=("Content-Length: 0",)))
            self.assertEqual(without_date(m["response"]), without_date(real.raw))
            srv.api("POST", "/api/rules", {"source": "/old/x", "target": "/exact"})
            st, _, m = srv.api("GET", "/api/match?url=http%3A%2F%2Fexample.com%2Fold%2Fx")
            self.assertEqual((m["status"], m["location"], m["rule"]["id"]), (307, "/exact", 1))
            st, _, m = srv.api("GET", "/api/match?url=http%3A%2F%2Fexample.com%2Fnone")
            self.assertEqual((m["status"], m["rule"]), (404, None))


class Import(unittest.TestCase):
    def test_import_all_or_nothing_with_the_error_line(self):
        with Server("") as srv:
            st, _, body = srv.api("POST", "/api/import", "/a /b\n/c /d 302\n/e\n/f /g 999\n")
            self.assertEqual(st, 400)
            self.assertEqual([e["line"] for e in body["errors"]], [3, 4])
            self.assertEqual(body["line"], 3)
            self.assertEqual(srv.api("GET", "/api/rules")[2]["total"], 0, "nothing written")
            st, _, body = srv.api("POST", "/api/import", "/a /b\n# comment\n/c /d 302\n")
            self.assertEqual((st, body["added"], body["version"]), (200, 2, 1))
            self.assertEqual(get(srv, "/c"), (302, "/d"))
            # merge: same source replaced, others kept
            st, _, body = srv.api("POST", "/api/import", "/a /b2\n/x /y\n")
            self.assertEqual((body["added"], body["changed"], body["removed"]), (1, 1, 0))
            # replace: what the file lacks goes
            st, _, body = srv.api("POST", "/api/import?mode=replace", "/x /y\n")
            self.assertEqual((body["added"], body["changed"], body["removed"]), (0, 0, 2))
            self.assertEqual(get(srv, "/a"), (404, None))
            self.assertEqual(get(srv, "/x"), (307, "/y"))

    def test_since_in_an_imported_line_is_the_stores_and_notes_are_kept(self):
        """Bugs found by the CLI's tests: a line's since= was stored next to the store's own
        (the rule did not load, and lint stopped for every write); a re-import erased
        notes."""
        with Server("") as srv:
            st, _, body = srv.api("POST", "/api/import",
                                  "/p /q 307 since=2099-01-01T00:00:00Z promote-after=90d\n")
            self.assertEqual(st, 200, body)
            self.assertEqual(get(srv, "/p"), (307, "/q"))
            rule = srv.api("GET", "/api/rules/1")[2]
            self.assertEqual(rule["promote_after"], "90d")
            st, _, body = srv.api("POST", "/api/import",
                                  "/p /q 307 since=2099-01-01T00:00:00Z promote-after=90d\n")
            self.assertEqual((st, body["changed"]), (200, 0), "the same rule is no change")
            st, _, body = srv.api("POST", "/api/import", "/a /b\n/b /a\n")
            self.assertEqual(st, 409, "lint still works")
            srv.api("PATCH", "/api/rules/1", {"note": "keep me"})
            st, _, body = srv.api("POST", "/api/import", "/p /q2 307\n")
            self.assertEqual((st, body["changed"]), (200, 1))
            rule = srv.api("GET", "/api/rules/1")[2]
            self.assertEqual((rule["target"], rule["note"], rule["promote_after"]),
                             ("/q2", "keep me", None))

    def test_foreign_formats(self):
        with Server("") as srv:
            st, _, body = srv.api("POST", "/api/import?format=csv",
                                  "source,target,status\n/c1,/t1,301\n/c2,/t2,\n")
            self.assertEqual((st, body["added"]), (200, 2), body)
            self.assertEqual(get(srv, "/c1"), (301, "/t1"))
            st, _, body = srv.api("POST", "/api/import?format=netlify", "/n1 /t 302\n")
            self.assertEqual((st, body["added"]), (200, 1), body)
            st, _, body = srv.api("POST", "/api/import?format=nginx",
                                  "map $uri $t {\n  /m1 /t;\n}\n")
            self.assertEqual((st, body["added"]), (200, 1), body)
            st, _, body = srv.api("POST", "/api/import?format=yaml", "x")
            self.assertEqual((st, body["field"]), (400, "format"))
            st, _, body = srv.api("POST", "/api/import?mode=sideways", "/a /b\n")
            self.assertEqual((st, body["field"]), (400, "mode"))

    def test_an_import_with_a_loop_is_refused_unless_forced(self):
        with Server("") as srv:
            st, _, body = srv.api("POST", "/api/import", "/a /b\n/b /a\n")
            self.assertEqual(st, 409, body)
            self.assertTrue(any(f["kind"] == "loop" for f in body["lint"]))
            self.assertEqual(srv.api("GET", "/api/rules")[2]["total"], 0)
            st, _, body = srv.api("POST", "/api/import?force=true", "/a /b\n/b /a\n")
            self.assertEqual((st, body["added"]), (200, 2))

    def test_replace_removes_what_it_does_not_name_even_with_a_source_twice(self):
        """mode=replace removes every rule the import does not name; it counts the rules it
        named, so a line that names a source again does not stand for another rule."""
        with Server("") as srv:
            srv.api("POST", "/api/import", "/a /a1\n/b /b1\n")
            st, _, body = srv.api("POST", "/api/import?mode=replace", "/a /a2\n/a /a3\n")
            self.assertEqual(st, 200, body)
            self.assertEqual(get(srv, "/b")[0], 404)
            self.assertEqual(get(srv, "/a"), (307, "/a3"))
            self.assertEqual(srv.api("GET", "/api/rules")[2]["total"], 1)
            # every rule named: nothing removed, nothing else changed
            st, _, body = srv.api("POST", "/api/import?mode=replace", "/a /a3\n")
            self.assertEqual((st, body["added"], body["changed"], body["removed"]),
                             (200, 0, 0, 0), body)

    def test_an_import_is_checked_against_the_whole_rule_set(self):
        """An import is checked by following each changed rule through every rule in force
        (rule files, the store, the changes not merged yet): a loop through rules it did not
        bring is refused too, and a chain into other rules' loop is not this import's."""
        with Server("/f1 /s1\n") as srv:
            srv.api("POST", "/api/rules", {"source": "/s2", "target": "/s3"})
            # through a file rule
            st, _, body = srv.api("POST", "/api/import?mode=merge", "/s1 /f1\n")
            self.assertEqual(st, 409, body)
            self.assertEqual([f["kind"] for f in body["lint"]], ["loop"], body)
            self.assertIn("/f1", body["lint"][0]["message"])
            # through a rule the store holds (a change not merged yet)
            st, _, body = srv.api("POST", "/api/import?mode=merge", "/s3 /s2\n")
            self.assertEqual(st, 409, body)
            # into a loop of rules already there (forced in): not this import's finding
            self.assertEqual(srv.api("POST", "/api/import?mode=merge&force=true",
                                     "/x /y\n/y /x\n")[0], 200)
            st, _, body = srv.api("POST", "/api/import?mode=merge", "/z /x\n")
            self.assertEqual(st, 200, body)
            self.assertEqual(get(srv, "/z"), (307, "/x"))
            # replacing every rule: checked in the new whole set, the old ones gone
            st, _, body = srv.api("POST", "/api/import?mode=replace", "/s3 /s2\n/q /r\n")
            self.assertEqual(st, 200, body)
            self.assertEqual(get(srv, "/s3"), (307, "/s2"))
            self.assertEqual(get(srv, "/x")[0], 404)

    def test_dry_run_shows_diff_and_lint_and_changes_nothing(self):
        with Server("") as srv:
            srv.api("POST", "/api/rules", {"source": "/a", "target": "/b"})
            st, _, body = srv.api("POST", "/api/import?dry_run=true", "/a /c\n/b /a\n/n /m\n")
            self.assertEqual(st, 200, body)
            self.assertTrue(body["dry_run"])
            self.assertEqual(len(body["diff"]["added"]), 2)
            self.assertEqual(len(body["diff"]["changed"]), 1)
            self.assertEqual(body["diff"]["changed"][0]["new"]["target"], "/c")
            self.assertTrue(body["would_refuse"] is False or body["lint"])
            st, _, body = srv.api("POST", "/api/rules?dry_run=true",
                                  {"source": "/b", "target": "/a"})
            self.assertEqual(st, 200)
            self.assertEqual(len(body["diff"]["added"]), 1)
            self.assertTrue(any(f["kind"] == "loop" for f in body["lint"]), body)
            st, _, body = srv.api("DELETE", "/api/rules/1?dry_run=true")
            self.assertEqual(len(body["diff"]["removed"]), 1)
            self.assertEqual(srv.api("GET", "/api/rules")[2]["total"], 1)
            self.assertEqual(srv.api("GET", "/api/versions")[2]["current"], 1)
            self.assertEqual(get(srv, "/a"), (307, "/b"))


class Versions(unittest.TestCase):
    def test_versions_history_and_rollback(self):
        with Server("") as srv:
            srv.api("POST", "/api/import", "/a /1\n/b /1\n")           # v1
            srv.api("PATCH", "/api/rules/1", {"target": "/2"})         # v2
            srv.api("DELETE", "/api/rules/2")                          # v3
            srv.api("POST", "/api/rules", {"source": "/c", "target": "/3"})  # v4
            st, _, v = srv.api("GET", "/api/versions")
            self.assertEqual([x["version"] for x in v["versions"]], [4, 3, 2, 1])
            self.assertEqual([x["actor"] for x in v["versions"]],
                             ["api", "api", "api", "import"])
            st, _, hist = srv.api("GET", "/api/history?id=1")
            self.assertEqual([c["kind"] for c in hist["changes"]], ["changed", "added"])
            self.assertEqual((hist["changes"][0]["old"]["target"],
                              hist["changes"][0]["new"]["target"]), ("/1", "/2"))
            st, _, body = srv.api("POST", "/api/rollback?dry_run=true", {"version": 1})
            self.assertEqual((len(body["diff"]["added"]), len(body["diff"]["changed"]),
                              len(body["diff"]["removed"])), (1, 1, 1))
            st, _, body = srv.api("POST", "/api/rollback", {"version": 1})
            self.assertEqual((st, body["version"]), (200, 5), body)
            self.assertEqual(get(srv, "/a"), (307, "/1"))
            self.assertEqual(get(srv, "/b"), (307, "/1"))
            self.assertEqual(get(srv, "/c"), (404, None))
            ids = [r["id"] for r in srv.api("GET", "/api/rules")[2]["rules"]]
            self.assertEqual(ids, [1, 2], "rules come back with their ids")
            self.assertEqual(srv.api("POST", "/api/rollback", {"version": 99})[0], 404)
            self.assertEqual(srv.api("POST", "/api/rollback", {"version": "1"})[0], 400)
            self.assertEqual(srv.api("POST", "/api/rollback", {"v": 1})[0], 400)
            st, _, body = srv.api("POST", "/api/rollback", {"version": 0})
            self.assertEqual(srv.api("GET", "/api/rules")[2]["total"], 0)


class Observability(unittest.TestCase):
    def test_health_and_metrics(self):
        with Server("/a /b\n/c /d\n") as srv:
            srv.api("POST", "/api/rules", {"source": "/x", "target": "/y"})
            st, _, h = srv.api("GET", "/api/health")
            self.assertEqual((st, h["status"], h["rules"]["files"], h["rules"]["store"],
                              h["version"]), (200, "ok", 2, 1, 1))
            st, hdr, text = srv.api("GET", "/metrics")
            self.assertEqual(st, 200)
            self.assertTrue(hdr["content-type"].startswith("text/plain; version=0.0.4"))
            text = text.decode()
            self.assertIn('detour_rules{source="files"} 2\n', text)
            self.assertIn('detour_rules{source="store"} 1\n', text)
            self.assertIn("detour_api_writes_total 1\n", text)
            self.assertIn("# TYPE detour_store_version gauge\n", text)

    def test_hit_counters_and_request_metrics(self):
        with Server("/f /file\n", workers=2) as srv:
            srv.api("POST", "/api/rules", {"source": "/s", "target": "/store"})
            for _ in range(7):
                self.assertEqual(get(srv, "/s"), (307, "/store"))
            for _ in range(3):
                get(srv, "/f")
            get(srv, "/nothing")
            st, _, r = srv.api("GET", "/api/rules/1")
            self.assertEqual(r["hits"], 7)
            self.assertIsNotNone(r["last_hit"])
            # a change keeps the rule's count (the overlay is rebuilt, the count carried)
            srv.api("PATCH", "/api/rules/1", {"target": "/store2"})
            srv.api("POST", "/api/rules", {"source": "/other", "target": "/o"})
            get(srv, "/s")
            self.assertEqual(srv.api("GET", "/api/rules/1")[2]["hits"], 8)
            self.assertEqual(srv.api("GET", "/api/rules")[2]["rules"][0]["hits"], 8)
            text = srv.api("GET", "/metrics")[2].decode()
            self.assertIn('detour_requests_total{status="307"} 11\n', text)
            self.assertIn('detour_requests_total{status="404"} 1\n', text)
            self.assertIn('detour_requests_by_source_total{source="store"} 8\n', text)
            self.assertIn('detour_requests_by_source_total{source="files"} 3\n', text)
            self.assertIn('detour_request_duration_seconds_bucket{le="+Inf"} 12\n', text)
            self.assertIn("detour_request_duration_seconds_count 12\n", text)
            self.assertIn("detour_connections_total 12\n", text)

    def test_s10_old_temporary_rules_listed(self):
        with Server("", args=["--max-temporary-age", "1s"]) as srv:
            srv.api("POST", "/api/rules", {"source": "/t", "target": "/u"})
            srv.api("POST", "/api/rules", {"source": "/p", "target": "/u", "status": 308})
            time.sleep(2.2)
            st, _, page = srv.api("GET", "/api/rules?old_temporary=1")
            self.assertEqual([r["source"] for r in page["rules"]], ["/t"])
            text = srv.api("GET", "/metrics")[2].decode()
            self.assertIn("detour_old_temporary_rules 1\n", text)


class Lifecycle(unittest.TestCase):
    def test_promote_after_on_time_without_reload_and_audited(self):
        """A 307 with promote-after answers 308 from its time on, with no reload; a store
        rule's transition is written to the store by "lifecycle" (the audit trail)."""
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 58))
        with Server("/file /f 307 since=%s promote-after=1m\n" % since) as srv:
            st, _, body = srv.api("POST", "/api/rules", {"source": "/s", "target": "/t",
                                                         "promote_after": "2s"})
            self.assertEqual(st, 201, body)
            self.assertEqual(body["rule"]["promote_after"], "2s")
            self.assertEqual(get(srv, "/s"), (307, "/t"))
            self.assertEqual(get(srv, "/file")[0], 307)
            deadline = time.monotonic() + 8
            while get(srv, "/s")[0] != 308 and time.monotonic() < deadline:
                time.sleep(0.1)
            self.assertEqual(get(srv, "/s"), (308, "/t"))
            self.assertEqual(get(srv, "/file"), (308, "/f"))
            # the store says so too, once the lifecycle tick has written it
            while srv.api("GET", "/api/rules/1")[2]["status"] != 308 and \
                    time.monotonic() < deadline:
                time.sleep(0.1)
            rule = srv.api("GET", "/api/rules/1")[2]
            self.assertEqual((rule["status"], rule["promote_after"]), (308, None))
            v = srv.api("GET", "/api/versions")[2]["versions"][0]
            self.assertEqual((v["actor"], v["changed"]), ("lifecycle", 1))
            ch = srv.api("GET", "/api/history?id=1")[2]["changes"][0]
            self.assertEqual((ch["old"]["status"], ch["new"]["status"]), (307, 308))
            srv.wait_log(r"promote-after: 1 rules promoted")

    def test_promote_after_errors(self):
        with Server("") as srv:
            st, _, body = srv.api("POST", "/api/rules", {"source": "/s", "target": "/t",
                                                         "status": 301, "promote_after": "2d"})
            self.assertEqual((st, body["field"]), (400, "promote_after"), body)
            st, _, body = srv.api("POST", "/api/rules", {"source": "/s", "target": "/t",
                                                         "promote_after": "soon"})
            self.assertEqual((st, body["field"]), (400, "promote_after"), body)
            st, _, body = srv.api("POST", "/api/rules", {"source": "/s", "target": "/t",
                                                         "status": 302, "promote_after": "90d"})
            self.assertEqual(st, 201, body)

    def test_rule_text_is_the_codecs_line(self):
        """Issue 10: a rule's "text" is the rule-file line the codec writes (options in one
        order, an age in its largest exact unit), and it reads back to the same rule."""
        with Server("") as srv:
            st, _, body = srv.api("POST", "/api/rules", {
                "source": "/s", "target": "/t", "status": 307, "promote_after": "1440m",
                "until": "2099-01-01T00:00:00Z", "cache": 60, "query": "drop"})
            self.assertEqual(st, 201, body)
            rule = body["rule"]
            self.assertEqual(rule["promote_after"], "1d")
            self.assertEqual(rule["text"], "/s /t 307 query=drop cache=60 "
                             "until=2099-01-01T00:00:00Z since=%s promote-after=1d"
                             % rule["since"])
            st, _, body = srv.api("POST", "/api/import?mode=replace", rule["text"] + "\n")
            self.assertEqual((st, body["changed"], body["added"]), (200, 0, 0), body)
            st, _, m = srv.api("GET", "/api/match?url=http://x/s")
            self.assertEqual(m["rule"]["text"], rule["text"], "the table's rule, whole")


class Start(unittest.TestCase):
    def test_bad_rule_file_exits_2_before_creating_a_store(self):
        with tempfile.TemporaryDirectory() as d:
            db = os.path.join(d, "detour.db")
            p = subprocess.run([DETOUR, "serve", "--rules", os.path.join(d, "missing.txt"),
                                "--db", db, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"],
                               capture_output=True, timeout=10)
            self.assertEqual(p.returncode, 2)
            self.assertEqual(os.listdir(d), [])

    def test_store_that_cannot_open_exits_1(self):
        with tempfile.TemporaryDirectory() as d:
            p = subprocess.run([DETOUR, "serve", "--db", os.path.join(d, "no", "dir.db"),
                                "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"],
                               capture_output=True, timeout=10)
            self.assertEqual(p.returncode, 1)
            self.assertIn(b"cannot open the store", p.stderr)
            bad = os.path.join(d, "not-a-db")
            with open(bad, "w") as f:
                f.write("this is not SQLite\n" * 100)
            p = subprocess.run([DETOUR, "serve", "--db", bad, "--listen", "127.0.0.1:0",
                                "--admin", "127.0.0.1:0"], capture_output=True, timeout=10)
            self.assertEqual(p.returncode, 1)
            self.assertIn(b"cannot open the store", p.stderr)

    def test_memory_store_and_usage_errors(self):
        with tempfile.TemporaryDirectory() as d:
            srv = Server("/a /b\n", db=":memory:")
            with srv:
                self.assertEqual(srv.api("POST", "/api/rules", {"source": "/m", "target": "/n"})[0],
                                 201)
                self.assertEqual(get(srv, "/m"), (307, "/n"))
            for args in (["--admin", "nowhere"], ["--db", ""], ["--admin-max-body", "1q"],
                         ["--max-temporary-age", "soon"]):
                p = subprocess.run([DETOUR, "serve"] + args, capture_output=True, timeout=10,
                                   cwd=d)
                self.assertEqual(p.returncode, 2, args)
            self.assertEqual(os.listdir(d), [])


class Listeners(unittest.TestCase):
    def test_unix_socket_admin(self):
        srv = Server("", admin=None)
        path = os.path.join(srv.tmp.name, "admin.sock")
        srv.admin = path
        with srv:
            self.assertEqual(srv.admin_addr, "unix:" + path)
            self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
            st, _, body = srv.api("POST", "/api/rules", {"source": "/u", "target": "/v"})
            self.assertEqual(st, 201)
            self.assertEqual(get(srv, "/u"), (307, "/v"))

    def test_admin_off(self):
        with Server("/a /b\n", admin=None) as srv:
            self.assertIsNone(srv.admin_addr)
            self.assertEqual(get(srv, "/a"), (307, "/b"))

    def test_reload_keeps_store_rules(self):
        with Server("/a /file-a\n") as srv:
            srv.api("POST", "/api/rules", {"source": "/s", "target": "/store"})
            srv.write_rules("/a /file-a2\n")
            self.assertIn("reloaded", srv.reload())
            self.assertEqual(get(srv, "/a"), (307, "/file-a2"))
            self.assertEqual(get(srv, "/s"), (307, "/store"))


class Durability(unittest.TestCase):
    def test_store_rules_survive_a_restart(self):
        keep = tempfile.TemporaryDirectory()
        db, tf = os.path.join(keep.name, "d.db"), os.path.join(keep.name, "t")
        with Server("", db=db, token_file=tf) as srv:
            srv.api("POST", "/api/import", "".join("/k/%d /v/%d\n" % (i, i) for i in range(500)))
        with Server("", db=db, token_file=tf) as srv2:
            self.assertEqual(get(srv2, "/k/499"), (307, "/v/499"))
            self.assertEqual(srv2.api("GET", "/api/rules")[2]["total"], 500)

    def test_kill_9_loses_no_acknowledged_write(self):
        """50 times: a stream of writes, SIGKILL at a random moment, restart: every write
        the API acknowledged is there."""
        import random
        rng = random.Random(5)
        keep = tempfile.TemporaryDirectory()
        db, tf = os.path.join(keep.name, "d.db"), os.path.join(keep.name, "t")
        acked = {}
        attempts = {}
        n = 0
        for round_no in range(50):
            srv = Server("", db=db, token_file=tf)
            srv.start()
            # every acknowledged write so far is there
            rules = {}
            after = 0
            while True:
                page = srv.api("GET", "/api/rules?limit=10000&after=%d" % after)[2]
                rules.update({r["source"]: r["target"] for r in page["rules"]})
                if page["next_after"] is None:
                    break
                after = page["next_after"]
            for src, tgt in acked.items():
                # the acknowledged value, or a later write that was committed but killed
                # before its answer went out
                later = attempts[src][attempts[src].index(tgt):]
                self.assertIn(rules.get(src), later, "round %d: %s lost" % (round_no, src))
            stop = threading.Event()

            def writer():
                nonlocal n
                while not stop.is_set():
                    n += 1
                    src, tgt = "/w/%d" % (n % 300), "/t/%d" % n
                    attempts.setdefault(src, []).append(tgt)
                    try:
                        st, _, body = srv.api("POST", "/api/import", "%s %s\n" % (src, tgt))
                    except (OSError, Exception):
                        return
                    if st == 200:
                        acked[src] = tgt
            t = threading.Thread(target=writer)
            t.start()
            time.sleep(rng.uniform(0.02, 0.15))
            srv.proc.send_signal(signal.SIGKILL)
            stop.set()
            t.join(10)
            srv.proc.wait(10)
            srv.stop()
        self.assertGreater(len(acked), 50)


class Bulk(unittest.TestCase):
    """S5: an import of 10,000 rules or more (into a store not much larger) is a bulk
    write: decided in memory, committed as one record, its rows written after the answer.
    It must answer, list, record history and survive a crash exactly as one put per rule
    would."""

    N = 12000  # past DT_ADMIN_BULK_MIN

    @staticmethod
    def lines(n, gen, skip=()):
        out = []
        for i in range(n):
            if i in skip:
                continue
            status = (307, 302, 301, 308)[i % 4]
            opt = ("", " query=drop", " cache=60", " promote-after=90d")[i % 4]
            if status not in (307, 302):
                opt = opt.replace(" promote-after=90d", "")
            out.append("/k/%d /g%d/%d %d%s\n" % (i, gen, i, status, opt))
        return "".join(out)

    def sample(self, srv):
        """/api/match of a spread of sources: status, Location and headers as sent."""
        out = {}
        for i in list(range(0, self.N, 997)) + [0, 1, 2, 3, self.N - 1]:
            st, _, body = srv.api("GET", "/api/match?url=%s" % urllib.parse.quote(
                "http://x/k/%d?q=1" % i))
            out[i] = (st, body.get("status"), body.get("location"),
                      without_date(body.get("response") or ""))
        return out

    def test_bulk_import_answers_lists_and_restarts_like_single_puts(self):
        keep = tempfile.TemporaryDirectory()
        db, tf = os.path.join(keep.name, "d.db"), os.path.join(keep.name, "t")
        with Server("", db=db, token_file=tf) as srv:
            st, _, r0 = srv.api("POST", "/api/rules",
                                {"source": "/k/0", "target": "/old/0", "note": "kept"})
            self.assertEqual(st, 201, r0)
            srv.api("POST", "/api/rules", {"source": "/k/1", "target": "/old/1"})
            srv.api("POST", "/api/rules", {"source": "/gone", "target": "/old/2"})
            st, _, body = srv.api("POST", "/api/import", self.lines(self.N, 1))
            self.assertEqual(st, 200, body)
            self.assertEqual((body["added"], body["changed"], body["removed"], body["rules"]),
                             (self.N - 2, 2, 0, self.N))
            v1 = body["version"]
            # health, metrics and match answer right away (the rows are being written by a
            # thread of their own), with the count of rules as committed
            st, _, h = srv.api("GET", "/api/health")
            self.assertEqual((st, h["rules"]["store"], h["version"]), (200, self.N + 1, v1))
            text = srv.api("GET", "/metrics")[2].decode()
            self.assertIn('detour_rules{source="store"} %d\n' % (self.N + 1), text)
            srv.wait_log(r"wrote the rows of a bulk import in \d+ ms", 20)
            time.sleep(1.5)  # a tick of the admin thread comes: it has nothing left to write
            self.assertEqual(sum("wrote the rows" in line for line in srv.log), 1, srv.log)
            self.assertEqual(srv.api("GET", "/api/rules?limit=1")[2]["total"], self.N + 1)
            # live at the answer
            self.assertEqual(get(srv, "/k/0"), (307, "/g1/0"))
            self.assertEqual(get(srv, "/k/5"), (302, "/g1/5"))
            self.assertEqual(get(srv, "/gone"), (307, "/old/2"))
            # the rows, as single puts write them
            rule0 = srv.api("GET", "/api/rules/%d" % r0["id"])[2]
            self.assertEqual((rule0["target"], rule0["note"], rule0["version"]),
                             ("/g1/0", "kept", v1))
            st, _, page = srv.api("GET", "/api/rules?limit=5&text=/k/11")
            self.assertEqual(page["total"], 1111)  # /k/11, /k/110-119, /k/1100-1199, /k/11000-11999
            hist = srv.api("GET", "/api/history?id=%d" % r0["id"])[2]["changes"]
            self.assertEqual([(c["kind"], c["version"]) for c in hist[:2]],
                             [("changed", v1), ("added", r0["version"])])
            self.assertEqual(hist[0]["old"]["target"], "/old/0")
            versions = srv.api("GET", "/api/versions")[2]["versions"]
            self.assertEqual((versions[0]["version"], versions[0]["added"],
                              versions[0]["changed"]), (v1, self.N - 2, 2))
            # replace: 1,000 rules not named go, with /gone; the rest change
            st, _, body = srv.api("POST", "/api/import?mode=replace",
                                  self.lines(self.N, 2, skip=range(5000, 6000)))
            self.assertEqual(st, 200, body)
            self.assertEqual((body["added"], body["changed"], body["removed"]),
                             (0, self.N - 1000, 1001))
            self.assertEqual(get(srv, "/k/5500")[0], 404)
            self.assertEqual(get(srv, "/gone")[0], 404)
            self.assertEqual(srv.api("GET", "/api/rules")[2]["total"], self.N - 1000)
            # a bulk import with a loop is refused whole, and changes nothing
            st, _, body = srv.api("POST", "/api/import",
                                  self.lines(self.N, 3) + "/loop/a /loop/b\n/loop/b /loop/a\n")
            self.assertEqual(st, 409, body)
            self.assertEqual(get(srv, "/k/0"), (307, "/g2/0"))
            self.assertEqual(srv.api("GET", "/api/versions")[2]["versions"][0]["version"],
                             v1 + 1)
            before = self.sample(srv)
            hits = srv.api("GET", "/api/rules/%d" % r0["id"])[2]["hits"]
            self.assertGreater(hits, 0, "hits counted on the bulk import's table")
        # after a restart the table comes from the rows: the same answers
        with Server("", db=db, token_file=tf) as srv:
            self.assertEqual(self.sample(srv), before)
            self.assertEqual(srv.api("GET", "/api/rules")[2]["total"], self.N - 1000)
            # a rollback over a bulk version
            st, _, body = srv.api("POST", "/api/rollback", {"version": v1})
            self.assertEqual(st, 200, body)
            self.assertEqual(get(srv, "/k/5501"), (302, "/g1/5501"))
            self.assertEqual(get(srv, "/gone"), (307, "/old/2"))

    def test_every_kind_of_rule_answers_the_same_after_a_restart(self):
        """The workers' table a bulk import builds from its parsed rules answers as the one
        built from the store's rows after a restart, for every kind of rule and option."""
        kinds = ("*.example.org/* https://example.org/:splat 301\n"
                 "shop.example.com/* https://example.com/shop/:splat\n"
                 "http://plain.example/* https://plain.example/:splat 308\n"
                 "~^/re/([0-9]+)$ /regex/$1 302\n"
                 "/u/:id /users/:id 302 promote-after=30d\n"
                 "/p/* /prefix/:splat 307 promote-after=12h\n"
                 "/m /maint 307 cache=60 until=2099-12-01T06:00:00Z\n"
                 "/c /landing query=drop\n"
                 "/f /future from=2099-01-01T00:00:00Z\n"
                 "/o /old until=2020-01-01T00:00:00Z\n")
        urls = ["http://a.example.org/x?y=1", "http://example.org/x", "http://shop.example.com/y",
                "http://plain.example/z", "https://plain.example/z", "http://x/re/42",
                "http://x/re/x", "http://x/u/7", "http://x/p/a/b?q=1", "http://x/m",
                "http://x/c?utm=1", "http://x/f", "http://x/o", "http://x/k/5?q=2"]

        def answers(srv):
            out = []
            for u in urls:
                st, _, body = srv.api("GET", "/api/match?url=%s" % urllib.parse.quote(u))
                # the whole answer but the Date header of the exact response
                out.append((u, st, body.get("status"), body.get("location"),
                            without_date(body.get("response") or "")))
            return out
        keep = tempfile.TemporaryDirectory()
        db, tf = os.path.join(keep.name, "d.db"), os.path.join(keep.name, "t")
        with Server("", db=db, token_file=tf) as srv:
            st, _, body = srv.api("POST", "/api/import", self.lines(self.N, 1) + kinds)
            self.assertEqual((st, body.get("added")), (200, self.N + 10), body)
            before = answers(srv)
        with Server("", db=db, token_file=tf) as srv:
            self.assertEqual(answers(srv), before)
        self.assertEqual([a[2] for a in before],
                         [301, 404, 307, 308, 404, 302, 404, 302, 307, 307, 307, 404, 404, 302],
                         before)
        self.assertIn("Cache-Control: max-age=60", before[9][4])
        self.assertEqual(before[10][3], "/landing")  # query=drop

    def test_a_line_that_does_not_load_refuses_the_bulk_import(self):
        """A bulk import loads its rules only into the workers' table it builds: a line that
        parses but does not load (a bad regex, a placeholder the source lacks) refuses the
        whole import with the same errors, lines and columns as a small import gets."""
        bad = {4999: "~^/(unclosed /x\n", 11000: "/u/:id /v/:name\n"}
        lines = self.lines(self.N, 1).splitlines(keepends=True)
        for i, text in bad.items():
            lines[i] = text
        with Server("") as srv:
            srv.api("POST", "/api/rules", {"source": "/k/1", "target": "/before"})
            st, _, body = srv.api("POST", "/api/import", "".join(lines))
            self.assertEqual(st, 400, body)
            self.assertEqual(body["count"], 2)
            self.assertEqual([(e["line"], e["column"]) for e in body["errors"]],
                             [(5000, 13), (11001, 11)])
            self.assertIn("regular expression", body["errors"][0]["message"])
            self.assertIn(":name", body["errors"][1]["message"])
            self.assertEqual(body["line"], 5000)
            # nothing written, nothing changed, and the store goes on
            self.assertEqual(srv.api("GET", "/api/rules")[2]["total"], 1)
            self.assertEqual(get(srv, "/k/1"), (307, "/before"))
            self.assertEqual(srv.api("GET", "/api/versions")[2]["versions"][0]["version"], 1)
            # the same lines in a small import: the same errors
            st, _, small = srv.api("POST", "/api/import", "/ok /fine\n" + bad[4999] + bad[11000])
            self.assertEqual(st, 400, small)
            self.assertEqual([(e["column"], e["message"]) for e in small["errors"]],
                             [(e["column"], e["message"]) for e in body["errors"]])
            st, _, body = srv.api("POST", "/api/import", self.lines(self.N, 2))
            self.assertEqual((st, body.get("changed")), (200, 1), body)

    def test_kill_9_right_after_a_bulk_import_loses_nothing(self):
        """An acknowledged bulk import survives SIGKILL before, while or after its rows are
        written (they are written within a second of the answer)."""
        keep = tempfile.TemporaryDirectory()
        db, tf = os.path.join(keep.name, "d.db"), os.path.join(keep.name, "t")
        for gen, delay in enumerate((0, 0.3, 0.9, 1.6), start=1):
            srv = Server("", db=db, token_file=tf)
            srv.start()
            st, _, body = srv.api("POST", "/api/import?mode=replace",
                                  self.lines(self.N, gen, skip=range(gen * 10)))
            self.assertEqual(st, 200, body)
            time.sleep(delay)
            srv.proc.send_signal(signal.SIGKILL)
            srv.proc.wait(10)
            srv.stop()
            with Server("", db=db, token_file=tf) as srv:
                self.assertEqual(srv.api("GET", "/api/rules")[2]["total"], self.N - gen * 10)
                self.assertEqual(get(srv, "/k/%d" % (self.N - 1)),
                                 (308, "/g%d/%d" % (gen, self.N - 1)))
                self.assertEqual(get(srv, "/k/%d" % (gen * 10 - 1))[0], 404)
                v = srv.api("GET", "/api/versions")[2]["versions"][0]
                self.assertEqual(v["version"], body["version"])
                rule = srv.api("GET", "/api/rules?text=/k/%d&limit=1" % (self.N - 1))[2]["rules"]
                self.assertEqual(rule[0]["version"], body["version"])


class Live(unittest.TestCase):
    def test_changes_across_the_recent_table_and_the_overlay(self):
        """S5: the newest changes live in a small recent table over the overlay of older
        changes, folded into it every 64 changes. A rule changed or removed after it was
        folded answers its newest version (or not at all), and hit counts survive folds."""
        with Server("/f2 /file2\n") as srv:
            ids = []
            for i in range(70):  # past 64 recent changes: one fold
                st, _, body = srv.api("POST", "/api/rules",
                                      {"source": "/f%d" % i, "target": "/v0-%d" % i})
                self.assertEqual(st, 201, body)
                ids.append(body["id"])
            for _ in range(3):
                self.assertEqual(get(srv, "/f1"), (307, "/v0-1"))
            # changed and removed after the fold: the overlay's versions are hidden
            self.assertEqual(srv.api("PATCH", "/api/rules/%d" % ids[1], {"target": "/v1-1"})[0],
                             200)
            self.assertEqual(srv.api("DELETE", "/api/rules/%d" % ids[2])[0], 200)
            self.assertEqual(get(srv, "/f1"), (307, "/v1-1"))
            self.assertEqual(get(srv, "/f2"), (307, "/file2"))  # the file rule again
            self.assertEqual(get(srv, "/f69"), (307, "/v0-69"))
            # changed again and again, across another fold
            for k in range(2, 140):
                srv.api("PATCH", "/api/rules/%d" % ids[k % 70 or 3], {"target": "/v%d" % k})
            self.assertEqual(get(srv, "/f1"), (307, "/v71"))
            self.assertEqual(get(srv, "/f1"), (307, "/v71"))
            self.assertEqual(srv.api("GET", "/api/rules/%d" % ids[1])[2]["hits"], 6)
            # one rule per id in each level: at most the 69 rules, and 64 recent ones
            st, _, h = srv.api("GET", "/api/health")
            self.assertLessEqual(h["rules"]["overlay"], 69 + 64)

    def test_background_merge_keeps_every_answer(self):
        """S5: past 1,000 changes the store's table is rebuilt in the background while
        writes go on; before, during and after, every rule answers its newest target."""
        with Server("", workers=2) as srv:
            want = {}
            for batch in range(30):
                lines = []
                for i in range(50):
                    k = (batch * 50 + i) % 1100   # the last batches change earlier rules
                    want["/m/%d" % k] = "/t/%d/%d" % (k, batch)
                    lines.append("/m/%d %s\n" % (k, want["/m/%d" % k]))
                st, _, body = srv.api("POST", "/api/import", "".join(lines))
                self.assertEqual(st, 200, body)
                if batch % 5 == 4:
                    for src in list(want)[::97]:
                        self.assertEqual(get(srv, src), (307, want[src]), src)
            deadline = time.monotonic() + 20
            while True:
                text = srv.api("GET", "/metrics")[2].decode()
                merges = int(re.search(r"^detour_merges_total (\d+)$", text, re.M).group(1))
                if merges >= 1 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            self.assertGreaterEqual(merges, 1)
            for src, tgt in want.items():
                self.assertEqual(get(srv, src), (307, tgt), src)
            self.assertEqual(srv.api("GET", "/api/health")[2]["rules"]["store"], 1100)

    def test_no_request_fails_while_the_api_applies_changes(self):
        """S5: four clients hammer the redirect listener with keep-alive requests while the
        API applies 2,000 changes (single writes and bulk imports): every answer is a
        redirect from a complete rule set, never an error or a half-applied import."""
        base = "".join("/b/%d /base/%d\n" % (i, i) for i in range(200))
        with Server(base, workers=2) as srv:
            srv.api("POST", "/api/import",
                    "".join("/bulk/%d /gen0/%d\n" % (i, i) for i in range(100)))
            stop = threading.Event()
            failures = []
            counts = [0]

            def hammer(k):
                s = srv.connect(timeout=10)
                i = 0
                buf = b""
                while not stop.is_set():
                    i += 1
                    paths = ["/b/%d" % (i % 200), "/bulk/%d" % (i % 100), "/bulk/0"]
                    req = "".join("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % p for p in paths)
                    s.sendall(req.encode())
                    got = []
                    while len(got) < 3:
                        while b"</html>" not in buf:
                            chunk = s.recv(65536)
                            if not chunk:
                                failures.append("connection closed")
                                return
                            buf += chunk
                        end = buf.index(b"</html>") + len(b"</html>\n")
                        got.append(buf[:end])
                        buf = buf[end:]
                    for p, resp in zip(paths, got):
                        line = resp.split(b"\r\n", 1)[0]
                        if not line.startswith(b"HTTP/1.1 307"):
                            failures.append("%s: %r" % (p, line))
                    # the two /bulk answers come from one generation: never half an import
                    g1 = got[1].split(b"Location: /gen", 1)[1].split(b"/", 1)[0]
                    g2 = got[2].split(b"Location: /gen", 1)[1].split(b"/", 1)[0]
                    if abs(int(g1) - int(g2)) > 1:
                        failures.append("generations %s and %s" % (g1, g2))
                    counts[0] += 3
            threads = [threading.Thread(target=hammer, args=(k,)) for k in range(4)]
            for t in threads:
                t.start()
            for gen in range(1, 11):
                # every fifth generation a bulk write (12,000 rules: see class Bulk)
                filler = "".join("/fill/%d /f%d\n" % (i, gen) for i in range(12000)) \
                    if gen % 5 == 0 else ""
                st, _, body = srv.api("POST", "/api/import",
                                      "".join("/bulk/%d /gen%d/%d\n" % (i, gen, i)
                                              for i in range(100)) + filler)
                self.assertEqual(st, 200, body)
                for i in range(100):
                    st, _, _ = srv.api("PATCH", "/api/rules/%d" % (1 + (i % 100)),
                                       {"target": "/gen%d/%d" % (gen, i % 100)})
                    self.assertEqual(st, 200)
            stop.set()
            for t in threads:
                t.join(20)
            self.assertEqual(failures, [])
            self.assertGreater(counts[0], 1000)


if __name__ == "__main__":
    unittest.main(verbosity=2)
