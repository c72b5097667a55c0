"""Integration tests for `detour rules backup FILE` (issue 13, backups of the store): a copy
taken while the admin API writes rules in a loop is a whole database of one version (every
rule acknowledged before the backup started is in it, none after it ended) that a new
`detour serve --db COPY` serves; the writes go on meanwhile; errors (no store, a file that is
not one, a PostgreSQL URL, a destination that cannot be written, the store itself) exit 1
with a message and leave the destination as it was; usage errors exit 2."""
import http.client
import json
import os
import sqlite3
import subprocess
import tempfile
import threading
import unittest

from harness import DETOUR, Server, get


def backup(*args, cwd=None):
    return subprocess.run([DETOUR, "rules", "backup"] + list(args), cwd=cwd,
                          capture_output=True, text=True, timeout=120)


class Writer(threading.Thread):
    """POSTs /w0, /w1, ... to the admin API on one keep-alive connection until stopped;
    acked is how many the API answered 201 (in order: one connection, one at a time)."""

    def __init__(self, srv):
        super().__init__(daemon=True)
        self.srv = srv
        self.acked = 0
        self.error = None
        self.stop_flag = threading.Event()
        self.progress = threading.Condition()

    def run(self):
        host, port = self.srv.admin_addr.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        hdrs = {"Authorization": "Bearer " + self.srv.token,
                "Content-Type": "application/json"}
        try:
            while not self.stop_flag.is_set():
                body = json.dumps({"source": "/w%d" % self.acked,
                                   "target": "/to/%d" % self.acked}).encode()
                conn.request("POST", "/api/rules", body=body, headers=hdrs)
                r = conn.getresponse()
                r.read()
                if r.status != 201:
                    self.error = "POST answered %d" % r.status
                    return
                with self.progress:
                    self.acked += 1
                    self.progress.notify_all()
        except Exception as e:  # reported by the test
            self.error = repr(e)
        finally:
            conn.close()
            with self.progress:
                self.progress.notify_all()

    def wait_for(self, n, timeout=60):
        with self.progress:
            ok = self.progress.wait_for(
                lambda: self.acked >= n or self.error or not self.is_alive(), timeout)
        if not ok or self.error or self.acked < n:
            raise AssertionError("the writer stopped at %d: %s" % (self.acked, self.error))


class UnderWrites(unittest.TestCase):
    def test_a_backup_taken_while_rules_are_written_is_one_whole_version(self):
        with Server("") as srv:
            # Enough rules that the copy takes many steps of the backup (1,024 pages each).
            base = 50000
            text = "".join("/base/%d /target/%d 301\n" % (i, i) for i in range(base))
            st, _, body = srv.api("POST", "/api/import", text)
            self.assertEqual(st, 200, body)
            # (a read waits for the rows of a bulk import: they are all written after it)
            self.assertEqual(srv.api("GET", "/api/rules?limit=1")[2]["total"], base)
            with sqlite3.connect("file:%s?mode=ro" % srv.db, uri=True) as live:
                self.assertGreater(live.execute("PRAGMA page_count").fetchone()[0], 1024)
            v0 = srv.api("GET", "/api/versions?limit=1")[2]["current"]

            writer = Writer(srv)
            writer.start()
            self.addCleanup(writer.stop_flag.set)
            writer.wait_for(20)
            keep = tempfile.TemporaryDirectory()  # the copy outlives the server's files
            self.addCleanup(keep.cleanup)
            copy = os.path.join(keep.name, "copy.db")
            before = writer.acked
            p = backup("--db", srv.db, copy)
            after = writer.acked
            self.assertEqual(p.returncode, 0, p.stderr)
            # nothing of the copy's making is left beside it
            self.assertEqual(os.listdir(keep.name), ["copy.db"])
            # the server's writes went on after the copy
            writer.wait_for(after + 20)
            writer.stop_flag.set()
            writer.join(30)
            self.assertIsNone(writer.error)
            print("# %d POSTs answered before the backup, %d when it ended"
                  % (before, after))

            db = sqlite3.connect("file:%s?mode=ro" % copy, uri=True)
            self.addCleanup(db.close)
            self.assertEqual(db.execute("PRAGMA integrity_check").fetchall(), [("ok",)])
            posted = db.execute("SELECT count(*) FROM rules WHERE v_to IS NULL"
                                " AND source LIKE '/w%'").fetchone()[0]
            # every POST acknowledged before the backup started is in it; none answered
            # after it ended; and they are a prefix of the writer's: one moment's state
            self.assertGreaterEqual(posted, before)
            self.assertLessEqual(posted, after)
            sources = {r[0] for r in db.execute(
                "SELECT source FROM rules WHERE v_to IS NULL AND source LIKE '/w%'")}
            self.assertEqual(sources, {"/w%d" % i for i in range(posted)})
            total = db.execute("SELECT count(*) FROM rules WHERE v_to IS NULL").fetchone()[0]
            self.assertEqual(total, base + posted)
            version = db.execute("SELECT max(version) FROM versions").fetchone()[0]
            self.assertEqual(version, v0 + posted)
            self.assertIn("version %d of %s" % (version, srv.db), p.stdout)
            db.close()

        # the copy is a store a new server serves, with its history
        with Server("", db=copy) as again:
            self.assertEqual(again.api("GET", "/api/rules?limit=1")[2]["total"], base + posted)
            self.assertEqual(get(again, "/base/7"), (301, "/target/7"))
            if posted:
                self.assertEqual(get(again, "/w0"), (307, "/to/0"))
            st, _, body = again.api("GET", "/api/versions?limit=1")
            self.assertEqual(body["current"], version)

    def test_json_says_what_was_written_and_a_second_backup_replaces_the_first(self):
        with Server("") as srv:
            srv.api("POST", "/api/rules", {"source": "/a", "target": "/b"})
            copy = os.path.join(srv.tmp.name, "copy.db")
            p = backup("--db", srv.db, "--json", copy)
            self.assertEqual(p.returncode, 0, p.stderr)
            out = json.loads(p.stdout)
            self.assertEqual(out["file"], copy)
            self.assertEqual(out["version"], 1)
            self.assertEqual(out["bytes"], os.path.getsize(copy))
            srv.api("POST", "/api/rules", {"source": "/c", "target": "/d"})
            p = backup("--db", srv.db, "--json", copy)
            self.assertEqual(json.loads(p.stdout)["version"], 2)
            with sqlite3.connect("file:%s?mode=ro" % copy, uri=True) as db:
                self.assertEqual(db.execute("SELECT count(*) FROM rules").fetchone()[0], 2)

    def test_the_default_store_is_detour_db_in_the_current_directory(self):
        with Server("") as srv:
            srv.api("POST", "/api/rules", {"source": "/a", "target": "/b"})
            cwd = tempfile.TemporaryDirectory()
            self.addCleanup(cwd.cleanup)
            p = backup("copy.db", cwd=cwd.name)
            self.assertEqual(p.returncode, 1)
            self.assertIn("./detour.db: No such file", p.stderr)
            os.symlink(srv.db, os.path.join(cwd.name, "detour.db"))
            p = backup("copy.db", cwd=cwd.name)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertTrue(os.path.exists(os.path.join(cwd.name, "copy.db")))


class Errors(unittest.TestCase):
    def setUp(self):
        self.srv = Server("")
        self.srv.start()
        self.addCleanup(self.srv.close)
        self.srv.api("POST", "/api/rules", {"source": "/a", "target": "/b"})
        self.dir = self.srv.tmp.name

    def refused(self, args, message):
        p = backup(*args)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(message, p.stderr)
        self.assertEqual(p.stdout, "")
        return p

    def test_no_store_a_file_that_is_not_one_memory_and_postgresql(self):
        out = os.path.join(self.dir, "out.db")
        self.refused(["--db", os.path.join(self.dir, "none.db"), out],
                     "none.db: No such file or directory")
        junk = os.path.join(self.dir, "junk")
        with open(junk, "w") as f:
            f.write("not a database\n" * 100)
        self.refused(["--db", junk, out], "not a detour store")
        self.refused(["--db", ":memory:", out], ":memory: keeps nothing")
        p = self.refused(["--db", "postgresql://u:secret@db.example/detour", out], "pg_dump")
        self.assertNotIn("secret", p.stderr)
        self.assertFalse(os.path.exists(out))

    def test_a_destination_that_cannot_be_written_leaves_nothing(self):
        self.refused(["--db", self.srv.db, os.path.join(self.dir, "no", "such", "dir.db")],
                     "cannot create")
        self.refused(["--db", self.srv.db, "/proc/detour-backup.db"], "cannot create")
        self.refused(["--db", self.srv.db, self.dir], "is not a regular file")
        self.refused(["--db", self.srv.db, self.srv.db], "is the store itself")
        # the store is still served, whole
        self.assertEqual(self.srv.api("GET", "/api/rules")[2]["total"], 1)

    def test_a_destination_in_use_as_a_database_is_refused_and_kept(self):
        dest = os.path.join(self.dir, "old.db")
        with open(dest, "wb") as f:
            f.write(b"the old backup")
        with open(dest + "-wal", "wb") as f:
            f.write(b"x")
        self.refused(["--db", self.srv.db, dest], "old.db-wal exists")
        with open(dest, "rb") as f:
            self.assertEqual(f.read(), b"the old backup")
        self.assertEqual(sorted(f for f in os.listdir(self.dir) if f.startswith("old.db")),
                         ["old.db", "old.db-wal"])

    def test_usage_errors_exit_2(self):
        for args, message in (([], "missing arguments"),
                              (["a.db", "b.db"], "unexpected argument 'b.db'"),
                              (["--server", "127.0.0.1:1", "a.db"], "takes no --server"),
                              (["--token-file", "t", "a.db"], "takes no --server or --token-file"),
                              (["--limit", "3", "a.db"], "backup does not take --limit"),
                              (["--db"], "--db needs a value"),
                              ([""], "FILE is empty")):
            p = backup(*args)
            self.assertEqual(p.returncode, 2, (args, p.stderr))
            self.assertIn(message, p.stderr, args)
            self.assertIn("Usage: detour rules backup FILE [--db PATH]", p.stderr)

    def test_help(self):
        p = backup("--help")
        self.assertEqual(p.returncode, 0)
        self.assertIn("Usage: detour rules [--json] backup FILE [--db PATH]", p.stdout)
        self.assertIn("never half written", p.stdout)
        p = subprocess.run([DETOUR, "rules", "--help"], capture_output=True, text=True)
        self.assertIn("backup FILE [--db PATH]", p.stdout)


if __name__ == "__main__":
    unittest.main()
