"""Integration tests for failed admin tokens slowed down per address (issue 13; docs/admin.md,
Authentication): one address sending bad tokens as fast as it can is answered 429 with
Retry-After after five failures in a row, its holds doubling, while a good token from another
address is answered at once and a bad one there is a plain 401; the counts are in /metrics;
the hold ends, and a good token forgets the failures; --admin-auth-failures 0 turns it off;
a Unix socket's clients are not throttled."""
import http.client
import os
import re
import subprocess
import threading
import time
import unittest

from harness import DETOUR, Server


def ask(srv, token, source="127.0.0.1", path="/api/health"):
    """One request from source on a new connection: (status, headers dict lower-cased)."""
    host, port = srv.admin_addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30, source_address=(source, 0))
    try:
        conn.request("GET", path, headers={"Authorization": "Bearer " + token})
        r = conn.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        conn.close()


def metric(text, name):
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    return int(m.group(1)) if m else None


class Hammer(threading.Thread):
    """Bad tokens from 127.0.0.1 on one keep-alive connection, as fast as answered, until
    stopped; counts the answers by status and keeps the last Retry-After."""

    def __init__(self, srv):
        super().__init__(daemon=True)
        self.srv = srv
        self.counts = {}
        self.retry_after = []
        self.error = None
        self.stop_flag = threading.Event()
        self.cond = threading.Condition()

    def run(self):
        host, port = self.srv.admin_addr.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=30,
                                          source_address=("127.0.0.1", 0))
        try:
            while not self.stop_flag.is_set():
                conn.request("GET", "/api/rules",
                             headers={"Authorization": "Bearer not-the-token-at-all"})
                r = conn.getresponse()
                r.read()
                with self.cond:
                    self.counts[r.status] = self.counts.get(r.status, 0) + 1
                    if r.status == 429:
                        self.retry_after.append(int(r.getheader("Retry-After")))
                    self.cond.notify_all()
        except Exception as e:
            self.error = repr(e)
        finally:
            conn.close()
            with self.cond:
                self.cond.notify_all()

    def wait_until(self, pred, timeout=60):
        with self.cond:
            if not self.cond.wait_for(lambda: pred(self) or self.error or not self.is_alive(),
                                      timeout) or self.error or not pred(self):
                raise AssertionError("the hammer: %s, %s" % (self.counts, self.error))


class Throttle(unittest.TestCase):
    def test_one_address_hammering_is_held_back_and_nobody_else_is(self):
        with Server("") as srv:
            hammer = Hammer(srv)
            hammer.start()
            self.addCleanup(hammer.stop_flag.set)
            # five 401s, a first hold of 1 s, a sixth 401 then a hold of 2 s, a seventh
            # then one of 4 s: the hammer is in that hold now
            hammer.wait_until(lambda h: h.counts.get(401, 0) >= 7 and h.retry_after
                              and h.retry_after[-1] >= 3)
            self.assertEqual(hammer.counts[401], 7)
            self.assertTrue(all(1 <= s <= 4 for s in hammer.retry_after), hammer.retry_after)
            # meanwhile another address is answered at once: a good token is, and a bad
            # one is a plain 401 (its own count); a loop that slept through the hammer's
            # hold (4 s) would answer after it
            t0 = time.monotonic()
            st, _, _ = ask(srv, srv.token, source="127.0.0.2")
            waited = time.monotonic() - t0
            self.assertEqual(st, 200)
            self.assertLess(waited, 3.0)
            st, h, _ = ask(srv, "another-wrong-token", source="127.0.0.2")
            self.assertEqual(st, 401)
            self.assertEqual(h.get("www-authenticate"), 'Bearer realm="detour"')
            # the held address gets 429 even with the good token: it is not read
            st, h, body = ask(srv, srv.token, source="127.0.0.1")
            self.assertEqual(st, 429)
            self.assertIn(int(h["retry-after"]), range(1, 5))
            self.assertIn(b"too many failed tokens from this address", body)

            hammer.stop_flag.set()
            hammer.join(30)
            self.assertIsNone(hammer.error)
            throttled = hammer.counts[429] + 1
            print("# the hammer: %d answers 401, %d answers 429; a good token from 127.0.0.2 "
                  "answered in %.1f ms meanwhile" % (hammer.counts[401], hammer.counts[429],
                                                    waited * 1000))
            st, _, text = ask(srv, srv.token, source="127.0.0.2", path="/metrics")
            probe, _, _ = ask(srv, srv.token, source="127.0.0.1")
            text = text.decode()
            self.assertEqual(metric(text, "detour_admin_unauthorized_total"),
                             hammer.counts[401] + 1)
            self.assertEqual(metric(text, "detour_admin_throttled_total"), throttled)
            if probe == 429:  # still held after the metrics were read: counted as held
                self.assertEqual(metric(text, "detour_admin_throttled_addresses"), 1)
            self.assertIn("# TYPE detour_admin_throttled_addresses gauge", text)
            srv.wait_log(r"admin API: 5 failed tokens in a row from 127\.0\.0\.1: its "
                         r"requests are refused \(429\)")
            self.assertEqual(sum("failed tokens in a row" in l for l in srv.log), 1,
                             "said once, at the first hold")

    def test_the_hold_ends_and_a_good_token_forgets_the_failures(self):
        with Server("", args=["--admin-auth-failures", "2"]) as srv:
            self.assertEqual(ask(srv, "bad-token-1")[0], 401)
            self.assertEqual(ask(srv, "bad-token-2")[0], 401)
            st, h, _ = ask(srv, srv.token)
            self.assertEqual((st, h.get("retry-after")), (429, "1"))
            time.sleep(1.1)
            self.assertEqual(ask(srv, srv.token)[0], 200, "the hold has ended")
            # counted from zero again: one failure is not enough for a hold
            self.assertEqual(ask(srv, "bad-token-3")[0], 401)
            self.assertEqual(ask(srv, srv.token)[0], 200)

    def test_off_with_zero(self):
        with Server("", args=["--admin-auth-failures", "0"]) as srv:
            for i in range(30):
                self.assertEqual(ask(srv, "bad-token-%d" % i)[0], 401)
            self.assertEqual(ask(srv, srv.token)[0], 200)
            st, _, text = ask(srv, srv.token, path="/metrics")
            self.assertEqual(metric(text.decode(), "detour_admin_throttled_total"), 0)

    def test_a_unix_sockets_clients_are_not_throttled(self):
        srv = Server("", admin=None)
        srv.admin = os.path.join(srv.tmp.name, "admin.sock")
        with srv:
            for i in range(20):
                self.assertEqual(srv.api("GET", "/api/health", token="bad-%d" % i)[0], 401)
            self.assertEqual(srv.api("GET", "/api/health")[0], 200)

    def test_usage(self):
        for value in ("x", "-1", "1000001"):
            p = subprocess.run([DETOUR, "serve", "--admin-auth-failures", value],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 2, value)
            self.assertIn("--admin-auth-failures", p.stderr)
        p = subprocess.run([DETOUR, "serve", "--help"], capture_output=True, text=True)
        self.assertIn("--admin-auth-failures N", p.stdout)


if __name__ == "__main__":
    unittest.main()
