#!/usr/bin/env python3
"""A short soak through the driver, on the real binaries of a build tree: two models that do not
leak are judged flat, and the epoll model leaking one descriptor per 1000 connections through the
leak shim (tools/leak_shim/) is judged to grow, naming the descriptors; loadgen's own memory is
flat in every soak. About three minutes: the soak profile at --soak-minutes 0.5 (30 s of load, a
drain and a 10 s reload per model).

usage: test_soak.py BUILD_DIR
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.path.abspath(sys.argv.pop(1) if len(sys.argv) > 1 else os.path.join(ROOT, "build"))
SHIM = os.path.join(BUILD, "lib", "libleakshim.so")
MINUTES = "0.5"
LEAKY = f"""name = "leaky"
counterpart = "epoll"
about = "epoll leaking a descriptor per 1000 connections"
command = ["env", "LD_PRELOAD={SHIM}", "LEAKSHIM_FD_EVERY=1000", "{BUILD}/bin/server-epoll",
           "--host", "{{{{address}}}}", "--port", "{{{{port}}}}"]
scenarios = ["soak"]
"""


def soak(out, models, server_file):
    return subprocess.run([os.path.join(ROOT, "run_all.sh"), "--profile", "soak", "--soak-minutes", MINUTES,
                           "--models", models, "--server-file", server_file, "--no-build", "--build-dir", BUILD,
                           "--no-microbench", "--no-plots", "--out", out], capture_output=True, text=True, timeout=400)


class ShortSoak(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.access(SHIM, os.R_OK) or not os.access(os.path.join(BUILD, "bin", "loadgen"), os.X_OK):
            raise unittest.SkipTest(f"no {SHIM} or loadgen: build first")
        cls.tmp = tempfile.mkdtemp(prefix="serverbench-soak-")
        leaky = os.path.join(cls.tmp, "leaky.toml")
        with open(leaky, "w") as f:
            f.write(LEAKY)
        started = time.monotonic()
        cls.run_result = soak(os.path.join(cls.tmp, "run"), "epoll,thread-pool,leaky", leaky)
        cls.took = time.monotonic() - started
        with open(os.path.join(cls.tmp, "run", "soak.json")) as f:
            cls.doc = json.load(f)
        cls.records = {r["model"]: r for r in cls.doc["records"]}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_the_run_ends_well(self):
        self.assertEqual(self.run_result.returncode, 0, self.run_result.stderr[-3000:])
        self.assertEqual(set(self.records), {"epoll", "thread-pool", "leaky"})
        self.assertLess(self.took, 200)

    def test_the_models_that_do_not_leak_are_flat(self):
        for model in ("epoll", "thread-pool"):
            v = self.records[model]["verdict"]
            self.assertEqual(v["verdict"], "flat", (model, json.dumps(v, indent=1)))

    def test_the_leaking_server_grows_and_names_its_descriptors(self):
        v = self.records["leaky"]["verdict"]
        self.assertEqual(v["verdict"], "grows", json.dumps(v, indent=1))
        self.assertEqual(v["grew"], ["descriptors"])
        self.assertGreater(v["descriptors"]["after_drain"], v["descriptors"]["before"] + 2)

    def test_loadgen_holds_still(self):
        for model, record in self.records.items():
            self.assertEqual(record["verdict"]["loadgen"]["verdict"], "flat", model)

    def test_the_load_was_served_and_sampled(self):
        for model, record in self.records.items():
            self.assertTrue(record["load_held"], model)
            soak_samples = [s for s in record["samples"] if s["phase"] == "soak"]
            self.assertGreaterEqual(len(soak_samples), 12, model)
            clients = record["load"]["soak"]["clients"]
            self.assertGreater(clients["waves"]["opened"], 0, model)
            for kind, tally in clients["bad"].items():
                self.assertGreater(tally["as_expected"], 0, (model, kind))
                self.assertEqual(tally["unexpected"], 0, (model, kind))


if __name__ == "__main__":
    unittest.main()
