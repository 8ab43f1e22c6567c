#!/usr/bin/env python3
"""The README's headline table is what `python3 -m plots.headline results/baseline` prints from
the committed reference run, with no hand edits."""
import os
import sys
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
try:
    from plots.headline import headline_table
    from plots.run_results import load_run
except ImportError as e:  # SciPy missing: the statistics module is imported on the way
    print(f"skipped: {e}")
    sys.exit(77)


class Headline(unittest.TestCase):
    def test_the_readme_shows_the_reference_run_s_table(self):
        table = "\n".join(headline_table(load_run(os.path.join(ROOT, "results", "baseline"))))
        with open(os.path.join(ROOT, "README.md")) as f:
            readme = f.read()
        self.assertIn(table + "\n", readme)

    def test_a_flagged_point_says_why(self):
        lines = headline_table(load_run(os.path.join(ROOT, "results", "baseline")))
        self.assertEqual(len(lines), 2 + 12)
        self.assertTrue(any("⚠" in line for line in lines))


if __name__ == "__main__":
    unittest.main()
