"""A small recording HTTP/1.1 origin server for the `detour get` tests.

    with Fixture({"/a": (307, [("Location", "/b")], b""), "/b": (200, [], b"ok")}) as fx:
        ... run detour get fx.url("/a") ...
        fx.requests          # every request received, in order (Request objects)
        fx.requests_to("/b") # those for one path

Routes map a path to (status, [(name, value)...], body) or to a callable taking the
Request and returning such a tuple. A route key with a query ("/a?x=1") matches only that
request target; a key without one matches the path with any query. Unknown paths get 404.

Plain HTTP, HTTPS (tls=True; the certificate, made with the openssl tool on first use,
is valid for DNS:localhost and IP:127.0.0.1 and signed by a throw-away CA: CA_FILE()), or
both on one port (tls="both": a connection's first byte tells a TLS hello from a request
line). Every instance listens on its own port of 127.0.0.1, so two instances are two
origins. Connections are kept alive; request bodies framed by Content-Length or chunked
are read and decoded.
What is not HTTP (a TLS hello on the plain port, clear text on the TLS port) is not recorded
as a request: it goes to `errors`.
"""
import atexit
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading

REASONS = {
    200: "OK", 201: "Created", 204: "No Content", 300: "Multiple Choices",
    301: "Moved Permanently", 302: "Found", 303: "See Other", 304: "Not Modified",
    307: "Temporary Redirect", 308: "Permanent Redirect", 400: "Bad Request",
    401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
    500: "Internal Server Error",
}

TCHAR = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class Request:
    """One request as received."""

    def __init__(self, method, target, version, headers, body, chunked, tls, conn):
        self.method = method
        self.target = target          # exactly as on the request line (path and query)
        self.version = version        # "HTTP/1.1"
        self.headers = headers        # [(name, value)] in order, names as sent
        self.body = body              # bytes, de-chunked
        self.chunked = chunked
        self.tls = tls
        self.conn = conn              # connection number (same number: connection reused)

    @property
    def path(self):
        return self.target.split("?", 1)[0]

    def all(self, name):
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def header(self, name):
        values = self.all(name)
        if len(values) > 1:
            raise AssertionError("%s sent %d times: %r" % (name, len(values), values))
        return values[0] if values else None

    def names(self):
        return [n.lower() for n, _ in self.headers]

    def __repr__(self):
        return "<Request %s %s %r body=%r>" % (self.method, self.target, self.headers,
                                                self.body[:60])


# ---- certificates ----------------------------------------------------------------------

_certs = None
_certs_lock = threading.Lock()


def _openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def certificates():
    """(ca_file, cert_file, key_file), made once per process in a temporary directory."""
    global _certs
    with _certs_lock:
        if _certs:
            return _certs
        d = tempfile.mkdtemp(prefix="detour-fixture-tls-")
        atexit.register(shutil.rmtree, d, True)
        ext = os.path.join(d, "leaf.ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\n"
                    "keyUsage=digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=serverAuth\n"
                    "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
                 "-subj", "/CN=detour test CA", cwd=d)
        _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=localhost",
                 cwd=d)
        _openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", "leaf.pem", "-days", "2", "-extfile", ext, cwd=d)
        _certs = tuple(os.path.join(d, n) for n in ("ca.pem", "leaf.pem", "leaf.key"))
        return _certs


def CA_FILE():
    return certificates()[0]


# ---- the server -------------------------------------------------------------------------

class _Bad(Exception):
    pass


class _Conn:
    """Buffered reading from one connection."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def until(self, sep, limit=1 << 20):
        while sep not in self.buf:
            if len(self.buf) > limit:
                raise _Bad("line too long")
            self.fill()
        i = self.buf.index(sep)
        out, self.buf = self.buf[:i], self.buf[i + len(sep):]
        return out

    def exactly(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


class Fixture:
    def __init__(self, routes=None, tls=False, default=None):
        self.routes = dict(routes or {})
        self.tls = tls
        self.default = default  # route for unknown paths (else 404)
        self.requests = []
        self.errors = []        # what arrived that was not HTTP (or not TLS on a TLS port)
        self.lock = threading.Lock()
        self.sock = None
        self.threads = []
        self.conns = []
        self.nconn = 0
        self.stopping = False
        self.ctx = None
        if tls:
            _, cert, key = certificates()
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(cert, key)
            self.ctx.set_alpn_protocols(["http/1.1"])

    # -- life cycle

    def start(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self.threads.append(t)
        return self

    def stop(self):
        self.stopping = True
        if self.sock:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        for t in self.threads:
            t.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- addresses

    @property
    def scheme(self):
        return "https" if self.tls is True else "http"

    def url(self, path="/", host="127.0.0.1", scheme=None):
        return "%s://%s:%d%s" % (scheme or self.scheme, host, self.port, path)

    def origin(self, host="127.0.0.1"):
        return self.url("", host)

    # -- records

    def requests_to(self, path):
        """Requests whose path (query ignored) or whole target is path."""
        with self.lock:
            return [r for r in self.requests if r.path == path or r.target == path]

    def targets(self):
        with self.lock:
            return [r.target for r in self.requests]

    def clear(self):
        with self.lock:
            self.requests.clear()
            self.errors.clear()

    # -- serving

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.nconn += 1
                n = self.nconn
                self.conns.append(c)
            t = threading.Thread(target=self._serve, args=(c, n), daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, raw, n):
        sock = raw
        try:
            raw.settimeout(15)
            tls = bool(self.ctx)
            if self.tls == "both":
                # one port for both schemes: a TLS record starts with 0x16 (handshake)
                tls = raw.recv(1, socket.MSG_PEEK) == b"\x16"
            if tls:
                try:
                    sock = self.ctx.wrap_socket(raw, server_side=True)
                except (ssl.SSLError, OSError) as e:
                    with self.lock:
                        self.errors.append("TLS handshake failed: %s" % e)
                    return
            conn = _Conn(sock)
            conn.tls = tls
            while True:
                if not self._one(conn, n):
                    return
        except (EOFError, ConnectionError, socket.timeout, OSError):
            return
        except _Bad as e:
            with self.lock:
                self.errors.append("not HTTP: %s; received %r" % (e, conn.buf[:80]))
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def _one(self, conn, n):
        """Reads one request, records it, answers. False to close the connection."""
        # Garbage (such as a TLS ClientHello) is refused as soon as it shows.
        while not conn.buf:
            conn.fill()
        if not TCHAR.match(conn.buf[:1]):
            raise _Bad("bad first byte")
        head = conn.until(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3 or not TCHAR.match(parts[0]) or not parts[2].startswith(b"HTTP/"):
            raise _Bad("bad request line %r" % lines[0])
        method, target, version = (p.decode("latin-1") for p in parts)
        headers = []
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not TCHAR.match(name):
                raise _Bad("bad header line %r" % line)
            headers.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
        lower = {k.lower(): v for k, v in headers}
        if lower.get("expect", "").lower() == "100-continue":
            conn.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        chunked = "chunked" in lower.get("transfer-encoding", "").lower()
        if chunked:
            body = b""
            while True:
                size = int(conn.until(b"\r\n").split(b";")[0].strip(), 16)
                if size == 0:
                    while conn.until(b"\r\n"):
                        pass  # trailer fields
                    break
                body += conn.exactly(size)
                if conn.exactly(2) != b"\r\n":
                    raise _Bad("bad chunk end")
        elif "content-length" in lower:
            body = conn.exactly(int(lower["content-length"]))
        else:
            body = b""
        req = Request(method, target, version, headers, body, chunked, conn.tls, n)
        with self.lock:
            self.requests.append(req)

        route = self.routes.get(target)
        if route is None:
            route = self.routes.get(req.path)
        if route is None:
            route = self.default
        if route is None:
            route = (404, [("Content-Type", "text/plain")], b"no route for " + target.encode())
        if callable(route):
            route = route(req)
        status, rheaders, rbody = route
        if isinstance(rbody, str):
            rbody = rbody.encode()
        rheaders = list(rheaders)
        names = [h.lower() for h, _ in rheaders]
        no_body = method == "HEAD" or status in (204, 304) or status < 200
        if "content-length" not in names and status not in (204, 304):
            rheaders.append(("Content-Length", str(len(rbody))))
        close = lower.get("connection", "").lower() == "close" or version == "HTTP/1.0"
        if close:
            rheaders.append(("Connection", "close"))
        out = "HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, "Other"))
        out += "".join("%s: %s\r\n" % h for h in rheaders) + "\r\n"
        conn.sock.sendall(out.encode("latin-1") + (b"" if no_body else rbody))
        return not close


def redirect(status, location, body=b"", headers=()):
    """A route answering a redirect."""
    h = [("Location", location)] if location is not None else []
    return (status, h + list(headers), body)


def ok(body=b"ok", headers=(("Content-Type", "text/plain"),)):
    return (200, list(headers), body)
