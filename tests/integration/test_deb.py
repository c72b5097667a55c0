"""The Debian package (issue 13, Operations): scripts/mkdeb builds a .deb of the binary
under test; its contents, control data and lintian's verdict are checked; its whole life
(install, start, logrotate, upgrade, purge) runs on a throwaway overlay of this machine
(deb_lifecycle.py); systemd-analyze verifies contrib/detour.service and the packaged unit;
logrotate reads contrib/logrotate.

Each part is skipped, saying why, when its tools are missing (scripts/bootstrap installs
them) or when mount namespaces are not allowed.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

from harness import DETOUR, ROOT

MKDEB = os.path.join(ROOT, "scripts", "mkdeb")
BUILD_TOOLS = ["dpkg-deb", "dpkg-gencontrol", "dpkg-shlibdeps", "help2man", "strip"]
MISSING = [t for t in BUILD_TOOLS if not shutil.which(t)]
# man-db's seccomp filter refuses the semaphore calls of libfaketime (make test-clock).
MAN_ENV = dict(os.environ, MAN_DISABLE_SECCOMP="1")

# Every file of the package but the docs and the man pages (added from `detour --help`),
# with its mode; every owner is root and every folder 755.
EXPECTED = {
    "/etc/default/detour": 0o644,
    "/etc/detour/rules.txt": 0o644,
    "/etc/logrotate.d/detour": 0o644,
    "/lib/systemd/system/detour.service": 0o644,
    "/usr/bin/detour": 0o755,
    "/usr/share/doc/detour/changelog.gz": 0o644,
    "/usr/share/doc/detour/copyright": 0o644,
    "/usr/share/lintian/overrides/detour": 0o644,
}


def run(*args, check=True, **kw):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=120, **kw)
    if check and r.returncode != 0:
        raise AssertionError("%s: exit %d\n%s%s" % (" ".join(args), r.returncode, r.stdout,
                                                     r.stderr))
    return r


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def commands():
    """The commands `detour --help` lists: each gets its man page."""
    text = run(DETOUR, "--help").stdout
    section = text.split("\nCommands:\n", 1)[1].split("\n\n", 1)[0]
    return re.findall(r"(?m)^  ([a-z]+) ", section)


def binary_version():
    return run(DETOUR, "--version").stdout.split()[1]


class Built:
    """The two packages of the binary under test, built once for the module: its own
    version and a later one, for the upgrade."""
    tmp = None

    @classmethod
    def get(cls):
        if cls.tmp is None:
            cls.tmp = tempfile.TemporaryDirectory(prefix="detour-deb-")
            cls.dir = cls.tmp.name
            cls.version = binary_version()
            cls.old = run(MKDEB, "-o", cls.dir, DETOUR).stdout.strip().splitlines()[-1]
            cls.new = run(MKDEB, "-o", cls.dir, "-v", cls.version + "+upgrade1",
                          DETOUR).stdout.strip().splitlines()[-1]
            cls.tree = os.path.join(cls.dir, "tree")
            run("dpkg-deb", "-x", cls.old, cls.tree)
        return cls


def tearDownModule():
    if Built.tmp is not None:
        Built.tmp.cleanup()


@unittest.skipIf(MISSING, "missing: %s (scripts/bootstrap installs them)" % " ".join(MISSING))
class Package(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.b = Built.get()

    def field(self, name, deb=None):
        return run("dpkg-deb", "-f", deb or self.b.old, name).stdout.strip()

    def test_file_name_and_control(self):
        """The package is detour, versioned as the binary says (CMakeLists.txt's version),
        depends on the libraries it links and on adduser, and names its conffiles."""
        arch = run("dpkg", "--print-architecture").stdout.strip()
        self.assertEqual(os.path.basename(self.b.old),
                         "detour_%s_%s.deb" % (self.b.version, arch))
        self.assertEqual(self.field("Package"), "detour")
        self.assertEqual(self.field("Version"), self.b.version)
        self.assertEqual(self.field("Version", self.b.new), self.b.version + "+upgrade1")
        self.assertEqual(self.field("Architecture"), arch)
        depends = [d.strip() for d in self.field("Depends").split(",")]
        self.assertIn("adduser", depends)
        for lib in ("libc6", "libssl3", "libsqlite3-0", "libnghttp2-14", "libcurl4"):
            self.assertTrue(any(d.startswith(lib + " ") for d in depends), lib)
        conffiles = run("dpkg-deb", "--info", self.b.old, "conffiles").stdout.split()
        self.assertEqual(sorted(conffiles), ["/etc/default/detour", "/etc/detour/rules.txt",
                                             "/etc/logrotate.d/detour"])
        for script in ("postinst", "prerm", "postrm"):
            text = run("dpkg-deb", "--info", self.b.old, script).stdout
            self.assertTrue(text.startswith("#!/bin/sh\n"), script)

    def test_contents(self):
        """Exactly the expected files, owned by root, with their modes; docs beside them."""
        listing = run("dpkg-deb", "-c", self.b.old).stdout.splitlines()
        files, docs = {}, []
        for line in listing:
            mode, owner, _size, _date, _time, name = line.split(None, 5)
            self.assertEqual(owner, "root/root", name)
            name = name[1:]
            if mode.startswith("d"):
                self.assertEqual(mode, "drwxr-xr-x", name)
            elif name.startswith("/usr/share/doc/detour/") and name.endswith((".md", ".md.gz")):
                docs.append(os.path.basename(name))
                self.assertEqual(mode, "-rw-r--r--", name)
            else:
                files[name] = int("".join("0" if c == "-" else "1" for c in mode[1:]), 2)
        expected = dict(EXPECTED)
        for page in ["detour"] + ["detour-" + c for c in commands()]:
            expected["/usr/share/man/man1/%s.1.gz" % page] = 0o644
        self.assertEqual(files, expected)
        self.assertIn("rules.md.gz", docs)
        self.assertIn("operations.md", [d.replace(".gz", "") for d in docs])

    def test_binary_is_the_stripped_build(self):
        """/usr/bin/detour runs, says the version, and has no debugging sections."""
        binary = os.path.join(self.b.tree, "usr/bin/detour")
        self.assertEqual(run(binary, "--version").stdout.strip(), "detour " + self.b.version)
        sections = run("objdump", "-h", binary).stdout
        self.assertNotIn(".debug_info", sections)

    def test_man_pages_from_help(self):
        """A page for detour and each command, made from its --help: every option of the
        help is in the page."""
        cmds = commands()
        self.assertIn("serve", cmds)
        for page, args in [("detour", [])] + [("detour-" + c, [c]) for c in cmds]:
            gz = os.path.join(self.b.tree, "usr/share/man/man1", page + ".1.gz")
            text = run("sh", "-c", 'gzip -dc "$1"', "sh", gz).stdout
            self.assertRegex(text, r'(?m)^\.TH %s "1"' % re.escape(page.upper()))
            self.assertIn("\n%s \\- " % page, text)
            rendered = run("man", "--warnings", "--nh", "--nj", "-l", gz,
                           env=dict(MAN_ENV, MANWIDTH="200"))
            self.assertEqual(rendered.stderr, "", page)
            help_text = run(DETOUR, *args, "--help").stdout
            for opt in sorted(set(re.findall(r"(?m)^\s+(--[a-z][a-z0-9.-]*)", help_text))):
                self.assertRegex(rendered.stdout, r"(?m)^\s+(-\w, )?%s\b" % re.escape(opt),
                                 page)

    def test_packaged_unit(self):
        """The unit runs /usr/bin/detour serve as the detour user with the package's
        paths and /etc/default/detour's options; contrib's sandboxing is kept."""
        unit = read(os.path.join(self.b.tree, "lib/systemd/system/detour.service"))
        execstart = re.search(r"(?m)^ExecStart=((?:.*\\\n)*.*)$", unit).group(1)
        self.assertEqual(execstart.replace("\\\n", " ").split(),
                         ["/usr/bin/detour", "serve", "--rules", "/etc/detour/rules.txt",
                          "--db", "/var/lib/detour/detour.db", "--access-log",
                          "/var/log/detour/access.log", "$DETOUR_OPTS"])
        self.assertIn("\nEnvironmentFile=-/etc/default/detour\n", unit)
        self.assertIn("\nUser=detour\nGroup=detour\n", unit)
        self.assertNotIn("DynamicUser", unit)
        self.assertIn("\nStateDirectoryMode=0750\n", unit)
        contrib = read(os.path.join(ROOT, "contrib", "detour.service"))
        for key in ("Type=", "NoNewPrivileges=", "ProtectSystem=", "CapabilityBoundingSet=",
                    "StateDirectory=", "WantedBy="):
            kept = re.findall(r"(?m)^%s.*$" % re.escape(key), contrib)
            self.assertTrue(kept, key)
            for line in kept:
                self.assertIn("\n" + line + "\n", unit)

    def test_mkdeb_refuses_a_unit_it_does_not_know(self):
        """An edit of contrib/detour.service that scripts/mkdeb does not expect stops the
        build with a message, instead of packaging a wrong unit."""
        with tempfile.TemporaryDirectory(prefix="detour-mkdeb-") as tmp:
            tree = os.path.join(tmp, "src")
            os.makedirs(os.path.join(tree, "scripts"))
            for d in ("contrib", "examples", "docs"):
                shutil.copytree(os.path.join(ROOT, d), os.path.join(tree, d))
            shutil.copy(MKDEB, os.path.join(tree, "scripts"))
            for f in ("README.md", "CMakeLists.txt"):
                shutil.copy(os.path.join(ROOT, f), tree)
            unit = os.path.join(tree, "contrib", "detour.service")
            text = read(unit)
            with open(unit, "w", encoding="utf-8") as f:
                f.write(text.replace("DynamicUser=yes\n", ""))
            r = run(os.path.join(tree, "scripts", "mkdeb"), "-o", tmp, DETOUR, check=False)
            self.assertEqual(r.returncode, 1)
            self.assertIn("no DynamicUser=yes", r.stderr)
            self.assertFalse([f for f in os.listdir(tmp) if f.endswith(".deb")])

    @unittest.skipUnless(shutil.which("lintian"), "lintian missing (scripts/bootstrap)")
    def test_lintian(self):
        """lintian: no error and no warning (its informational tags are allowed)."""
        r = run("lintian", "--no-tag-display-limit", "--color", "never", self.b.old,
                check=False)
        tags = [line for line in r.stdout.splitlines() if re.match(r"^[EW]: ", line)]
        self.assertEqual(tags, [], r.stdout)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


def can_overlay():
    """Whether this process may make a mount namespace with an overlay of / (root with
    CAP_SYS_ADMIN, and overlayfs): tried in a namespace of its own, on an empty folder."""
    if os.getuid() != 0 or not shutil.which("unshare"):
        return "needs root and unshare"
    with tempfile.TemporaryDirectory(prefix="detour-ns-") as d:
        r = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-ec",
             'mount -t tmpfs tmpfs "$1"; mkdir "$1/u" "$1/w" "$1/m"; '
             'mount -t overlay overlay -o lowerdir=/,upperdir="$1/u",workdir="$1/w" "$1/m"',
             "sh", d], capture_output=True, text=True, timeout=30)
        return None if r.returncode == 0 else "no overlay of / here: " + r.stderr.strip()


@unittest.skipIf(MISSING, "missing: %s (scripts/bootstrap installs them)" % " ".join(MISSING))
class Lifecycle(unittest.TestCase):
    def test_install_start_upgrade_purge_leaves_nothing(self):
        """dpkg -i, the server as the unit runs it, logrotate, an upgrade over it, remove
        and purge, in a throwaway overlay of this machine (deb_lifecycle.py): the user,
        its folders, the conffiles and the unit come and go, and nothing is left."""
        why = can_overlay()
        if why:
            self.skipTest(why)
        for tool in ("logrotate", "adduser"):
            if not shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin"):
                self.skipTest(tool + " missing (scripts/bootstrap installs it)")
        b = Built.get()
        with tempfile.TemporaryDirectory(prefix="detour-sandbox-") as sandbox:
            env = dict(os.environ, DEB_SANDBOX=sandbox, DEB_OLD=b.old, DEB_NEW=b.new)
            r = subprocess.run(["unshare", "--mount", "--propagation", "private",
                                sys.executable, "-m", "unittest", "-v", "deb_lifecycle"],
                               cwd=os.path.dirname(os.path.abspath(__file__)), env=env,
                               capture_output=True, text=True, timeout=180)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertRegex(r.stderr, r"\nOK\n")
            self.assertNotIn("skipped", r.stderr)
            self.assertEqual(os.listdir(sandbox), [], "the sandbox's mounts stayed inside")


@unittest.skipUnless(shutil.which("systemd-analyze"), "systemd-analyze missing (package systemd)")
class Unit(unittest.TestCase):
    """systemd-analyze verify works here without systemd running (it reads the unit and
    checks the commands and man pages it names). Its check that ExecStart's program exists
    is why each unit is verified as a copy whose program path points at the binary under
    test; nothing else is changed. A warning is a failure: verify exits 0 on them."""

    def verify(self, text, program, manpath=None):
        with tempfile.TemporaryDirectory(prefix="detour-unit-") as d:
            unit = os.path.join(d, "detour.service")
            with open(unit, "w", encoding="utf-8") as f:
                f.write(text.replace("ExecStart=%s " % program, "ExecStart=%s " % DETOUR))
            env = dict(MAN_ENV)  # verify runs man for Documentation=
            if manpath:
                env["MANPATH"] = manpath
            r = run("systemd-analyze", "verify", unit, check=False, env=env)
        self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""))

    def test_contrib_unit(self):
        text = read(os.path.join(ROOT, "contrib", "detour.service"))
        self.verify(text, re.search(r"(?m)^ExecStart=(\S+)", text).group(1))

    @unittest.skipIf(MISSING, "missing: %s (scripts/bootstrap installs them)" % " ".join(MISSING))
    def test_packaged_unit(self):
        """With its Documentation= man page looked up in the package's own tree."""
        b = Built.get()
        text = read(os.path.join(b.tree, "lib/systemd/system/detour.service"))
        self.verify(text, "/usr/bin/detour", os.path.join(b.tree, "usr/share/man"))

    def test_a_bad_unit_fails(self):
        """The check can fail: an unknown key is reported."""
        text = read(os.path.join(ROOT, "contrib", "detour.service"))
        with self.assertRaises(AssertionError):
            self.verify(text.replace("ProtectSystem=", "ProtectSystemm="),
                        "/usr/local/bin/detour")


@unittest.skipUnless(shutil.which("logrotate", path="/usr/sbin:/usr/bin"), "logrotate missing")
class Logrotate(unittest.TestCase):
    def test_contrib_logrotate_debug_run(self):
        """logrotate -d reads contrib/logrotate without an error and would rotate the
        access log. Its su line names the package's detour user; where that user does not
        exist (the package not installed), the copy checked says root instead, since
        logrotate refuses an unknown user."""
        text = read(os.path.join(ROOT, "contrib", "logrotate"))
        self.assertIn("\n    su detour detour\n", text)
        if subprocess.run(["getent", "passwd", "detour"], capture_output=True).returncode:
            text = text.replace("su detour detour", "su root root")
        with tempfile.TemporaryDirectory(prefix="detour-logrotate-") as d:
            conf = os.path.join(d, "detour")
            with open(conf, "w", encoding="utf-8") as f:
                f.write(text)
            r = run("logrotate", "-d", "-s", os.path.join(d, "state"), conf, check=False,
                    env=dict(os.environ, PATH="/usr/sbin:/usr/bin:/sbin:/bin"))
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out)
        self.assertNotIn("error", out.lower())
        self.assertIn("rotating pattern: /var/log/detour/access.log", out)


if __name__ == "__main__":
    unittest.main()
