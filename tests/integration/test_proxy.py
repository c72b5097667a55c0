"""PROXY protocol (issue 13): a listener after --proxy-protocol takes a v1 or v2 header from
its trusted balancers (--trusted-proxy) before each connection's bytes; the access log and
--max-connections-per-ip see the client's address it gives. Without a valid header, or from
an untrusted source, the connection is closed with no answer; the other listeners are not
affected. Against detour's own clients here, and Debian's HAProxy in front when installed."""
import os
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import time
import unittest

from harness import Server, test_pki

GET = b"GET /a HTTP/1.1\r\nHost: example.com\r\n\r\n"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def v2(src, dst, sport, dport, command=1, tlvs=b""):
    """A binary (v2) header for TCP over IPv4 or IPv6 (command 0: LOCAL)."""
    six = ":" in src
    fam = 0x21 if six else 0x11
    pack = socket.inet_pton(socket.AF_INET6 if six else socket.AF_INET, src) + \
        socket.inet_pton(socket.AF_INET6 if six else socket.AF_INET, dst) + \
        struct.pack("!HH", sport, dport)
    body = pack + tlvs
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x20 | command, fam]) + \
        struct.pack("!H", len(body)) + body


def read_all(s, timeout=5):
    s.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data and b"Connection: close" not in data:
                break
    except (ConnectionResetError, socket.timeout):
        pass
    return data


class Proxy(unittest.TestCase):
    def server(self, extra=(), trusted=("127.0.0.1/32",), tls=False, **kw):
        args = ["--listen", "127.0.0.1:0", "--proxy-protocol",
                "--listen-tls" if tls else "--listen", "127.0.0.1:0"]
        if tls:
            args += ["--cert", test_pki().localhost]
        for t in trusted:
            args += ["--trusted-proxy", t]
        return Server("/a /b\n", listen=(), args=args + list(extra), **kw)

    def proxy_port(self, srv, tls=False):
        return (srv.tls_addrs[0] if tls else srv.addrs[1])[1]

    def send(self, port, data, source="127.0.0.1"):
        s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
        s.sendall(data)
        return s

    def log_lines(self, path, n, timeout=5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(path):
                with open(path) as f:
                    lines = f.read().splitlines()
                if len(lines) >= n:
                    return lines
            time.sleep(0.1)
        self.fail("the access log has fewer than %d lines" % n)

    def test_v1_and_v2_give_the_client_address_to_the_access_log(self):
        with tempfile.TemporaryDirectory() as d:
            log = os.path.join(d, "access.log")
            with self.server(extra=["--access-log", log]) as srv:
                port = self.proxy_port(srv)
                inputs = [
                    b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 80\r\n" + GET,
                    b"PROXY TCP6 2001:db8::5 2001:db8::1 4000 80\r\n" + GET,
                    v2("203.0.113.9", "198.51.100.1", 50000, 80) + GET,
                    v2("2001:db8::9", "2001:db8::1", 50000, 80,
                       tlvs=b"\x04\x00\x03abc") + GET,  # a TLV, skipped
                    v2("0.0.0.0", "0.0.0.0", 0, 0, command=0) + GET,  # LOCAL: its own address
                    b"PROXY UNKNOWN\r\n" + GET,
                ]
                for data in inputs:
                    s = self.send(port, data)
                    self.assertTrue(read_all(s).startswith(b"HTTP/1.1 307 "), data)
                    s.close()
                lines = self.log_lines(log, len(inputs))
                clients = [line.split()[0] for line in lines]
                self.assertEqual(clients, ["192.0.2.7", "2001:db8::5", "203.0.113.9",
                                           "2001:db8::9", "127.0.0.1", "127.0.0.1"])

    def test_header_split_across_packets_and_keep_alive(self):
        with self.server() as srv:
            header = v2("192.0.2.1", "192.0.2.2", 1, 2)
            s = self.send(self.proxy_port(srv), header[:5])
            time.sleep(0.2)
            s.sendall(header[5:20])
            time.sleep(0.2)
            s.sendall(header[20:] + GET[:10])
            time.sleep(0.2)
            s.sendall(GET[10:])
            self.assertTrue(read_all(s).startswith(b"HTTP/1.1 307 "))
            s.sendall(GET)  # the next request on the same connection: no header again
            self.assertTrue(read_all(s).startswith(b"HTTP/1.1 307 "))
            s.close()

    def test_without_a_valid_header_the_connection_is_closed(self):
        with self.server() as srv:
            port = self.proxy_port(srv)
            for data in (GET,  # no header
                         b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 80\n" + GET,  # bare LF
                         b"PROXY TCP4 192.0.2.700 198.51.100.1 1 2\r\n" + GET,
                         b"PROXY TCP4 192.0.2.7 198.51.100.1 1 2\r\nPROXY TCP4 "
                         b"192.0.2.7 198.51.100.1 1 2\r\n" + GET,  # twice: the 2nd is HTTP
                         v2("192.0.2.1", "192.0.2.2", 1, 2)[:12] + b"\x31" +
                         v2("192.0.2.1", "192.0.2.2", 1, 2)[13:] + GET):  # version 3
                s = self.send(port, data)
                got = read_all(s)
                if data.count(b"PROXY") == 2:
                    self.assertTrue(got.startswith(b"HTTP/1.1 400 "), got)
                else:
                    self.assertEqual(got, b"", data)
                s.close()
            # the plain listener beside it is not affected
            s = self.send(srv.addrs[0][1], GET)
            self.assertTrue(read_all(s).startswith(b"HTTP/1.1 307 "))
            s.close()
            st, _, body = srv.api("GET", "/metrics", raw=True)
            self.assertIn(b'detour_connections_refused_total{limit="proxy"} 4\n', body)

    def test_an_untrusted_source_cannot_spoof(self):
        with self.server(trusted=("127.0.0.2/32",)) as srv:
            port = self.proxy_port(srv)
            s = self.send(port, b"PROXY TCP4 192.0.2.7 198.51.100.1 1 2\r\n" + GET,
                          source="127.0.0.1")
            self.assertEqual(read_all(s), b"")  # closed: not one of the balancers
            s.close()
            s = self.send(port, b"PROXY TCP4 192.0.2.7 198.51.100.1 1 2\r\n" + GET,
                          source="127.0.0.2")
            self.assertTrue(read_all(s).startswith(b"HTTP/1.1 307 "))
            s.close()

    def test_per_ip_limit_counts_the_client(self):
        with self.server(extra=["--max-connections-per-ip", "1"]) as srv:
            port = self.proxy_port(srv)
            first = self.send(port, b"PROXY TCP4 192.0.2.7 198.51.100.1 1 80\r\n" + GET)
            self.assertTrue(read_all(first).startswith(b"HTTP/1.1 307 "))
            other = self.send(port, b"PROXY TCP4 192.0.2.8 198.51.100.1 1 80\r\n" + GET)
            self.assertTrue(read_all(other).startswith(b"HTTP/1.1 307 "))  # another client
            same = self.send(port, b"PROXY TCP4 192.0.2.7 198.51.100.1 2 80\r\n" + GET)
            self.assertTrue(read_all(same).startswith(b"HTTP/1.1 503 "))  # the same client
            for s in (first, other, same):
                s.close()

    def test_tls_after_the_header(self):
        with self.server(tls=True) as srv:
            port = self.proxy_port(srv, tls=True)
            raw = self.send(port, v2("192.0.2.1", "192.0.2.2", 1, 443))
            s = test_pki().client_context().wrap_socket(raw, server_hostname="localhost")
            s.sendall(GET)
            self.assertTrue(read_all(s).startswith(b"HTTP/1.1 307 "))
            s.close()

    def test_usage(self):
        from harness import DETOUR
        for args, says in (
                (["--proxy-protocol"], "none follows"),
                (["--proxy-protocol", "--listen", "127.0.0.1:0"], "--trusted-proxy"),
                (["--trusted-proxy", "10.0.0.0/8"], "--proxy-protocol"),
                (["--trusted-proxy", "10.0.0.1/8", "--proxy-protocol", "--listen",
                  "127.0.0.1:0"], "beyond the /8"),
                (["--trusted-proxy", "nowhere"], "address block")):
            p = subprocess.run([DETOUR, "serve"] + args, capture_output=True, timeout=10)
            self.assertEqual(p.returncode, 2, args)
            self.assertIn(says, p.stderr.decode(), args)

    @unittest.skipUnless(shutil.which("haproxy") or os.access("/usr/sbin/haproxy", os.X_OK),
                         "haproxy not installed (DETOUR_BOOTSTRAP_BENCH=1 scripts/bootstrap)")
    def test_behind_haproxy(self):
        """Debian's HAProxy in TCP mode in front, sending v1 then v2: the access log has
        the address HAProxy's client connected from (127.0.0.3 here)."""
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        with tempfile.TemporaryDirectory() as d:
            log = os.path.join(d, "access.log")
            with self.server(extra=["--access-log", log]) as srv:
                port = self.proxy_port(srv)
                fronts = [free_port(), free_port()]
                conf = os.path.join(d, "haproxy.cfg")
                with open(conf, "w") as f:
                    f.write("global\n    maxconn 100\ndefaults\n    mode tcp\n"
                            "    timeout connect 5s\n    timeout client 10s\n"
                            "    timeout server 10s\n")
                    for i, (front, send) in enumerate(zip(fronts, ("send-proxy",
                                                                  "send-proxy-v2"))):
                        f.write("listen f%d\n    bind 127.0.0.1:%d\n"
                                "    server d 127.0.0.1:%d %s\n" % (i, front, port, send))
                proc = subprocess.Popen([haproxy, "-db", "-f", conf],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    for front in fronts:
                        deadline = time.monotonic() + 10
                        while True:
                            try:
                                s = self.send(front, GET, source="127.0.0.3")
                                break
                            except OSError:
                                if time.monotonic() > deadline:
                                    raise
                                time.sleep(0.1)
                        self.assertTrue(read_all(s).startswith(b"HTTP/1.1 307 "))
                        s.close()
                    lines = self.log_lines(log, 2)
                    self.assertEqual([line.split()[0] for line in lines],
                                     ["127.0.0.3", "127.0.0.3"])
                finally:
                    proc.terminate()
                    proc.wait(10)


if __name__ == "__main__":
    unittest.main()
