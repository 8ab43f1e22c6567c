"""Nothing of a Link outlives it: context exit, a creator killed outright (then cleanup_leftovers),
a live owner's link left alone, and the one-line refusal without the rights."""

import os
import signal
import subprocess
import textwrap
import time
import unittest

from network_testlib import PYTHON, ROOT, build_dir, linkemu_pids_for, links, namespaces, netns_names, run_tests_as_root


def remains(prefix: str) -> dict:
    """What of the run named prefix still exists: namespaces, root links, linkemu processes, state."""
    return {"namespaces": [n for n in netns_names() if n.startswith(prefix)],
            "links": [n for n in links() if n.startswith(prefix)],
            "linkemu": linkemu_pids_for(prefix),
            "state": (namespaces.STATE_ROOT / prefix).exists()}


NOTHING = {"namespaces": [], "links": [], "linkemu": [], "state": False}

# A driver that makes a wan link, starts a process inside it, says so, and waits to be killed.
CREATOR = textwrap.dedent("""
    import subprocess, sys, time
    sys.path.insert(0, sys.argv[1])
    from serverbench import namespaces
    try:
        with namespaces.Link("wan", rtt_ms=4, emulator="linkemu") as link:
            sleeper = subprocess.Popen(link.server_cmd(["sleep", "60"]))
            print(link.name, sleeper.pid, flush=True)
            time.sleep(60)
    except KeyboardInterrupt:
        sys.exit(130)
""")


def start_creator() -> tuple[subprocess.Popen, str, int]:
    creator = subprocess.Popen([PYTHON, "-c", CREATOR, str(ROOT)], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "SERVERBENCH_LINKEMU": str(build_dir() / "bin" / "linkemu")})
    line = creator.stdout.readline().split()
    creator.stdout.close()
    if len(line) != 2:
        creator.kill()
        creator.wait()
        raise AssertionError("the creator did not make its link")
    return creator, line[0], int(line[1])


def wait_until(predicate, timeout_s: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


class Cleanup(unittest.TestCase):
    def test_context_exit_removes_everything(self):
        for kind, kwargs in (("veth", {}), ("wan", {"rtt_ms": 2, "emulator": "linkemu"})):
            with self.subTest(kind=kind):
                with namespaces.Link(kind, **kwargs) as link:
                    sleeper = subprocess.Popen(link.server_cmd(["sleep", "60"]))
                    self.assertEqual(len(remains(link.name)["namespaces"]), 3 if kind == "wan" else 2)
                sleeper.wait(timeout=5)  # ended by close(): it was left in the server namespace
                self.assertEqual(remains(link.name), NOTHING)

    def test_exception_inside_the_context(self):
        with self.assertRaises(KeyError):
            with namespaces.Link("wan", rtt_ms=2, emulator="linkemu") as link:
                raise KeyError("boom")
        self.assertEqual(remains(link.name), NOTHING)

    def test_killed_creator_then_cleanup_leftovers(self):
        creator, name, sleeper = start_creator()
        try:
            self.assertEqual(len(remains(name)["namespaces"]), 3)
        finally:
            creator.kill()
            creator.wait()
        # linkemu --exit-with ends with its owner; the namespaces outlive it.
        self.assertTrue(wait_until(lambda: not remains(name)["linkemu"]))
        left = remains(name)
        self.assertEqual(len(left["namespaces"]), 3)
        removed = namespaces.cleanup_leftovers()
        self.assertTrue(set(left["namespaces"]) <= set(removed), removed)
        self.assertEqual(remains(name), NOTHING)
        self.assertTrue(wait_until(lambda: is_zombie(sleeper)))

    def test_interrupted_creator_cleans_up_itself(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            with self.subTest(signal=sig.name):
                creator, name, sleeper = start_creator()
                try:
                    creator.send_signal(sig)
                    creator.wait(timeout=10)
                finally:
                    if creator.poll() is None:
                        creator.kill()
                        creator.wait()
                if sig == signal.SIGTERM:
                    # Python's default SIGTERM runs no cleanup: that is what cleanup_leftovers is for.
                    namespaces.cleanup_leftovers()
                self.assertEqual(remains(name), NOTHING)
                self.assertTrue(wait_until(lambda: is_zombie(sleeper)))

    def test_cleanup_kills_an_emulator_of_a_dead_owner(self):
        """A linkemu started without --exit-with, in a namespace named for an owner that is gone."""
        gone = subprocess.Popen(["true"])
        gone.wait()
        name = f"sb{gone.pid}x0"
        subprocess.run(["ip", "netns", "add", f"{name}-emu"], check=True)
        try:
            subprocess.run(["ip", "link", "add", f"{name}a", "netns", f"{name}-emu", "type", "veth", "peer",
                            "name", f"{name}b", "netns", f"{name}-emu"], check=True)
            for end in "ab":
                subprocess.run(["ip", "-n", f"{name}-emu", "link", "set", f"{name}{end}", "up"], check=True)
            emulator = subprocess.Popen(namespaces.netns_exec(f"{name}-emu", [
                str(build_dir() / "bin" / "linkemu"), "--a", f"{name}a", "--b", f"{name}b"]),
                stdout=subprocess.PIPE, text=True)
            self.assertIn("linkemu ready", emulator.stdout.readline())
            removed = namespaces.cleanup_leftovers()
            self.assertIn(f"linkemu:{emulator.pid}", removed)
            self.assertIn(f"{name}-emu", removed)
            emulator.wait(timeout=5)
            emulator.stdout.close()
        finally:
            subprocess.run(["ip", "netns", "del", f"{name}-emu"], capture_output=True)
        self.assertEqual(remains(name), NOTHING)

    def test_cleanup_leaves_a_live_owners_link_alone(self):
        with namespaces.Link("wan", rtt_ms=2, emulator="linkemu") as link:
            namespaces.cleanup_leftovers()
            self.assertEqual(len(remains(link.name)["namespaces"]), 3)
            self.assertEqual(len(remains(link.name)["linkemu"]), 1)
            self.assertIn("schema", link.emulator_stats())

    def test_without_net_admin_one_line(self):
        code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from serverbench import namespaces; namespaces.require_net_admin()"
        result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                                 PYTHON, "-c", code], capture_output=True, text=True, timeout=30)
        self.assertNotEqual(result.returncode, 0)
        last = result.stderr.strip().splitlines()[-1]
        self.assertIn("NetAdminRequired: --net veth|wan needs root", last)
        # What a driver does with it: one line, exit 2.
        result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                                 PYTHON, "-m", "serverbench.namespaces", "check"], capture_output=True, text=True,
                                timeout=30, cwd=ROOT)
        self.assertEqual(result.returncode, 2)
        self.assertEqual(len(result.stderr.splitlines()), 1, result.stderr)
        self.assertTrue(result.stderr.startswith("serverbench: --net veth|wan needs root"), result.stderr)


def is_zombie(pid: int) -> bool:
    """Gone, or ended and not yet reaped by its parent (a test's own child)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


if __name__ == "__main__":
    run_tests_as_root()
