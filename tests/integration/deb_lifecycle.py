"""The Debian package's whole life on a throwaway copy of this machine: install, the server
started as the unit says, logrotate, an upgrade over it, remove, purge, and nothing left.

test_deb.py runs this module as root inside a private mount namespace (unshare --mount)
and points $DEB_SANDBOX at an empty directory. There a tmpfs takes every write made to an
overlay of /, and dpkg runs chrooted into the overlay: the user, the files and the dpkg
database it changes vanish with the namespace and never reach the real system. /run is
an empty tmpfs in there, so the maintainer scripts see no running systemd and start
nothing; the server is started by this test the way the unit would, as the unit's user.
Not a test file of its own: CTest registers only test_*.py.
"""
import http.client
import os
import re
import shlex
import signal
import stat
import subprocess
import threading
import time
import unittest

SANDBOX = os.environ.get("DEB_SANDBOX", "")
DEB_OLD = os.environ.get("DEB_OLD", "")
DEB_NEW = os.environ.get("DEB_NEW", "")
ROOT = os.path.join(SANDBOX, "root")
UPPER = os.path.join(SANDBOX, "upper")

# Written by dpkg, adduser and userdel as they work; compared or allowed after the purge.
ACCOUNT_FILES = ["/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow"]
BOOKKEEPING = re.compile(r"^/(etc/(passwd|group|shadow|gshadow|subuid|subgid)-?"
                         r"|var/lib/dpkg(/.*)?|var/log/dpkg\.log|var/cache/debconf(/.*)?"
                         r"|var/lib/systemd(/deb-systemd-helper-(enabled|masked))?"
                         r"|var/lib/man-db/auto-update|tmp(/.*)?|run|proc|dev)$")


def mount(*args):
    subprocess.run(["mount"] + list(args), check=True)


def setUpModule():
    if not SANDBOX or os.getuid() != 0:
        raise unittest.SkipTest("run by test_deb.py as root in a mount namespace")
    mount("-t", "tmpfs", "tmpfs", SANDBOX)
    for d in ("upper", "work", "root"):
        os.mkdir(os.path.join(SANDBOX, d))
    mount("-t", "overlay", "overlay", "-o",
          "lowerdir=/,upperdir=%s,workdir=%s" % (UPPER, os.path.join(SANDBOX, "work")), ROOT)
    mount("--bind", "/proc", ROOT + "/proc")
    mount("--rbind", "/dev", ROOT + "/dev")  # with /dev/shm, where libfaketime keeps its state
    mount("-t", "tmpfs", "tmpfs", ROOT + "/tmp")
    mount("-t", "tmpfs", "tmpfs", ROOT + "/run")
    # man-db's trigger would rebuild the whole index after each dpkg run: seconds each.
    try:
        os.unlink(ROOT + "/var/lib/man-db/auto-update")
    except FileNotFoundError:
        pass


def inside(*args, user=None, env=None, check=True, timeout=60):
    """Runs a command chrooted into the overlay (as USER when given); returns the result."""
    cmd = ["chroot"] + (["--userspec=%s:%s" % (user, user)] if user else []) + [ROOT]
    r = subprocess.run(cmd + list(args), capture_output=True, text=True, env=env,
                       timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError("%s: exit %d\n%s%s" % (" ".join(args), r.returncode, r.stdout,
                                                     r.stderr))
    return r


def path(p):
    return ROOT + p


def owner(p):
    st = os.lstat(path(p))
    users = {int(line.split(":")[2]): line.split(":")[0]
             for line in read("/etc/passwd").splitlines()}
    return users.get(st.st_uid, st.st_uid), stat.S_IMODE(st.st_mode)


def passwd_entry(name):
    r = inside("getent", "passwd", name, check=False)
    return r.stdout.strip().split(":") if r.returncode == 0 else None


class Server:
    """detour serve started the way the installed unit says: its ExecStart with the options
    of /etc/default/detour replaced by loopback listeners on free ports, as its User=."""

    def __init__(self, case):
        unit = read("/lib/systemd/system/detour.service")
        unit = unit.replace("\\\n", " ")
        argv = shlex.split(re.search(r"^ExecStart=(.*)$", unit, re.M).group(1))
        case.assertIn("$DETOUR_OPTS", argv)
        i = argv.index("$DETOUR_OPTS")
        argv[i:i + 1] = ["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--workers", "1"]
        self.user = re.search(r"^User=(.*)$", unit, re.M).group(1)
        self.proc = subprocess.Popen(
            ["chroot", "--userspec=%s:%s" % (self.user, self.user), ROOT] + argv,
            stderr=subprocess.PIPE, text=True)
        self.log = []
        self.reader = threading.Thread(target=self._read_log, daemon=True)
        self.reader.start()
        m = self.wait_log(r"started: .* listening on 127\.0\.0\.1:(\d+)", 20)
        self.port = int(m.group(1))

    def _read_log(self):
        for line in self.proc.stderr:
            self.log.append(line)

    def wait_log(self, pattern, timeout=10, start=0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log[start:]:
                m = re.search(pattern, line)
                if m:
                    return m
            if self.proc.poll() is not None and not self.reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError("no log line %r:\n%s" % (pattern, "".join(self.log)))

    def get(self, target):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        c.request("GET", target, headers={"Host": "example.com"})
        r = c.getresponse()
        r.read()
        c.close()
        return r.status, r.getheader("Location")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=20)
        self.reader.join(5)
        self.proc.stderr.close()
        return rc


def wait_for(predicate, what, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("waited %d s for %s" % (timeout, what))


def read(p):
    """The text of P in the overlay, or "" when it does not exist."""
    try:
        with open(path(p), encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


class Lifecycle(unittest.TestCase):
    def version_of(self, deb):
        return subprocess.run(["dpkg-deb", "-f", deb, "Version"], capture_output=True,
                              text=True, check=True).stdout.strip()

    def status(self):
        r = inside("dpkg-query", "-W", "-f", "${Status} ${Version}", "detour", check=False)
        return r.stdout.strip()

    def test_install_serve_rotate_upgrade_purge(self):
        self.assertIsNone(passwd_entry("detour"), "this machine has a detour user already")
        self.assertFalse(os.path.exists(path("/etc/detour")), "/etc/detour exists already")
        for deb in (DEB_OLD, DEB_NEW):
            subprocess.run(["cp", deb, path("/tmp/")], check=True)
        old, new = self.version_of(DEB_OLD), self.version_of(DEB_NEW)

        # Install: the user, its folders, the conffiles, the unit enabled.
        inside("dpkg", "-i", "/tmp/" + os.path.basename(DEB_OLD))
        self.assertEqual(self.status(), "install ok installed " + old)
        user = passwd_entry("detour")
        self.assertIsNotNone(user)
        self.assertLess(int(user[2]), 1000, "a system user")
        self.assertEqual(user[5:], ["/var/lib/detour", "/usr/sbin/nologin"])
        self.assertEqual(inside("id", "-gn", "detour").stdout.strip(), "detour")
        self.assertEqual(owner("/var/lib/detour"), ("detour", 0o750))
        self.assertEqual(owner("/var/log/detour"), ("detour", 0o750))
        self.assertEqual(owner("/etc/detour/rules.txt"), ("root", 0o644))
        self.assertEqual(os.readlink(path("/etc/systemd/system/multi-user.target.wants/"
                                          "detour.service")),
                         "/lib/systemd/system/detour.service")
        self.assertIn('DETOUR_OPTS="--listen *:80 --listen [::]:80"',
                      read("/etc/default/detour"))
        self.assertRegex(inside("detour", "--version").stdout, r"^detour \d")

        # Start as the unit would: the example rules answer, the store and its token are
        # the detour user's, the access log is written.
        srv = Server(self)
        try:
            self.assertEqual(srv.user, "detour")
            self.assertEqual(srv.get("/old/url/page"), (307, "/new/url"))
            self.assertEqual(owner("/var/lib/detour/detour.db")[0], "detour")
            self.assertEqual(owner("/var/lib/detour/detour.db.token"), ("detour", 0o600))
            wait_for(lambda: "GET /old/url/page" in read("/var/log/detour/access.log"),
                     "the access log's first line")

            # logrotate with the packaged /etc/logrotate.d/detour, forced: its postrotate
            # asks systemctl for the main PID, answered here by a stand-in with the
            # server's, and detour reopens the log on SIGUSR1.
            os.makedirs(path("/tmp/fakebin"))
            with open(path("/tmp/fakebin/systemctl"), "w", encoding="ascii") as f:
                f.write('#!/bin/sh\n[ "$*" = "show --property=MainPID --value '
                        'detour.service" ] || exit 1\necho %d\n' % srv.proc.pid)
            os.chmod(path("/tmp/fakebin/systemctl"), 0o755)
            env = dict(os.environ, PATH="/tmp/fakebin:/usr/sbin:/usr/bin:/sbin:/bin")
            mark = len(srv.log)
            inside("logrotate", "-f", "-s", "/tmp/logrotate.state",
                   "/etc/logrotate.d/detour", env=env)
            self.assertIn("GET /old/url/page", read("/var/log/detour/access.log.1"))
            srv.wait_log(r"access log /var/log/detour/access.log reopened", start=mark)
            srv.get("/docs/intro")
            wait_for(lambda: "GET /docs/intro" in read("/var/log/detour/access.log"),
                     "the reopened access log")
            self.assertNotIn("GET /docs/intro", read("/var/log/detour/access.log.1"))
            self.assertEqual(owner("/var/log/detour/access.log")[0], "detour")

            # An admin's change to a conffile, then the upgrade over the running server.
            with open(path("/etc/detour/rules.txt"), "a", encoding="utf-8") as f:
                f.write("/added-by-admin  /kept  308\n")
            inside("dpkg", "-i", "/tmp/" + os.path.basename(DEB_NEW))
            self.assertEqual(self.status(), "install ok installed " + new)
        finally:
            rc = srv.stop()
        self.assertEqual(rc, 0, "".join(srv.log))
        self.assertEqual(passwd_entry("detour"), user, "the same user after the upgrade")
        self.assertIn("/added-by-admin", read("/etc/detour/rules.txt"))
        self.assertEqual(owner("/var/lib/detour"), ("detour", 0o750))

        # The new binary, restarted as postinst would under systemd, serves the kept
        # rules and store.
        srv = Server(self)
        try:
            self.assertEqual(srv.get("/added-by-admin"), (308, "/kept"))
        finally:
            self.assertEqual(srv.stop(), 0, "".join(srv.log))

        # Remove keeps the configuration, the store and the user; the unit is masked.
        inside("dpkg", "--remove", "detour")
        self.assertEqual(self.status(), "deinstall ok config-files " + new)
        self.assertFalse(os.path.exists(path("/usr/bin/detour")))
        self.assertTrue(os.path.exists(path("/var/lib/detour/detour.db")))
        self.assertIsNotNone(passwd_entry("detour"))
        self.assertEqual(os.readlink(path("/etc/systemd/system/detour.service")), "/dev/null")

        # Purge: nothing of the package left.
        inside("dpkg", "--purge", "detour")
        self.assertEqual(inside("dpkg-query", "-W", "detour", check=False).returncode, 1)
        self.assertIsNone(passwd_entry("detour"))
        self.assertNotEqual(inside("getent", "group", "detour", check=False).returncode, 0)
        for p in ("/etc/detour", "/var/lib/detour", "/var/log/detour", "/etc/default/detour",
                  "/etc/logrotate.d/detour", "/etc/systemd/system/detour.service",
                  "/etc/systemd/system/multi-user.target.wants/detour.service"):
            self.assertFalse(os.path.lexists(path(p)), p + " is left")
        for p in ACCOUNT_FILES:
            with open(p, encoding="utf-8") as f:
                self.assertEqual(read(p), f.read(), p + " changed")
        # Every entry the overlay holds now is dpkg's bookkeeping or the test's own: none is
        # new that is not, and none has "detour" in its name.
        left = []
        for dirpath, dirnames, filenames in os.walk(UPPER):
            for name in dirnames + filenames:
                p = os.path.join(dirpath, name)[len(UPPER):]
                new_entry = not os.path.lexists(p)
                if "detour" in name and not p.startswith("/var/lib/dpkg/"):
                    left.append(p)
                elif new_entry and not BOOKKEEPING.match(p):
                    left.append(p)
        self.assertEqual(left, [])


if __name__ == "__main__":
    unittest.main()
