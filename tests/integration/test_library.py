"""The client library exports exactly the API its header declares (C8 included), and
nothing of the internals: -fvisibility=hidden at work."""
import os
import re
import shutil
import subprocess
import unittest

from harness import DETOUR, ROOT

HEADER = os.path.join(ROOT, "include", "detour", "client.h")
LIBRARY = os.path.join(os.path.dirname(DETOUR), "libdetour-client.so")


class Exports(unittest.TestCase):
    @unittest.skipUnless(shutil.which("nm"), "nm not installed")
    def test_exports_are_the_header_api(self):
        with open(HEADER) as f:
            text = f.read()
        declared = set(re.findall(r"DETOUR_API[^;(]*?\b(dt_client_\w+)\s*\(", text, re.S))
        self.assertIn("dt_client_fetch", declared)
        out = subprocess.run(["nm", "-D", "--defined-only", LIBRARY], capture_output=True,
                             text=True, check=True).stdout
        exported = {line.split()[-1] for line in out.splitlines() if line.strip()}
        exported = {s for s in exported if not s.startswith("_")}
        self.assertEqual(exported, declared)

    def test_c8_constant_in_header(self):
        """C8: the API names 307 TEMPORARY_REDIRECT."""
        with open(HEADER) as f:
            self.assertRegex(f.read(), r"DETOUR_TEMPORARY_REDIRECT\s*=\s*307")


if __name__ == "__main__":
    unittest.main()
