"""Data-driven HTTP cases: every tests/data/http/*.case file is one test (format:
tests/data/http/README.md). Adding a case file adds a test; no code changes.

Cases that share the same rules and args share one `detour serve`, started on first use
and stopped when the module ends.

Run: DETOUR_BIN=build/detour python3 -m unittest -v test_cases
"""
import glob
import os
import re
import socket
import time
import unittest

from harness import DATA, Reader, Server

CASES_DIR = os.path.join(DATA, "http")
SECTIONS = ("rules", "args", "request", "request-raw", "expect")
RESPONSE_KEYS = ("status", "reason", "header", "has-header", "no-header", "body-contains",
                 "body-lacks", "head")
CASE_KEYS = ("responses", "connection", "within-seconds")
PROBE = b"GET /__probe__ HTTP/1.1\r\nHost: probe.invalid\r\n\r\n"
ESCAPE = re.compile(rb"\\(x[0-9A-Fa-f]{2}|[rnt\\]|.|$)")


class CaseError(Exception):
    """The case file itself is malformed."""


def unescape(text):
    """Turns \\xNN, \\r, \\n, \\t and \\\\ into bytes; any other backslash is an error."""
    def one(m):
        e = m.group(1)
        if e.startswith(b"x") and len(e) == 3:
            return bytes([int(e[1:], 16)])
        simple = {b"r": b"\r", b"n": b"\n", b"t": b"\t", b"\\": b"\\"}
        if e in simple:
            return simple[e]
        raise CaseError("unknown escape \\%s" % e.decode("latin-1"))
    return ESCAPE.sub(one, text.encode("utf-8"))


def parse_rfc(text):
    """Reads a '# rfc:' line's value ("400/501 closed or 307 307 closed"): a list of
    alternatives, each (a list with the set of statuses allowed for each response, the
    connection: "open", "closed" or "any")."""
    alternatives = []
    for alt in text.split(" or "):
        words = alt.split()
        if len(words) < 2 or words[-1] not in ("open", "closed", "any"):
            raise CaseError("rfc: %r needs statuses then open, closed or any" % alt)
        try:
            statuses = [{int(s) if s != "4xx" else s for s in w.split("/")} for w in words[:-1]]
        except ValueError:
            raise CaseError("rfc: %r: a status is three digits or 4xx" % alt) from None
        alternatives.append((statuses, words[-1]))
    return alternatives


def rfc_allows(alternatives, statuses, connection):
    """True when the statuses received in order and the connection's state ("open" or
    "closed") are one of the alternatives parse_rfc read."""
    for allowed, conn in alternatives:
        if conn != "any" and conn != connection:
            continue
        if len(allowed) == len(statuses) and all(
                s in a or ("4xx" in a and 400 <= s < 500) for s, a in zip(statuses, allowed)):
            return True
    return False


class Case:
    def __init__(self, path):
        self.path = path
        self.name = os.path.splitext(os.path.basename(path))[0]
        with open(path, encoding="utf-8") as f:
            self.text = f.read()
        self.title = self.text.split("\n", 1)[0].lstrip("#").strip()

    def parse(self):
        lines = self.text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # the file's final newline ends the last line
        if not lines or not lines[0].startswith("#"):
            raise CaseError("the first line must be a '#' comment naming what the case pins")
        sections = {}
        current = None
        self.rfc = None
        for number, line in enumerate(lines, 1):
            if current is None and line.startswith("# rfc:"):
                self.rfc = parse_rfc(line[len("# rfc:"):].strip())
            if line.startswith("--- "):
                current = line[4:].strip()
                if current not in SECTIONS:
                    raise CaseError("line %d: unknown section %r" % (number, current))
                if current in sections:
                    raise CaseError("line %d: section %r given twice" % (number, current))
                sections[current] = []
            elif current is None:
                if line.strip() and not line.startswith("#"):
                    raise CaseError("line %d: text before the first section" % number)
            else:
                sections[current].append(line)
        if "rules" not in sections or "expect" not in sections:
            raise CaseError("needs '--- rules' and '--- expect' sections")
        if ("request" in sections) == ("request-raw" in sections):
            raise CaseError("needs exactly one of '--- request' and '--- request-raw'")

        self.rules = "".join(line + "\n" for line in sections["rules"])
        self.args = tuple(word for line in sections.get("args", []) for word in line.split())
        if "request" in sections:
            self.raw = b"".join(unescape(line) + b"\r\n" for line in sections["request"])
        else:
            self.raw = b"".join(unescape(line) for line in sections["request-raw"])
        if not self.raw:
            raise CaseError("the request is empty")
        self._parse_expect(sections["expect"])
        return self

    def _parse_expect(self, lines):
        self.per = {}  # response number -> list of (key, value)
        self.connection = None
        self.within = None
        count = None
        for line in lines:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            m = re.match(r"^([a-z-]+)(?:\[(\d+)\])?:\s?(.*)$", line)
            if not m:
                raise CaseError("bad expect line %r" % line)
            key, index, value = m.group(1), m.group(2), m.group(3).rstrip()
            if key in CASE_KEYS:
                if index:
                    raise CaseError("%s takes no [N]" % key)
                if key == "responses":
                    count = int(value)
                elif key == "connection":
                    if value not in ("open", "closed"):
                        raise CaseError("connection: open or closed, not %r" % value)
                    self.connection = value
                else:
                    self.within = float(value)
            elif key in RESPONSE_KEYS:
                n = int(index or 1)
                if n < 1:
                    raise CaseError("responses are numbered from 1")
                self.per.setdefault(n, []).append((key, value))
            else:
                raise CaseError("unknown expect key %r" % key)
        if self.connection is None:
            raise CaseError("expect needs 'connection: open' or 'connection: closed'")
        if not any(k == "status" for items in self.per.values() for k, _ in items):
            raise CaseError("expect needs at least one status")
        highest = max(self.per) if self.per else 1
        self.count = count if count is not None else highest
        if self.count < highest:
            raise CaseError("responses: %d but checks for response %d" % (self.count, highest))


_servers = {}


def server_for(rules, args, tls=False):
    key = (rules, args, tls)
    srv = _servers.get(key)
    if srv is None or srv.proc.poll() is not None:
        srv = Server(rules=rules, args=list(args), tls=tls)
        srv.start()
        _servers[key] = srv
    return srv


def tearDownModule():
    for srv in _servers.values():
        srv.__exit__(None, None, None)
    _servers.clear()


def wait_end(sock, timeout):
    """Returns ("eof"|"reset"|"timeout", bytes received meanwhile)."""
    deadline = time.monotonic() + timeout
    extra = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return "timeout", extra
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return "timeout", extra
        except ConnectionResetError:
            return "reset", extra
        if not chunk:
            return "eof", extra
        extra += chunk


class HttpCases(unittest.TestCase):
    """One test per case file; methods are added below from the files found."""

    maxDiff = None
    tls = False

    def run_case(self, path):
        case = Case(path).parse()
        srv = server_for(case.rules, case.args, self.tls)
        sock = srv.connect()
        try:
            self._exchange(case, sock)
        finally:
            sock.close()
        # Whatever the case did, the server keeps serving new connections.
        self.assertIsNone(srv.proc.poll(), "detour exited:\n" + "\n".join(srv.log))
        probe = srv.connect()
        try:
            probe.sendall(PROBE)
            Reader(probe).response()
        finally:
            probe.close()

    def _exchange(self, case, sock):
        start = time.monotonic()
        sock.sendall(case.raw)
        if case.within is not None:
            sock.settimeout(case.within)
        reader = Reader(sock)
        for n in range(1, case.count + 1):
            checks = case.per.get(n, [])
            head = any(k == "head" and v == "yes" for k, v in checks)
            try:
                resp = reader.response(head=head)
            except EOFError as e:
                self.fail("response %d: %s" % (n, e))
            except socket.timeout:
                self.fail("response %d: none within %ss" % (n, sock.gettimeout()))
            for key, value in checks:
                self._check(n, resp, key, value)
        if case.within is not None:
            self.assertLess(time.monotonic() - start, case.within,
                            "responses took longer than %ss" % case.within)
        if case.connection == "closed":
            how, extra = wait_end(sock, 3)
            self.assertEqual(reader.buf + extra, b"", "bytes after the last expected response")
            self.assertIn(how, ("eof", "reset"), "connection still open after 3 s")
        else:
            how, extra = wait_end(sock, 0.3)
            self.assertEqual(reader.buf + extra, b"", "bytes after the last expected response")
            self.assertEqual(how, "timeout", "connection closed, expected open")
            sock.sendall(PROBE)
            sock.settimeout(5)
            try:
                reader.response()
            except EOFError as e:
                self.fail("connection did not answer a further request: %s" % e)

    def _check(self, n, resp, key, value):
        where = "response %d (%r)" % (n, resp)
        if key == "status":
            self.assertEqual(resp.status, int(value), where)
        elif key == "reason":
            self.assertEqual(resp.reason, value, where)
        elif key == "header":
            name, sep, want = value.partition(":")
            if not sep:
                raise CaseError("header: needs 'Name: value', got %r" % value)
            self.assertEqual(resp.all(name.strip()), [want.strip()], "%s: %s" % (where, name))
        elif key == "has-header":
            self.assertEqual(len(resp.all(value)), 1, "%s: %s once" % (where, value))
        elif key == "no-header":
            self.assertEqual(resp.all(value), [], "%s: %s" % (where, value))
        elif key == "body-contains":
            self.assertIn(unescape(value), resp.body, where)
        elif key == "body-lacks":
            self.assertNotIn(unescape(value), resp.body, where)
        elif key == "head":
            if value not in ("yes", "no"):
                raise CaseError("head: yes or no, not %r" % value)


def _method_name(stem):
    return "test_" + re.sub(r"\W", "_", stem)


def _add_tests():
    for path in sorted(glob.glob(os.path.join(CASES_DIR, "*.case"))):
        case = Case(path)

        def test(self, path=path):
            self.run_case(path)

        test.__doc__ = "%s (%s)" % (case.title, os.path.basename(path))
        setattr(HttpCases, _method_name(case.name), test)


_add_tests()


class HttpCasesOverTLS(HttpCases):
    """Every case again, over TLS (issue 11): the same bytes, the same answers."""

    tls = True


class CaseFiles(unittest.TestCase):
    def test_case_files_present(self):
        """The data directory holds the case files (at least 25)."""
        self.assertGreaterEqual(len(glob.glob(os.path.join(CASES_DIR, "*.case"))), 25)

    def test_hostile_cases_pin_an_answer_the_rfc_allows(self):
        """Every hostile_*.case says which answers RFC 9110/9112 allow ('# rfc:'), and the
        answer it pins (statuses, connection) is one of them."""
        paths = sorted(glob.glob(os.path.join(CASES_DIR, "hostile_*.case")))
        self.assertGreaterEqual(len(paths), 100)
        for path in paths:
            case = Case(path).parse()
            self.assertIsNotNone(case.rfc, "%s: no '# rfc:' line" % path)
            statuses = []
            for n in range(1, case.count + 1):
                found = [int(v) for k, v in case.per.get(n, []) if k == "status"]
                self.assertEqual(len(found), 1, "%s: response %d needs one status" % (path, n))
                statuses += found
            self.assertTrue(rfc_allows(case.rfc, statuses, case.connection),
                            "%s pins %s %s, which its rfc line does not allow"
                            % (path, statuses, case.connection))

    def test_rfc_lines(self):
        """The '# rfc:' grammar: alternatives, statuses with '/', 4xx, the connection."""
        alts = parse_rfc("400/501 closed or 307 307 any")
        self.assertTrue(rfc_allows(alts, [501], "closed"))
        self.assertFalse(rfc_allows(alts, [501], "open"))
        self.assertTrue(rfc_allows(alts, [307, 307], "open"))
        self.assertFalse(rfc_allows(alts, [307], "open"))
        self.assertTrue(rfc_allows(parse_rfc("307/4xx closed"), [431], "closed"))
        self.assertFalse(rfc_allows(parse_rfc("307/4xx closed"), [501], "closed"))
        for bad in ("400", "400 shut", "4x0 closed"):
            with self.assertRaises(CaseError):
                parse_rfc(bad)

    def test_escapes(self):
        """The runner's escapes: \\xNN, \\r, \\n, \\t, \\\\; anything else is an error."""
        self.assertEqual(unescape(r"a\x00\r\n\t\\b\xff"), b"a\x00\r\n\t\\b\xff")
        with self.assertRaises(CaseError):
            unescape(r"\q")
        with self.assertRaises(CaseError):
            unescape("trailing\\")


if __name__ == "__main__":
    unittest.main()
