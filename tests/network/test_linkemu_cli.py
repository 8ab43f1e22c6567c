"""linkemu's command line: a bad flag is one line on stderr and exit 2 (no root needed)."""

import subprocess
import sys
import unittest

from network_testlib import build_dir

LINKEMU = str(build_dir() / "bin" / "linkemu")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([LINKEMU, *args], capture_output=True, text=True, timeout=10)


class LinkemuFlags(unittest.TestCase):
    def assert_usage_error(self, *args: str, mentions: str) -> None:
        result = run(*args)
        self.assertEqual(result.returncode, 2, result)
        self.assertEqual(len(result.stderr.splitlines()), 1, result.stderr)
        self.assertIn(mentions, result.stderr)
        self.assertEqual(result.stdout, "")

    def test_unknown_flag(self):
        self.assert_usage_error("--a", "x", "--b", "y", "--bogus", "1", mentions="--bogus")

    def test_missing_interfaces(self):
        self.assert_usage_error("--delay-ms", "5", mentions="--a IF and --b IF")

    def test_bad_numbers(self):
        for flag, value in (("--delay-ms", "abc"), ("--delay-ms", "-1"), ("--loss-pct", "101"),
                            ("--jitter-ms", "nan"), ("--queue-frames", "0"), ("--seed", "x"),
                            ("--exit-with", "0")):
            with self.subTest(flag=flag, value=value):
                self.assert_usage_error("--a", "x", "--b", "y", flag, value, mentions=flag)

    def test_missing_value(self):
        self.assert_usage_error("--a", "x", "--b", mentions="missing value for --b")

    def test_same_interface_twice(self):
        self.assert_usage_error("--a", "x", "--b", "x", mentions="two different")

    def test_unknown_interface(self):
        self.assert_usage_error("--a", "sbnosuch0", "--b", "sbnosuch1", mentions="sbnosuch0")

    def test_help(self):
        result = run("--help")
        self.assertEqual(result.returncode, 0)
        self.assertIn("--delay-ms", result.stdout)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
