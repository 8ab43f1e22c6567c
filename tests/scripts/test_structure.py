#!/usr/bin/env python3
"""The driver's house rules, read from its source: no module of serverbench/ or plots/ imports one
that imports it back (imports inside functions included), no file over 500 lines, no sys.path
tricks and no noqa on imports there, and a run's settings read by attribute only."""
import ast
import os
import re
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGES = ("serverbench", "plots")
MAX_LINES = 500


def read(path):
    with open(path) as f:
        return f.read()


def sources():
    """{module name: path} of every module of the driver's packages."""
    out = {}
    for package in PACKAGES:
        folder = os.path.join(ROOT, package)
        for name in sorted(os.listdir(folder)):
            if name.endswith(".py"):
                module = package if name == "__init__.py" else f"{package}.{name[:-3]}"
                out[module] = os.path.join(folder, name)
    return out


def imported_modules(module, path, known):
    """The driver's modules that `module` imports anywhere in its file, resolved to their names."""
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(read(path), path)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if m in known and m != module}


def cycles(graph):
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


class HouseRules(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sources = sources()

    def test_no_module_imports_one_that_imports_it_back(self):
        graph = {m: imported_modules(m, p, self.sources) for m, p in self.sources.items()}
        self.assertTrue(any(graph.values()), "the import graph is empty: the reader is broken")
        self.assertEqual(cycles(graph), [])

    def test_the_cycle_finder_finds_a_cycle(self):
        self.assertEqual(cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}), [["a", "b", "c"]])
        self.assertEqual(cycles({"a": {"b"}, "b": set()}), [])

    def test_no_file_over_500_lines(self):
        long = {m: n for m, p in self.sources.items() if (n := len(read(p).splitlines())) > MAX_LINES}
        self.assertEqual(long, {})

    def test_no_path_tricks_and_no_noqa_on_imports(self):
        for module, path in self.sources.items():
            for number, line in enumerate(read(path).splitlines(), 1):
                where = f"{os.path.relpath(path, ROOT)}:{number}"
                self.assertNotRegex(line, r"sys\.path\.(insert|append)|sys\.path\s*=", where)
                if re.match(r"\s*(import|from)\s", line):
                    self.assertNotIn("noqa", line, where)

    def test_settings_are_read_by_attribute(self):
        for module, path in self.sources.items():
            text = read(path)
            self.assertNotRegex(text, r"\bsettings\s*\[", module)
            self.assertNotRegex(text, r"\bsettings\.get\(", module)


if __name__ == "__main__":
    unittest.main()
