"""The examples in docs/rules.md are true: each ```rules block is loaded into a real
server and each row of the table after it is requested (S1, S7, S8 and the precedence)."""
import os
import re
import unittest
import urllib.parse

from harness import ROOT, Server, exchange, request

DOC = os.path.join(ROOT, "docs", "rules.md")


def examples(text):
    """Yields (rules, rows) for each ```rules block; rows are (url, status, location)."""
    for m in re.finditer(r"```rules\n(.*?)```\n", text, re.S):
        rows = []
        rest = text[m.end():].lstrip("\n").splitlines()
        for line in rest:
            if not line.startswith("|"):
                break
            cells = [c.strip() for c in line.strip("|").split("|")]
            if cells[0] in ("request", "---"):
                continue
            url = cells[0].strip("`")
            rows.append((url, int(cells[1]), cells[2].strip("`") or None))
        yield m.group(1), rows


class DocExamples(unittest.TestCase):
    def test_every_example(self):
        with open(DOC, encoding="utf-8") as f:
            found = list(examples(f.read()))
        self.assertGreaterEqual(len(found), 4, "docs/rules.md lost its examples")
        for rules, rows in found:
            self.assertTrue(rows, "a rules block without a table:\n" + rules)
            with Server(rules) as srv:
                for url, status, location in rows:
                    with self.subTest(url=url):
                        u = urllib.parse.urlsplit(url)
                        target = u.path + ("?" + u.query if u.query else "")
                        (resp,), _ = exchange(srv, request("GET", target, host=u.netloc))
                        self.assertEqual(resp.status, status)
                        self.assertEqual(resp.header("Location"), location)


class LintDocExample(unittest.TestCase):
    def test_lint_example(self):
        """docs/lint.md: its rules give exactly the findings shown."""
        import subprocess
        import tempfile
        from harness import DETOUR
        with open(os.path.join(ROOT, "docs", "lint.md"), encoding="utf-8") as f:
            text = f.read()
        rules = re.search(r"```rules\n(.*?)```", text, re.S).group(1)
        want = re.search(r"```lint\n(.*?)```", text, re.S).group(1).splitlines()
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "rules.txt"), "w") as f:
                f.write(rules)
            p = subprocess.run([DETOUR, "lint", "--now", "2026-11-24T00:00:00Z", "rules.txt"],
                               cwd=tmp, capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stdout.splitlines(), want)


if __name__ == "__main__":
    unittest.main()
