"""GET /metrics: the Prometheus text format (version 0.0.4) as a scraper reads it, and every
family it exposes documented in docs/operations.md (the alerting table)."""
import os
import re
import unittest

from harness import ROOT, Server

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE = re.compile(r"^(%s)(\{(.*)\})? (\S+)$" % NAME)
LABEL = re.compile(r'^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')


def families(text):
    """name -> (type, help, [(labels dict, value)]), checking the format as it goes."""
    out, current = {}, None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert re.fullmatch(NAME, name), line
            assert name not in out, "family %s twice" % name
            out[name] = [None, help_text, []]
            current = name
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert name == current, "TYPE %s not after its HELP" % name
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped"), line
            out[name][0] = kind
        else:
            m = SAMPLE.match(line)
            assert m, "not a sample: %r" % line
            name, labels_text, value = m.group(1), m.group(3) or "", m.group(4)
            base = re.sub(r"_(bucket|sum|count)$", "", name) \
                if out.get(current, [None])[0] == "histogram" else name
            assert base == current, "sample %s outside its family %s" % (name, current)
            labels = {}
            while labels_text:
                lm = LABEL.match(labels_text)
                assert lm, "bad labels in %r" % line
                labels[lm.group(1)] = lm.group(2)
                labels_text = labels_text[lm.end():]
            float(value)  # a number, +Inf or NaN
            out[current][2].append((labels, value))
    return out


class Metrics(unittest.TestCase):
    def test_format_and_documentation(self):
        with Server("/a /b\n", tls=True) as srv:
            srv.api("POST", "/api/rules", {"source": "/s", "target": "/t"})
            st, _, body = srv.api("GET", "/metrics", raw=True)
            self.assertEqual(st, 200)
            fams = families(body.decode())
        self.assertGreater(len(fams), 20)
        with open(os.path.join(ROOT, "docs", "operations.md"), encoding="utf-8") as f:
            doc = f.read()
        for name, (kind, help_text, samples) in fams.items():
            self.assertIsNotNone(kind, "%s has no TYPE" % name)
            self.assertTrue(help_text, "%s has no HELP text" % name)
            # a HELP text is prose: no C identifier or format directive leaked into it
            self.assertNotRegex(help_text, r"\bdt_|%[a-z]", name)
            self.assertIn("`%s" % name, doc, "%s is not in docs/operations.md" % name)
            if kind == "histogram":
                buckets = [float(v) for lab, v in samples if "le" in lab]
                self.assertEqual(buckets, sorted(buckets), "%s buckets not cumulative" % name)


if __name__ == "__main__":
    unittest.main()
