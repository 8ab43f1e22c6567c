#!/usr/bin/env python3
"""The documentation against the code, so that a changed default or a new flag fails here until
the docs follow:

* the profile table of docs/running.md against serverbench/scenarios.py's PROFILES (points,
  duration and warm-up, repeats, counting window, A/B trials, capacity sweeps), and
  docs/capacity.md's table of the sweeps against CAPACITY_PLANS;
* the scenario tables of README.md and docs/running.md against SCENARIOS;
* the flag table of docs/running.md against run_all.sh's parser (serverbench/cli.py);
* the server and loadgen flag tables of docs/contract.md against the binaries' --help, and each
  model's own defaults against its --help (skipped, with a message, when the build is absent);
* the claims of docs/contract.md against plots/claims.py;
* links and anchors between the docs, and the paths they name;
* nothing in the repository refers to a file outside it.

usage: test_docs.py [BUILD_DIR] (default build/; its bin/ holds the binaries).
"""
import glob
import os
import re
import subprocess
import sys
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from serverbench import scenarios as sc  # noqa: E402  (the repository root is put on the path above)

BIN = os.path.join(os.path.abspath(sys.argv.pop(1) if len(sys.argv) > 1 else os.path.join(ROOT, "build")), "bin")
DOCS = ["README.md"] + sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))


def read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def section(text, heading):
    """The text under a heading (e.g. '## The servers') up to the next heading of its level."""
    level = heading.split(" ")[0]
    start = text.index(heading + "\n")
    rest = text[start + len(heading) + 1:]
    end = re.search(rf"^{level} ", rest, re.M)
    return rest[:end.start()] if end else rest


def split_row(line):
    """The cells of a Markdown table row; an escaped pipe (\\|) stays inside its cell."""
    line = line.strip()
    line = line[1:] if line.startswith("|") else line
    line = line[:-1] if line.endswith("|") and not line.endswith("\\|") else line
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)]


def tables(text):
    """[(header cells, [row cells])] of every table in text, outside code blocks."""
    out, lines, i, fenced = [], text.splitlines(), 0, False
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            fenced = not fenced
        elif (not fenced and line.startswith("|") and i + 1 < len(lines)
              and re.match(r"^\|[\s:|-]+\|$", lines[i + 1].strip())):
            header, rows, i = split_row(line), [], i + 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(split_row(lines[i]))
                i += 1
            out.append((header, rows))
            continue
        i += 1
    return out


def table_with(text, *header):
    """The one table whose header starts with these cells."""
    found = [t for t in tables(text) if tuple(c.lower() for c in t[0][:len(header)]) == header]
    assert len(found) == 1, f"expected one table with header {header}, found {len(found)}"
    return found[0]


def plain(cell):
    return cell.replace("`", "").strip()


def seconds(text):
    """'500 ms', '1500ms', '4 s', '1s' -> seconds."""
    m = re.fullmatch(r"\s*([\d.]+)\s*(ms|s)\s*", text)
    assert m, f"not a duration: {text!r}"
    return float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)


def numbers_after(label, text):
    """The comma-separated numbers that follow `label ` in text, e.g. 'keep-alive 1, 10, 50'."""
    m = re.search(rf"(?<![\w-]){re.escape(label)} (\d+(?:, \d+)*)", text)
    return tuple(int(n) for n in m.group(1).split(", ")) if m else None


def mentions(name, text):
    return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text) is not None


def backticked_names(cell):
    return re.findall(r"`([^`\s]+)`", cell)


class Profiles(unittest.TestCase):
    """docs/running.md's profile table is PROFILES, row by row."""

    def setUp(self):
        _, rows = table_with(section(read("docs/running.md"), "### Profiles"), "profile")
        self.rows = {plain(r[0]): r for r in rows}

    def test_every_visible_profile_has_a_row(self):
        visible = {p.name for p in sc.PROFILES.values() if not p.hidden}
        self.assertEqual(set(self.rows), visible, "profiles in the table vs PROFILES (hidden ones excluded)")

    def test_each_row_matches_its_profile(self):
        for name, row in self.rows.items():
            p = sc.PROFILES[name]
            if set(p.scenarios) <= sc.OWN_RUNNERS and p.scenarios:
                self.assertEqual(row[2:7], ["–"] * 5, f"{name}: no matrix points, so no timings")
                continue
            with self.subTest(profile=name):
                points, timing, repeats, counting, trials = row[1], row[2], row[3], row[4], row[5]
                duration, warmup = re.fullmatch(r"(.+?) \((.+)\)", timing).groups()
                self.assertEqual(seconds(duration), seconds(p.duration), "duration")
                self.assertEqual(seconds(warmup), seconds(p.warmup), "warm-up")
                self.assertEqual(int(repeats), p.repeat, "repeats")
                window, count_warmup = re.fullmatch(r"(.+?) \((.+)\)", counting).groups()
                self.assertEqual(seconds(window), seconds(p.count_duration), "counting window")
                self.assertEqual(seconds(count_warmup), seconds(p.count_warmup), "counting warm-up")
                timed, counted = re.fullmatch(r"(\d+)(?: \(counting: (\d+)\))?", trials).groups()
                self.assertEqual(int(timed), p.ab_trials, "A/B trials per side")
                self.assertEqual(int(counted or timed), p.count_trials(p.ab_trials), "A/B counting trials")
                self.assertEqual(seconds(row[6]), seconds(p.timeout), "request timeout")
                runs = sc.default_scenarios(p, "loopback")
                for label, values, scenario in (("keep-alive", p.keepalive_conns, "http-keepalive"),
                                                ("close", p.close_conns, "http-close"),
                                                ("idle", p.idle_counts, "idle-conns")):
                    if scenario in runs:
                        self.assertEqual(numbers_after(label, points), tuple(values), f"{label} points")
                plan = p.capacity.scenarios if p.capacity else ()
                for c in sc.CAPACITY_SCENARIOS:
                    self.assertEqual(mentions(c, points), c in plan, f"capacity sweep {c}")


class CapacityProfiles(unittest.TestCase):
    """docs/capacity.md's table of the sweeps per profile is CAPACITY_PLANS."""

    def test_each_row_matches_its_plan(self):
        _, rows = table_with(section(read("docs/capacity.md"), "## Profiles and budgets"), "profile")
        visible = {p.name for p in sc.PROFILES.values() if not p.hidden and p.capacity}
        self.assertEqual({plain(r[0]) for r in rows}, visible, "profiles with capacity sweeps")
        for row in rows:
            plan = sc.PROFILES[plain(row[0])].capacity
            with self.subTest(profile=plain(row[0])):
                m = re.fullmatch(r"(.+?) \((.+?)\), up to (.+?)(?: at low rates)?", row[2])
                self.assertTrue(m, f"step cell {row[2]!r}")
                self.assertEqual(seconds(m.group(1)), seconds(plan.duration), "step")
                self.assertEqual(seconds(m.group(2)), seconds(plan.warmup), "step warm-up")
                self.assertEqual(seconds(m.group(3)), seconds(plan.max_duration), "longest step")
                self.assertEqual(int(row[3]), plan.repeats, "repeats")
                self.assertEqual(float(row[4]), plan.resolution, "resolution")
                self.assertEqual(int(row[5]), plan.max_steps, "max steps")
                for c in sc.CAPACITY_SCENARIOS:
                    if plan.scenarios and c in plan.scenarios:
                        self.assertTrue(mentions(c, row[1]) or "all three" in row[1], f"sweep {c}")


class Scenarios(unittest.TestCase):
    """The scenario tables name every scenario of scenarios.py, and no other."""

    def check(self, rel, heading=None):
        text = read(rel)
        _, rows = table_with(section(text, heading) if heading else text, "scenario")
        named = [n for r in rows for n in backticked_names(r[0])]
        self.assertEqual(len(named), len(set(named)), f"{rel}: a scenario listed twice")
        self.assertEqual(set(named), set(sc.SCENARIO_NAMES), f"{rel}: scenario table vs scenarios.py")

    def test_readme(self):
        self.check("README.md")

    def test_running(self):
        self.check("docs/running.md", "### Scenarios, and the claim each one tests")


class RunAllFlags(unittest.TestCase):
    """docs/running.md's flag table documents every flag of run_all.sh, and only those."""

    def test_flags(self):
        try:
            from serverbench.cli import build_parser
        except ImportError as e:  # the driver needs Debian's python3-numpy/scipy/matplotlib
            self.skipTest(f"cannot import the driver: {e}")
        parser_flags = {o for a in build_parser()._actions for o in a.option_strings if o.startswith("--")}
        _, rows = table_with(read("docs/running.md"), "flag")
        documented = {f for r in rows for cell in r for f in re.findall(r"--[a-z][a-z0-9-]*", cell)}
        self.assertEqual(sorted(parser_flags - documented), [], "flags of run_all.sh missing from the table")
        self.assertEqual(sorted(documented - parser_flags), [], "documented flags run_all.sh does not have")


def help_of(binary):
    """(text, {flag: (value name, help)}) of a binary's --help."""
    text = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10).stdout
    flags = {}
    for line in text.splitlines():
        m = re.match(r"^\s+(?:-\w,)?(--[\w-]+)(?: (\S.*?))?(?:\s{2,}(.*))?$", line)
        if m:
            flags[m.group(1)] = (m.group(2) or "", m.group(3) or "")
    return text, flags


def help_default(help_text):
    m = re.search(r"default:? ([^;),]+)", help_text)
    return m.group(1).strip() if m else None


def need_binary(test, name):
    path = os.path.join(BIN, name)
    if not os.access(path, os.X_OK):
        print(f"test_docs: {path} not built: its --help is not compared with docs/contract.md", file=sys.stderr)
        test.skipTest(f"{path} not built")
    return path


class ServerFlags(unittest.TestCase):
    """docs/contract.md's server flags are the ones server-epoll's --help lists, with its defaults."""

    def setUp(self):
        self.servers = section(read("docs/contract.md"), "## The servers")

    def test_flag_table(self):
        _, flags = help_of(need_binary(self, "server-epoll"))
        _, rows = table_with(self.servers, "flag", "value", "default", "meaning")
        documented = {}
        for r in rows:
            for f in re.findall(r"--[a-z][a-z0-9-]*", r[0]):
                documented[f] = r
        self.assertEqual(sorted(set(flags) - set(documented)), [], "server flags missing from contract.md")
        self.assertEqual(sorted(set(documented) - set(flags)), [], "documented server flags that do not exist")
        for flag, (value, text) in flags.items():
            with self.subTest(flag=flag):
                row = documented[flag]
                self.assertEqual(plain(row[1]), value, "value name")
                default = help_default(text)
                if default:
                    self.assertIn(default, plain(row[2]), "default")

    def test_each_models_defaults(self):
        _, rows = table_with(self.servers, "model")
        table = {plain(r[0]): (plain(r[1]).split(" ")[0], plain(r[2])) for r in rows}
        self.assertEqual(set(table), set(sc.MODEL_ORDER), "models in contract.md vs scenarios.MODEL_ORDER")
        need_binary(self, "server-epoll")
        built = sorted(os.path.basename(p)[len("server-"):] for p in glob.glob(os.path.join(BIN, "server-*")))
        cpus = str(len(os.sched_getaffinity(0)))
        for model in built:
            with self.subTest(model=model):
                self.assertIn(model, table, "a built model without a row in contract.md")
                text, _ = help_of(os.path.join(BIN, f"server-{model}"))
                workers = re.search(r"--workers defaults to (\d+)", text)
                max_conns = re.search(r"--max-conns defaults to (\d+)", text).group(1)
                doc_workers, doc_max = table[model]
                expected = "none" if workers is None else workers.group(1)
                self.assertEqual(cpus if doc_workers == "CPUs" else doc_workers, expected, "--workers default")
                self.assertEqual(doc_max, max_conns, "--max-conns default")


class LoadgenFlags(unittest.TestCase):
    """docs/contract.md's loadgen flags are the ones loadgen --help lists, with its defaults."""

    def test_flag_table(self):
        _, flags = help_of(need_binary(self, "loadgen"))
        _, rows = table_with(section(read("docs/contract.md"), "## The load generator"), "flag", "default")
        documented = {}
        for r in rows:
            for f in re.findall(r"--[a-z][a-z0-9-]*", r[0]):
                documented[f] = r
        self.assertEqual(sorted(set(flags) - set(documented)), [], "loadgen flags missing from contract.md")
        self.assertEqual(sorted(set(documented) - set(flags)), [], "documented loadgen flags that do not exist")
        for flag, (_, text) in flags.items():
            default = help_default(text)
            if default:
                with self.subTest(flag=flag):
                    self.assertIn(default, plain(documented[flag][1]), "default")


class Claims(unittest.TestCase):
    """docs/contract.md lists the claims of plots/claims.py, in order, where each is measured."""

    def test_claims(self):
        try:
            from plots.claims import CLAIMS
        except ImportError as e:
            self.skipTest(f"cannot import plots.claims: {e}")
        _, rows = table_with(section(read("docs/contract.md"), "## The claims the suite tests"), "claim")
        self.assertEqual([(r[0], r[1]) for r in rows], [(claim, where) for claim, where, _ in CLAIMS])


def slug(heading):
    """A heading's anchor, as GitHub makes it."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(rel):
    out, fenced = set(), False
    for line in read(rel).splitlines():
        if line.startswith("```"):
            fenced = not fenced
        m = re.match(r"#+ (.*)", line)
        if m and not fenced:
            out.add(slug(m.group(1)))
    return out


class Links(unittest.TestCase):
    """Every link between the docs reaches a file and a heading; every path they name exists."""

    def test_links_and_anchors(self):
        for rel in DOCS:
            for target in re.findall(r"\]\(([^)\s]+)\)", read(rel)):
                if re.match(r"[a-z]+:", target):
                    continue
                path, _, anchor = target.partition("#")
                dest = os.path.normpath(os.path.join(os.path.dirname(rel), path)) if path else rel
                with self.subTest(doc=rel, link=target):
                    self.assertTrue(os.path.exists(os.path.join(ROOT, dest)), "no such file")
                    if anchor and dest.endswith(".md"):
                        self.assertIn(anchor, anchors(dest), "no such heading")

    def test_named_paths_exist(self):
        top = "tests|serverbench|plots|servers|loadgen|tools|bench|fuzz|linkemu|common|docs|\\.ci|results/baseline"
        for rel in DOCS:
            for path in re.findall(rf"`((?:{top})/[^`\s]*)`", read(rel)):
                if any(c in path for c in "<>*{}$"):
                    continue
                with self.subTest(doc=rel, path=path):
                    full = os.path.join(ROOT, path.rstrip("/"))
                    self.assertTrue(os.path.exists(full) or glob.glob(full + ".*"), "no such file")


def repository_files():
    """Tracked and untracked files, without what git ignores (build trees, run folders)."""
    try:
        out = subprocess.run(["git", "-C", ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             capture_output=True, check=True).stdout.decode()
        return sorted({f for f in out.split("\0") if f})
    except (OSError, subprocess.CalledProcessError):
        return sorted(os.path.relpath(os.path.join(d, f), ROOT) for d, dirs, files in os.walk(ROOT)
                      for f in files if not any(p == ".git" or p.startswith("build") for p in
                                                os.path.relpath(d, ROOT).split(os.sep)))


class NothingOutside(unittest.TestCase):
    """No file refers to the team's notes outside the repository: the contract is docs/contract.md."""

    NEEDLES = (".." + "/shared", "DESIGN" + ".md")

    def test_no_reference_outside(self):
        found = []
        for rel in repository_files():
            path = os.path.join(ROOT, rel)
            if not os.path.isfile(path):
                continue
            with open(path, "rb") as f:
                data = f.read()
            found += [f"{rel}: {n}" for n in self.NEEDLES if n.encode() in data]
        self.assertEqual(found, [], "refer to docs/contract.md (or a section of it) instead")


if __name__ == "__main__":
    unittest.main()
