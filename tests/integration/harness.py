"""Shared helpers for the integration tests: start the real detour binary on a free
loopback port, talk to it over raw sockets, read responses byte-exactly.

The binary is $DETOUR_BIN (CTest sets it), else build/detour from the source tree.
"""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DETOUR = os.environ.get("DETOUR_BIN", os.path.join(ROOT, "build", "detour"))
DATA = os.path.join(ROOT, "tests", "data")


class TestPKI:
    """A test CA and certificates it signs, made with the openssl command in a temporary
    directory. cert(name, names, key) makes NAME.pem (chain and key in one file, or the key
    in NAME.key beside it with key_apart) for the DNS names given."""

    def __init__(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="detour-pki-")
        self.dir = self.tmp.name
        self.ca = os.path.join(self.dir, "ca.pem")
        self.ca_key = os.path.join(self.dir, "ca.key")
        self._openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                      "-nodes", "-keyout", self.ca_key, "-out", self.ca, "-days", "3650",
                      "-subj", "/CN=detour test CA")

    def _openssl(self, *args):
        subprocess.run(["openssl"] + list(args), check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

    def cert(self, name, names, key="ec", key_apart=False, days=365, ips=()):
        base = os.path.join(self.dir, name)
        keyfile = base + ".key"
        newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if key == "ec" \
            else ["-newkey", "rsa:2048"]
        self._openssl("req", *newkey, "-nodes", "-keyout", keyfile, "-out", base + ".csr",
                      "-subj", "/CN=" + names[0])
        ext = base + ".ext"
        with open(ext, "w", encoding="ascii") as f:
            f.write("subjectAltName=" + ",".join(["DNS:" + n for n in names] +
                                                 ["IP:" + i for i in ips]) + "\n")
        self._openssl("x509", "-req", "-in", base + ".csr", "-CA", self.ca, "-CAkey",
                      self.ca_key, "-CAcreateserial", "-out", base + ".crt", "-days", str(days),
                      "-extfile", ext)
        with open(base + ".pem", "w", encoding="ascii") as out:
            with open(base + ".crt", encoding="ascii") as f:
                out.write(f.read())
            if not key_apart:
                with open(keyfile, encoding="ascii") as f:
                    out.write(f.read())
        if not key_apart:
            os.unlink(keyfile)
        return base + ".pem"

    def client_context(self):
        import ssl
        ctx = ssl.create_default_context(cafile=self.ca)
        return ctx


_pki = None


def test_pki():
    """One TestPKI for the process, with a certificate for localhost and 127.0.0.1."""
    global _pki
    if _pki is None:
        _pki = TestPKI()
        _pki.localhost = _pki.cert("localhost", ["localhost"], ips=("127.0.0.1", "::1"))
    return _pki


class Server:
    """A `detour serve` process. Use as a context manager, or call start()/stop().

    With tls=True it also listens with TLS (a certificate for localhost from test_pki()),
    and connect() and url() use that listener."""

    def __init__(self, rules="", args=(), workers=1, listen=("127.0.0.1:0",), rule_files=None,
                 admin="127.0.0.1:0", db=None, token_file=None, env=None, tls=False):
        self.tmp = tempfile.TemporaryDirectory(prefix="detour-test-")
        self.env = env  # variables set (or, with None, removed) over this environment
        # The store and the admin API: a fresh database and token in the test's directory,
        # the admin listener on a free port (None: --admin off).
        self.db = db or os.path.join(self.tmp.name, "detour.db")
        self.token_file = token_file or os.path.join(self.tmp.name, "admin.token")
        self.admin = admin
        self.admin_addr = None
        if rule_files is None:
            path = os.path.join(self.tmp.name, "rules.txt")
            with open(path, "w", encoding="utf-8") as f:
                f.write(rules)
            rule_files = [path]
        self.rule_files = list(rule_files)
        self.args = list(args)
        self.via_tls = tls
        if tls:
            self.args += ["--listen-tls", "127.0.0.1:0", "--cert", test_pki().localhost]
        self.workers = workers
        self.listen = list(listen)
        self.proc = None
        self.sockets = []  # every socket handed out, closed on stop
        self.log = []
        self.log_cond = threading.Condition()
        self.addrs = []
        self.tls_addrs = []  # the --listen-tls listeners, as the log line names them

    @property
    def rules_path(self):
        return self.rule_files[0]

    def command(self):
        cmd = [DETOUR, "serve", "--workers", str(self.workers)]
        for addr in self.listen:
            cmd += ["--listen", addr]
        for path in self.rule_files:
            cmd += ["--rules", path]
        cmd += ["--db", self.db, "--admin", self.admin or "off",
                "--admin-token-file", self.token_file]
        return cmd + self.args

    def start(self, timeout=10):
        env = None
        if self.env:
            env = dict(os.environ)
            for k, v in self.env.items():
                if v is None:
                    env.pop(k, None)
                else:
                    env[k] = v
        self.proc = subprocess.Popen(self.command(), stderr=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, env=env)
        self.reader = threading.Thread(target=self._read_log, daemon=True)
        self.reader.start()
        try:
            line = self.wait_log(r"started: |cannot listen", timeout)
        except AssertionError:
            # never leave a half-started server behind a failed test
            self.proc.kill()
            self.proc.wait()
            raise
        if "started:" not in line:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("detour did not start: " + "\n".join(self.log))
        listening = re.search(r"listening on (.*?);", line).group(1).split()
        for a in listening:
            tls = a.startswith("tls:")
            host, port = a[4 if tls else 0:].rsplit(":", 1)
            (self.tls_addrs if tls else self.addrs).append((host.strip("[]"), int(port)))
        m = re.search(r"admin API on (\S+)", line)
        if m:
            self.admin_addr = m.group(1)
        return self

    @property
    def token(self):
        with open(self.token_file, encoding="ascii") as f:
            return f.read().strip()

    def api(self, method, path, body=None, token=None, headers=None, raw=False):
        """One admin API request on a new connection. body: a dict/list (sent as JSON), str
        or bytes. Returns (status, headers dict lower-cased, parsed JSON or raw bytes)."""
        import http.client
        import json as _json
        if self.admin_addr.startswith("unix:"):
            class UnixConn(http.client.HTTPConnection):
                def __init__(self, path):
                    super().__init__("localhost", timeout=30)
                    self.unix_path = path

                def connect(self):
                    self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    self.sock.settimeout(30)
                    self.sock.connect(self.unix_path)
            conn = UnixConn(self.admin_addr[5:])
        else:
            host, port = self.admin_addr.rsplit(":", 1)
            conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=30)
        hdrs = dict(headers or {})
        if token is None:
            token = self.token
        if token is not False:
            hdrs["Authorization"] = "Bearer " + token
        if isinstance(body, (dict, list)):
            body = _json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        h = {k.lower(): v for k, v in r.getheaders()}
        if raw or not data or not h.get("content-type", "").startswith("application/json"):
            return r.status, h, data
        return r.status, h, _json.loads(data)

    def _read_log(self):
        for raw in self.proc.stderr:
            with self.log_cond:
                self.log.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.log_cond.notify_all()

    def wait_log(self, pattern, timeout=10, start=0):
        """Waits for a log line (from index start on) matching pattern; returns it."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        with self.log_cond:
            while True:
                for line in self.log[start:]:
                    if rx.search(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader_alive()):
                    raise AssertionError("no log line matching %r in:\n%s"
                                         % (pattern, "\n".join(self.log)))
                self.log_cond.wait(min(left, 0.1))

    def _reader_alive(self):
        return self.proc.stderr and not self.proc.stderr.closed

    @property
    def port(self):
        return (self.tls_addrs if self.via_tls else self.addrs)[0][1]

    @property
    def host(self):
        return (self.tls_addrs if self.via_tls else self.addrs)[0][0]

    def url(self, path="/"):
        if self.via_tls:
            return "https://localhost:%d%s" % (self.port, path)
        return "http://%s:%d%s" % (self.host, self.port, path)

    def curl_args(self):
        """What curl needs to reach url(): the test CA, and localhost on loopback."""
        if not self.via_tls:
            return []
        return ["--http1.1", "--cacert", test_pki().ca, "--resolve",
                "localhost:%d:127.0.0.1" % self.port]

    def http_connection(self, timeout=5):
        import http.client
        if self.via_tls:
            c = http.client.HTTPSConnection("localhost", self.port, timeout=timeout,
                                            context=test_pki().client_context())
            # the name the certificate has; the address the server listens on
            c._create_connection = lambda addr, *a, **k: socket.create_connection(
                (self.host, addr[1]), *a, **k)
            return c
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def connect(self, timeout=5, index=0):
        host, port = (self.tls_addrs if self.via_tls else self.addrs)[index]
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(timeout)
        self.sockets.append(s)
        s.connect((host, port))
        if self.via_tls:
            s = test_pki().client_context().wrap_socket(s, server_hostname="localhost")
            self.sockets.append(s)
        return s

    def reload(self, timeout=10):
        """Sends SIGHUP and waits for the reload's log line; returns it."""
        mark = len(self.log)
        self.proc.send_signal(signal.SIGHUP)
        return self.wait_log(r"reloaded |reload failed", timeout, start=mark)

    def write_rules(self, text, index=0):
        tmp = self.rule_files[index] + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, self.rule_files[index])

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("detour did not stop within %ss" % timeout)
        if self.proc and self.proc.stderr and not self.proc.stderr.closed:
            self.reader.join(5)
            self.proc.stderr.close()
        for s in self.sockets:
            s.close()
        self.sockets = []
        return self.proc.returncode if self.proc else None

    def close(self):
        """Stops the server (if running) and removes its files."""
        try:
            self.stop()
        finally:
            self.tmp.cleanup()

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and self.proc:
            # a failing test shows whether the server still ran, and all it said (read
            # to the end once it has stopped)
            state = self.proc.poll()
            try:
                self.stop()
            finally:
                # a negative exit status is the signal that ended it (-11: a crash)
                sys.stderr.write("\n--- detour's log (%s at the failure; exit status %s) ---"
                                 "\n%s\n--- end of log ---\n"
                                 % ("running" if state is None else "exited",
                                    self.proc.returncode, "\n".join(self.log[-60:])))
        self.close()


class Response:
    def __init__(self, status, reason, headers, body, raw):
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value) as sent
        self.body = body
        self.raw = raw

    def header(self, name):
        """The value of the only field with this name (None if absent)."""
        values = self.all(name)
        if len(values) > 1:
            raise AssertionError("field %s sent %d times" % (name, len(values)))
        return values[0] if values else None

    def all(self, name):
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def __repr__(self):
        return "<Response %d %s %r>" % (self.status, self.reason, self.headers)


class Reader:
    """Reads HTTP/1.1 responses from a socket, one at a time, byte-exactly."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed; unread: %r" % self.buf)
        self.buf += chunk

    def response(self, head=False):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        end = self.buf.index(b"\r\n\r\n")
        head_bytes, self.buf = self.buf[:end], self.buf[end + 4:]
        lines = head_bytes.decode("latin-1").split("\r\n")
        m = re.match(r"HTTP/1\.1 (\d{3}) (.*)$", lines[0])
        if not m:
            raise AssertionError("bad status line %r" % lines[0])
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if not name or name != name.strip() or not _:
                raise AssertionError("bad header line %r" % line)
            headers.append((name, value.strip()))
        status = int(m.group(1))
        length = [v for n, v in headers if n.lower() == "content-length"]
        n = int(length[0]) if length and not head else 0
        while len(self.buf) < n:
            self._fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        return Response(status, m.group(2), headers, body, head_bytes + b"\r\n\r\n" + body)

    def closed(self, timeout=3):
        """True if the peer closes (EOF or reset) within timeout with nothing more sent."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return not self.buf
                self.buf += chunk
        except ConnectionResetError:
            return not self.buf
        except socket.timeout:
            return False


def exchange(server, raw, head=False, count=1):
    """Sends raw bytes on a new connection and reads count responses.
    Returns (responses, reader)."""
    s = server.connect()
    s.sendall(raw)
    r = Reader(s)
    return [r.response(head) for _ in range(count)], r


def get(server, path, method="GET", host="example.com"):
    """Status and Location of one request on a new connection, closed after it."""
    (res,), _ = exchange(server, request(method, path, host, headers=("Connection: close",)),
                         head=method == "HEAD")
    return res.status, res.header("Location")


def without_date(response):
    """A response's lines (bytes or text) but its Date field, which changes every second."""
    text = response.decode("latin-1") if isinstance(response, bytes) else response
    return [line for line in text.split("\r\n") if not line.startswith("Date:")]


def request(method="GET", path="/", host="example.com", headers=(), body=b"", version="1.1"):
    """Builds a request's bytes."""
    lines = ["%s %s HTTP/%s" % (method, path, version)]
    if host is not None:
        lines.append("Host: " + host)
    for h in headers:
        lines.append(h)
    if body and not any(h.lower().startswith(("content-length", "transfer-encoding"))
                        for h in headers):
        lines.append("Content-Length: %d" % len(body))
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return data + (body if isinstance(body, bytes) else body.encode())
