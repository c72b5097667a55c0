"""Resource limits (issue 13): --max-connections and --max-connections-per-ip. Beyond a
limit, a new redirect connection gets 503 on plain HTTP (closed at once over TLS), the
others are served, a place freed is taken again, and /metrics counts the refusals."""
import os
import resource
import socket
import ssl
import time
import unittest

from harness import Server, test_pki

GET = b"Host: example.com\r\n\r\n"  # the rest of what connect() began


def connect(port, source="127.0.0.1", start=b"GET /a HTTP/1.1\r\n"):
    """A connection that has begun a request: accepted at once (the listeners defer the
    accept until the first bytes: TCP_DEFER_ACCEPT)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    if start:
        s.sendall(start)
    return s


def answer(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


class Limits(unittest.TestCase):
    def metric(self, srv, name):
        st, _, body = srv.api("GET", "/metrics", raw=True)
        for line in body.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        self.fail("no metric " + name)

    def test_max_connections(self):
        with Server("/a /b\n", workers=2, args=["--max-connections", "3"]) as srv:
            held = [connect(srv.port) for _ in range(3)]
            for s in held:  # each served
                s.sendall(GET)
                self.assertTrue(answer(s).startswith(b"HTTP/1.1 307"))
            time.sleep(0.3)
            extra = connect(srv.port)
            data = extra.recv(4096)
            self.assertTrue(data.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), data)
            self.assertIn(b"Connection: close\r\n", data)
            self.assertEqual(extra.recv(100), b"")  # and closed
            extra.close()
            held.pop().close()
            time.sleep(0.3)
            again = connect(srv.port)
            again.sendall(GET)
            self.assertTrue(answer(again).startswith(b"HTTP/1.1 307"))  # the place is free
            self.assertEqual(self.metric(srv, 'detour_connections_refused_total{limit="total"}'),
                             1)
            for s in held + [again]:
                s.close()

    def test_max_connections_per_ip(self):
        with Server("/a /b\n", workers=2, args=["--max-connections-per-ip", "2"]) as srv:
            mine = [connect(srv.port) for _ in range(2)]
            time.sleep(0.5)  # accepted (by either worker) before the third comes
            third = connect(srv.port)
            self.assertTrue(third.recv(4096).startswith(b"HTTP/1.1 503 "))
            other = connect(srv.port, source="127.0.0.2")  # another address is served
            other.sendall(GET)
            self.assertTrue(answer(other).startswith(b"HTTP/1.1 307"))
            for s in mine:
                s.sendall(GET)
                self.assertTrue(answer(s).startswith(b"HTTP/1.1 307"))
            self.assertEqual(
                self.metric(srv, 'detour_connections_refused_total{limit="per_ip"}'), 1)
            for s in mine + [third, other]:
                s.close()

    def test_tls_beyond_the_limit_is_closed(self):
        with Server("/a /b\n", workers=1, tls=True, listen=(),
                    args=["--max-connections", "1"]) as srv:
            ctx = test_pki().client_context()
            first = ctx.wrap_socket(connect(srv.port, start=b""), server_hostname="localhost")
            with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
                ctx.wrap_socket(connect(srv.port, start=b""), server_hostname="localhost")
            first.sendall(b"GET /a HTTP/1.1\r\n" + GET)
            self.assertTrue(answer(first).startswith(b"HTTP/1.1 307"))
            first.close()

    def cpu_seconds(self, pid):
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def test_out_of_file_descriptors_sheds_the_excess(self):
        """Out of descriptors (its limit lowered while it runs), the server keeps serving
        the connections it holds, tells new ones 503 at once by way of its spare
        descriptor, does not spin, and serves again once descriptors are free."""
        with Server("/a /b\n", workers=1) as srv:
            pid = srv.proc.pid
            in_use = len(os.listdir("/proc/%d/fd" % pid))
            room = 8
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (in_use + room, in_use + room))
            held = []
            for _ in range(room):  # every descriptor left, each served and kept
                s = connect(srv.port)
                s.sendall(GET)
                self.assertTrue(answer(s).startswith(b"HTTP/1.1 307"))
                held.append(s)
            self.assertEqual(len(os.listdir("/proc/%d/fd" % pid)), in_use + room)
            cpu0 = self.cpu_seconds(pid)
            for _ in range(5):  # beyond: 503 and closed, not left waiting
                extra = connect(srv.port)
                extra.settimeout(5)
                data = extra.recv(4096)
                self.assertTrue(data.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), data)
                self.assertEqual(extra.recv(100), b"")
                extra.close()
            time.sleep(1)
            self.assertLess(self.cpu_seconds(pid) - cpu0, 0.5, "the event loop spins")
            for s in held:  # the held ones are still served
                s.sendall(b"GET /a HTTP/1.1\r\n" + GET)
                self.assertTrue(answer(s).startswith(b"HTTP/1.1 307"))
            for s in held:
                s.close()
            time.sleep(0.3)
            again = connect(srv.port)  # descriptors free: served again
            again.sendall(GET)
            self.assertTrue(answer(again).startswith(b"HTTP/1.1 307"))
            again.close()
            time.sleep(0.3)
            self.assertEqual(self.metric(srv, 'detour_connections_refused_total{limit="fds"}'),
                             5)

    def test_usage(self):
        import subprocess
        from harness import DETOUR
        for args in (["--max-connections", "0"], ["--max-connections-per-ip", "x"]):
            p = subprocess.run([DETOUR, "serve"] + args, capture_output=True, timeout=10)
            self.assertEqual(p.returncode, 2, args)
            self.assertIn(args[0], p.stderr.decode())


if __name__ == "__main__":
    unittest.main()
