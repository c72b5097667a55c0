"""The library example of docs/client.md compiles against the public header alone and
works against a running detour serve: C1 (method and body kept) and C4 (the callback)."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from harness import DETOUR, ROOT, Server

DOC = os.path.join(ROOT, "docs", "client.md")
BUILD = os.path.dirname(DETOUR)


CC = os.environ.get("DETOUR_CC", "cc")
EXTRA = os.environ.get("DETOUR_EXAMPLE_CFLAGS", "").split()


@unittest.skipUnless(shutil.which(CC), "no C compiler")
class ClientDocExample(unittest.TestCase):
    def test_library_example(self):
        with open(DOC, encoding="utf-8") as f:
            code = re.search(r"```c\n(.*?)```", f.read(), re.S).group(1)
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "example.c")
            exe = os.path.join(tmp, "example")
            with open(src, "w") as f:
                f.write(code)
            subprocess.run([CC, "-std=c17", "-Wall", "-Werror"] + EXTRA + [src, "-I",
                            os.path.join(ROOT, "include"), "-L", BUILD, "-Wl,-rpath," + BUILD,
                            "-ldetour-client", "-o", exe], check=True)
            with Server("/old/url/*  /new/url\n") as srv:
                p = subprocess.run([exe, srv.url("/old/url/x")], capture_output=True,
                                   text=True, timeout=20)
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stdout.splitlines()
        self.assertEqual(lines[0], "307 POST %s (method and body kept)" % srv.url("/old/url/x"))
        self.assertEqual(lines[1], "404 POST %s (final)" % srv.url("/new/url"))
        self.assertIn("send POST again to %s? yes" % srv.url("/new/url"), p.stderr)


if __name__ == "__main__":
    unittest.main()
