#!/usr/bin/env python3
"""Bad server files (docs/contract.md#server-files): each is one line naming the file and the
field, exit code 2, and nothing runs. Runs no server, so it needs no machine lock.

usage: test_server_file_input.py BUILD_DIR (the build tree the driver is pointed at)."""
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.path.abspath(sys.argv.pop(1) if len(sys.argv) > 1 else os.path.join(ROOT, "build"))


def run_all(*args, timeout=60):
    return subprocess.run([os.path.join(ROOT, "run_all.sh"), "--no-build", "--build-dir", BUILD, "--no-microbench",
                           "--no-plots", *args], capture_output=True, text=True, timeout=timeout)


class BadInput(unittest.TestCase):
    GOOD = 'name = "odd"\ncommand = ["sleep", "30"]\n'
    CASES = {
        "missing field": ('command = ["sleep", "30"]\n', "name"),
        "unknown field": (GOOD + 'colour = "red"\n', "colour"),
        "unknown placeholder": ('name = "odd"\ncommand = ["sleep", "{{seconds}}"]\n', "command"),
        "not installed": ('name = "odd"\ncommand = ["no-such-server-binary"]\n', "command"),
        "wrong type": ('name = "odd"\ncommand = "sleep 30"\n', "command"),
        "log readiness without its line": (GOOD + 'ready = "log"\n', "ready_log"),
        "readiness longer than the driver waits": (GOOD + 'ready_timeout_s = 30\n', "ready_timeout_s"),
        "scenario it cannot serve": (GOOD + 'scenarios = ["echo"]\n', "scenarios"),
        "not TOML": ("name = \n", "not TOML"),
    }

    def test_each_case_is_one_line_naming_file_and_field_and_exit_2(self):
        with tempfile.TemporaryDirectory() as tmp:
            for case, (text, field) in self.CASES.items():
                with self.subTest(case):
                    path = os.path.join(tmp, "odd.toml")
                    with open(path, "w") as f:
                        f.write(text)
                    out = os.path.join(tmp, "run")
                    proc = run_all("--profile", "smoke", "--server-file", path, "--out", out)
                    self.assertEqual(proc.returncode, 2, proc.stderr)
                    lines = proc.stderr.strip().splitlines()
                    self.assertEqual(len(lines), 1, proc.stderr)
                    self.assertIn(path, lines[0])
                    self.assertIn(field, lines[0])
                    self.assertFalse(os.path.exists(out), "nothing runs after a bad server file")


if __name__ == "__main__":
    unittest.main(verbosity=2)
