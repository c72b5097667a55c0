"""Operations: SIGHUP reload (S5: no request fails because a rule changed), SIGTERM and
SIGINT stop cleanly, and what the server logs."""
import signal
import threading
import time
import re
import os
import subprocess
import tempfile
import unittest

from harness import Reader, Server, exchange, request


def location(server, path, host="example.com"):
    (resp,), _ = exchange(server, request("GET", path, host=host))
    return resp.status, resp.header("Location")


class Reload(unittest.TestCase):
    def test_s5_sighup_swaps_rules(self):
        """S5: a rule's target is changed, one added, one removed, without a restart."""
        with Server("/a /one\n/gone /x\n") as srv:
            self.assertEqual(location(srv, "/a"), (307, "/one"))
            srv.write_rules("/a /two\n/new /added 308\n")
            line = srv.reload()
            self.assertIn("reloaded 2 rules (was 2)", line)
            self.assertEqual(location(srv, "/a"), (307, "/two"))
            self.assertEqual(location(srv, "/new"), (308, "/added"))
            self.assertEqual(location(srv, "/gone")[0], 404)

    def test_s5_keepalive_connection_sees_new_rules(self):
        """S5: a connection opened before the reload gets the new rules on its next request."""
        with Server("/a /one\n") as srv:
            s = srv.connect()
            rd = Reader(s)
            s.sendall(request("GET", "/a"))
            self.assertEqual(rd.response().header("Location"), "/one")
            srv.write_rules("/a /two\n")
            srv.reload()
            s.sendall(request("GET", "/a"))
            self.assertEqual(rd.response().header("Location"), "/two")
            s.close()

    def test_bad_reload_keeps_table(self):
        """On reload a bad line is reported with file:line:column and the old table stays."""
        with Server("/a /one\n") as srv:
            srv.write_rules("/a /two\n/b /c 999\n")
            mark = len(srv.log)
            line = srv.reload()
            self.assertIn("reload failed: keeping the 1 rules in use", line)
            errors = "\n".join(srv.log[mark:])
            self.assertIn("%s:2:7: unknown status 999" % srv.rules_path, errors)
            self.assertEqual(location(srv, "/a"), (307, "/one"))
            # and a good file afterwards is taken
            srv.write_rules("/a /three\n")
            srv.reload()
            self.assertEqual(location(srv, "/a"), (307, "/three"))

    def test_reload_of_missing_file_keeps_table(self):
        with Server("/a /one\n") as srv:
            import os
            os.unlink(srv.rules_path)
            self.assertIn("reload failed", srv.reload())
            self.assertEqual(location(srv, "/a"), (307, "/one"))

    def test_s5_no_failed_request_during_reloads(self):
        """S5: clients hammering the server while rules are reloaded 30 times: every request
        gets a complete, valid answer from the old or the new table, never an error."""
        with Server("/a /v0\n", workers=2) as srv:
            stop = threading.Event()
            failures = []
            counts = [0, 0, 0, 0]

            def client(n):
                try:
                    s = srv.connect()
                    rd = Reader(s)
                    while not stop.is_set():
                        s.sendall(request("GET", "/a") * 4)
                        for _ in range(4):
                            resp = rd.response()
                            loc = resp.header("Location") or ""
                            if resp.status != 307 or not loc.startswith("/v"):
                                failures.append((resp.status, loc))
                            counts[n] += 1
                    s.close()
                except Exception as e:  # any socket error is a failed request
                    failures.append(repr(e))

            threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
            for t in threads:
                t.start()
            for i in range(1, 31):
                srv.write_rules("/a /v%d\n" % i + "".join("/r%d /t%d\n" % (k, k)
                                                          for k in range(i * 100)))
                self.assertIn("reloaded", srv.reload())
            time.sleep(0.2)
            stop.set()
            for t in threads:
                t.join(10)
            self.assertEqual(failures, [])
            self.assertGreater(sum(counts), 100)
            self.assertEqual(location(srv, "/a"), (307, "/v30"))


class HugePages(unittest.TestCase):
    """serve runs itself again, once, with glibc's malloc asking for transparent huge pages
    (GLIBC_TUNABLES=glibc.malloc.hugetlb=1): same pid, same arguments; a GLIBC_TUNABLES the
    caller set is kept as it is."""

    @staticmethod
    def environ(pid):
        with open("/proc/%d/environ" % pid, "rb") as f:
            return dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)

    @staticmethod
    def thp_mode():
        try:
            with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
                return re.search(r"\[(\w+)\]", f.read()).group(1)
        except (OSError, AttributeError):
            return "never"

    def test_serve_asks_for_huge_pages_once(self):
        with Server("/a /b\n", env={"GLIBC_TUNABLES": None}) as srv:
            env = self.environ(srv.proc.pid)
            if self.thp_mode() in ("madvise", "always"):
                self.assertEqual(env.get(b"GLIBC_TUNABLES"), b"glibc.malloc.hugetlb=1")
            else:
                self.assertNotIn(b"GLIBC_TUNABLES", env)
            self.assertEqual(location(srv, "/a"), (307, "/b"))
            with open("/proc/%d/cmdline" % srv.proc.pid, "rb") as f:
                self.assertIn(b"--rules", f.read().split(b"\0"), "the same arguments")

    def test_the_callers_tunables_stand(self):
        with Server("/a /b\n", env={"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}) as srv:
            env = self.environ(srv.proc.pid)
            self.assertEqual(env.get(b"GLIBC_TUNABLES"), b"glibc.malloc.arena_max=2")
            self.assertEqual(location(srv, "/a"), (307, "/b"))


class Stop(unittest.TestCase):
    def test_sigterm_exits_0_quickly_with_idle_connections(self):
        """SIGTERM: stop accepting, close idle keep-alive connections, exit 0 within 5 s."""
        srv = Server("/a /b\n", workers=2).start()
        idle = []
        for _ in range(20):
            s = srv.connect()
            s.sendall(request("GET", "/a"))
            Reader(s).response()
            idle.append(s)
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        self.assertEqual(srv.proc.wait(5), 0)
        self.assertLess(time.monotonic() - t0, 5)
        for s in idle:
            self.assertTrue(Reader(s).closed(1))
        srv.close()

    def test_sigint_exits_0(self):
        srv = Server("/a /b\n").start()
        self.assertEqual(srv.stop(signal.SIGINT), 0)
        srv.close()

    def test_sigterm_finishes_request_in_flight(self):
        """A request half sent when SIGTERM arrives is still answered, then closed."""
        srv = Server("/a /b\n").start()
        s = srv.connect()
        s.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.1)
        srv.proc.send_signal(signal.SIGTERM)
        srv.wait_log("stopping")
        time.sleep(0.2)
        s.sendall(b"\r\n")
        rd = Reader(s)
        resp = rd.response()
        self.assertEqual((resp.status, resp.header("Location")), (307, "/b"))
        self.assertEqual(resp.header("Connection"), "close")
        self.assertTrue(rd.closed(2))
        self.assertEqual(srv.proc.wait(5), 0)
        srv.close()

    def test_sigterm_no_new_connections(self):
        srv = Server("/a /b\n").start()
        s = srv.connect()
        s.sendall(b"GET /a HTTP/1.1\r\n")  # keeps the server busy until timeout
        srv.proc.send_signal(signal.SIGTERM)
        srv.wait_log("stopping")
        time.sleep(0.2)
        with self.assertRaises(OSError):
            c = srv.connect(timeout=1)
            c.settimeout(1)
            c.sendall(request("GET", "/a"))
            if not c.recv(1):
                raise ConnectionResetError()
        self.assertEqual(srv.proc.wait(6), 0)
        srv.close()

    def test_sigterm_gives_up_on_stuck_clients(self):
        """A client that never finishes its request does not hold the exit past the grace."""
        srv = Server("/a /b\n", args=["--shutdown-timeout", "1s"]).start()
        s = srv.connect()
        s.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n")
        t0 = time.monotonic()
        self.assertEqual(srv.stop(signal.SIGTERM), 0)
        self.assertLess(time.monotonic() - t0, 3)
        srv.close()


class Logs(unittest.TestCase):
    def test_one_line_per_start_reload_stop_none_per_request(self):
        srv = Server("/a /b\n").start()
        for _ in range(50):
            location(srv, "/a")
        location(srv, "/missing")
        srv.reload()
        srv.stop()
        # The first start also says, once, where it wrote the admin API's new token.
        self.assertIn("admin API token written to", srv.log[0])
        lines = srv.log[1:]
        self.assertEqual(len(lines), 4, lines)
        self.assertRegex(lines[0], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ detour\[\d+\] info: "
                                   r"detour \S+ started: 1 rules from \S+ and the store "
                                   r"loaded in \d+ ms; listening on 127\.0\.0\.1:\d+; "
                                   r"1 workers; admin API on 127\.0\.0\.1:\d+$")
        self.assertIn("reloaded 1 rules", lines[1])
        self.assertIn("SIGTERM: stopping", lines[2])
        self.assertIn("stopped", lines[3])
        srv.close()


class AccessLog(unittest.TestCase):
    LINE = re.compile(r'^(\S+) - - \[(\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000)\] '
                      r'"([^"]*)" (\d{3}) (\d+) "([^"]*)" "([^"]*)"$')

    def wait_lines(self, path, n, timeout=5):
        deadline = time.monotonic() + timeout
        while True:
            lines = open(path, encoding="utf-8").read().splitlines() if os.path.exists(path) else []
            if len(lines) >= n or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)

    def test_combined_format_buffered_and_reopened_on_sigusr1(self):
        srv = Server("/a /b 308\n")
        log = os.path.join(srv.tmp.name, "access.log")
        srv.args += ["--access-log", log]
        with srv:
            s = srv.connect()
            s.sendall(b'GET /a?x=1 HTTP/1.1\r\nHost: h\r\nUser-Agent: curl/8 "quoted"\r\n'
                      b"Referer: http://ref.example/\r\n\r\n"
                      b"HEAD /missing HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
            while s.recv(65536):
                pass
            lines = self.wait_lines(log, 2)
            self.assertEqual(len(lines), 2, lines)
            m = self.LINE.match(lines[0])
            self.assertTrue(m, lines[0])
            self.assertEqual(m.group(1), "127.0.0.1")
            self.assertEqual((m.group(3), m.group(4)), ("GET /a?x=1 HTTP/1.1", "308"))
            self.assertGreater(int(m.group(5)), 100)
            self.assertEqual(m.group(6), "http://ref.example/")
            self.assertEqual(m.group(7), "curl/8 \\x22quoted\\x22")
            m = self.LINE.match(lines[1])
            self.assertEqual((m.group(3), m.group(4), m.group(6), m.group(7)),
                             ("HEAD /missing HTTP/1.1", "404", "-", "-"))
            # logrotate: move the file away, SIGUSR1, and the next lines go to a new file
            os.rename(log, log + ".1")
            mark = len(srv.log)
            srv.proc.send_signal(signal.SIGUSR1)
            srv.wait_log(r"access log .* reopened", start=mark)
            location(srv, "/a")
            lines = self.wait_lines(log, 1)
            self.assertEqual(len(lines), 1)
            self.assertIn('"GET /a HTTP/1.1" 308', lines[0])
            self.assertEqual(len(open(log + ".1").read().splitlines()), 2)

    def test_unwritable_access_log_is_an_error_at_start(self):
        srv = Server("/a /b\n", args=["--access-log", "/nonexistent/dir/access.log"])
        p = subprocess.run(srv.command(), capture_output=True, timeout=10)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"cannot open the access log", p.stderr)


if __name__ == "__main__":
    unittest.main()


class Systemd(unittest.TestCase):
    """Type=notify (contrib/detour.service): detour sends READY=1 once it serves,
    RELOADING=1 (with MONOTONIC_USEC) then READY=1 around a SIGHUP, and STOPPING=1 on
    SIGTERM, to the socket $NOTIFY_SOCKET names (a path, or @name: the abstract
    namespace)."""

    def notified(self, address, env_value):
        import socket as _socket
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM)
        sock.bind(address)
        sock.settimeout(10)
        try:
            srv = Server("/a /b\n", env={"NOTIFY_SOCKET": env_value}).start()
            try:
                self.assertEqual(sock.recv(4096), b"READY=1")
                srv.proc.send_signal(signal.SIGHUP)
                msg = sock.recv(4096).decode()
                self.assertRegex(msg, r"^RELOADING=1\nMONOTONIC_USEC=\d+$")
                self.assertEqual(sock.recv(4096), b"READY=1")
                srv.proc.send_signal(signal.SIGTERM)
                self.assertEqual(sock.recv(4096), b"STOPPING=1")
                self.assertEqual(srv.proc.wait(10), 0)
            finally:
                srv.close()
        finally:
            sock.close()

    def test_notify_on_a_path(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "notify")
            self.notified(path, path)

    def test_notify_abstract(self):
        name = "detour-test-%d" % os.getpid()
        self.notified("\0" + name, "@" + name)

    def test_no_socket_no_harm(self):
        """A $NOTIFY_SOCKET nobody listens on: a warning, and the server runs."""
        srv = Server("/a /b\n", env={"NOTIFY_SOCKET": "/nonexistent/socket"}).start()
        try:
            srv.wait_log(r"systemd notify: /nonexistent/socket")
        finally:
            srv.close()


class SocketActivation(unittest.TestCase):
    """Socket activation (sd_listen_fds(3), contrib/detour.socket): the listening sockets
    systemd passes from descriptor 3 on, with $LISTEN_PID naming this process, serve the
    --listen, --listen-tls and --admin at the same address; each is shared by the workers.
    Faked here: the test binds the sockets and bash moves them to 3, 4, ... before
    exec'ing detour with LISTEN_PID=$$."""

    def listening(self, family=None, addr="127.0.0.1", v6only=True):
        import socket as _socket
        family = family or _socket.AF_INET
        s = _socket.socket(family, _socket.SOCK_STREAM)
        if family == _socket.AF_INET6:
            s.setsockopt(_socket.IPPROTO_IPV6, _socket.IPV6_V6ONLY, 1 if v6only else 0)
        s.bind((addr, 0))
        s.listen(64)
        self.addCleanup(s.close)
        return s

    def start(self, sockets, args, pid="$$", fds=None):
        """detour serve with sockets as descriptors 3, 4, ...; returns (proc, log line)."""
        from harness import DETOUR
        import fcntl
        high = [fcntl.fcntl(s.fileno(), fcntl.F_DUPFD_CLOEXEC, 100) for s in sockets]
        for fd in high:
            self.addCleanup(os.close, fd)
        moves = " ".join("%d<&%d" % (3 + i, fd) for i, fd in enumerate(high))
        closes = " ".join("%d<&-" % fd for fd in high)
        script = ('exec %s %s; LISTEN_PID=%s LISTEN_FDS=%s exec "$0" "$@"'
                  % (moves, closes, pid, len(sockets) if fds is None else fds))
        tmp = tempfile.mkdtemp(prefix="detour-test-")
        proc = subprocess.Popen(["bash", "-c", script, DETOUR, "serve", "--db",
                                 os.path.join(tmp, "d.db")] + args,
                                pass_fds=high, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        self.addCleanup(self.stop, proc)
        lines = []
        while True:
            line = proc.stderr.readline().decode()
            if not line:
                break
            lines.append(line)
            if "started:" in line:
                break
        return proc, "".join(lines)

    def stop(self, proc):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
        proc.stderr.close()

    def rules(self):
        fd, path = tempfile.mkstemp(suffix=".txt")
        os.write(fd, b"/a /b\n")
        os.close(fd)
        self.addCleanup(os.unlink, path)
        return path

    def get(self, port, host="127.0.0.1"):
        import socket as _socket
        with _socket.create_connection((host, port), timeout=5) as s:
            s.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    return data
                data += chunk

    def test_listeners_and_admin_from_systemd(self):
        web, admin = self.listening(), self.listening()
        wport, aport = web.getsockname()[1], admin.getsockname()[1]
        tokdir = tempfile.mkdtemp(prefix="detour-test-")
        token_file = os.path.join(tokdir, "token")
        proc, log = self.start([web, admin], [
            "--rules", self.rules(), "--workers", "2", "--listen", "127.0.0.1:%d" % wport,
            "--admin", "127.0.0.1:%d" % aport, "--admin-token-file", token_file])
        self.assertIn("listening on 127.0.0.1:%d;" % wport, log)
        web.close()  # ours closed: what answers is detour's copy
        admin.close()
        for _ in range(20):  # both workers take from the one queue
            self.assertTrue(self.get(wport).startswith(b"HTTP/1.1 307 "))
        import http.client
        with open(token_file) as f:
            token = f.read().strip()
        c = http.client.HTTPConnection("127.0.0.1", aport, timeout=5)
        c.request("GET", "/api/health", headers={"Authorization": "Bearer " + token})
        self.assertEqual(c.getresponse().status, 200)
        c.close()

    def test_any_address_takes_a_dual_stack_socket(self):
        import socket as _socket
        both = self.listening(_socket.AF_INET6, "::", v6only=False)
        port = both.getsockname()[1]
        proc, log = self.start([both], ["--rules", self.rules(), "--admin", "off",
                                        "--listen", "*:%d" % port])
        self.assertIn("started:", log)
        both.close()
        self.assertTrue(self.get(port, "127.0.0.1").startswith(b"HTTP/1.1 307 "))
        self.assertTrue(self.get(port, "::1").startswith(b"HTTP/1.1 307 "))

    def test_a_socket_no_listener_takes_is_an_error(self):
        extra = self.listening()
        proc, log = self.start([extra], ["--rules", self.rules(), "--admin", "off",
                                         "--listen", "127.0.0.1:0"])
        self.assertEqual(proc.wait(10), 1)
        self.addCleanup(proc.stderr.close)
        self.assertIn("socket activation: the socket on 127.0.0.1:%d (descriptor 3) matches "
                      "no --listen" % extra.getsockname()[1], log + proc.stderr.read().decode())

    def test_another_process_sockets_are_left_alone(self):
        """LISTEN_PID naming another process: the variables are not for us."""
        other = self.listening()
        proc, log = self.start([other], ["--rules", self.rules(), "--admin", "off",
                                         "--listen", "127.0.0.1:0"], pid="1")
        self.assertIn("started:", log)
        port = int(re.search(r"listening on 127\.0\.0\.1:(\d+);", log).group(1))
        self.assertNotEqual(port, other.getsockname()[1])
        self.assertTrue(self.get(port).startswith(b"HTTP/1.1 307 "))

    def test_bad_listen_fds(self):
        s = self.listening()
        proc, log = self.start([s], ["--rules", self.rules(), "--admin", "off"], fds="two")
        self.assertEqual(proc.wait(10), 1)
        self.addCleanup(proc.stderr.close)
        self.assertIn("LISTEN_FDS='two' is not a number", log + proc.stderr.read().decode())


@unittest.skipUnless(os.geteuid() == 0, "needs root: --user drops it")
class User(unittest.TestCase):
    """--user: started as root, detour binds its listeners (a port below 1024 here), then
    runs as the user: its store, token and rules are the user's, and root cannot be had
    back."""

    def low_port(self):
        import socket as _socket
        for port in range(1000, 900, -1):
            with _socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                    return port
                except OSError:
                    continue
        self.skipTest("no free port below 1024")

    def test_binds_as_root_then_runs_as_nobody(self):
        import pwd
        nobody = pwd.getpwnam("nobody")
        d = tempfile.mkdtemp(prefix="detour-test-")
        os.chmod(d, 0o755)
        os.chown(d, nobody.pw_uid, nobody.pw_gid)
        rules = os.path.join(d, "rules.txt")
        with open(rules, "w") as f:
            f.write("/a /b\n")
        port = self.low_port()
        with Server(listen=("127.0.0.1:%d" % port,), rule_files=[rules],
                    db=os.path.join(d, "detour.db"), token_file=os.path.join(d, "token"),
                    args=["--user", "nobody"]) as srv:
            srv.wait_log(r"running as nobody \(uid %d" % nobody.pw_uid)
            with open("/proc/%d/status" % srv.proc.pid) as f:
                status = f.read()
            uids = re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()
            self.assertEqual(set(uids), {str(nobody.pw_uid)})
            self.assertEqual(location(srv, "/a"), (307, "/b"))
            # the store is written as nobody
            st, _, _ = srv.api("POST", "/api/rules", {"source": "/n", "target": "/m"})
            self.assertIn(st, (200, 201))
            self.assertEqual(location(srv, "/n"), (307, "/m"))
            self.assertEqual(os.stat(os.path.join(d, "detour.db")).st_uid, nobody.pw_uid)

    def test_errors(self):
        from harness import DETOUR
        p = subprocess.run([DETOUR, "serve", "--user", "no-such-user-here", "--admin", "off",
                            "--db", ":memory:"], capture_output=True, timeout=10)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"no user 'no-such-user-here'", p.stderr)
        p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            DETOUR, "serve", "--user", "nobody", "--admin", "off", "--db",
                            ":memory:"], capture_output=True, timeout=10)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"--user needs detour started as root", p.stderr)
