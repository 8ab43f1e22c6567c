#!/usr/bin/env python3
"""The quick profile's time budget (serverbench/budget.py): the trials planned from the scenario
definitions fit each scenario's budget, the budgets and the allowances for what comes next fit
the 4 minutes, and docs/running.md's table says what the code says."""
import dataclasses
import os
import re
import sys
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
try:
    from serverbench import budget
    from serverbench import scenarios as sc
except ImportError as e:  # SciPy missing: the statistics module is imported on the way
    print(f"skipped: {e}")
    sys.exit(77)

QUICK = sc.PROFILES["quick"]


def docs_table():
    """{scenario: budget s} of the budget table in docs/running.md."""
    with open(os.path.join(ROOT, "docs", "running.md")) as f:
        text = f.read()
    section = text[text.index("### Time budget"):]
    rows = re.findall(r"^\| `([a-z-]+)` \| [^|]* \| [^|]* \| (\d+) \|", section, re.M)
    return {name: int(seconds) for name, seconds in rows}


class QuickBudget(unittest.TestCase):
    def test_every_scenario_fits_its_budget(self):
        plan = budget.planned(QUICK)
        self.assertEqual(set(plan), set(budget.QUICK_BUDGETS_S), "a scenario without a budget, or the reverse")
        over = {s: round(seconds, 1) for s, seconds in plan.items() if seconds > budget.QUICK_BUDGETS_S[s]}
        self.assertEqual(over, {}, "planned seconds over the scenario's budget")

    def test_the_quick_profile_s_production_servers_fit_their_allowance(self):
        self.assertEqual(QUICK.references, ("nginx",))
        plan = budget.planned(QUICK, models=QUICK.references)
        self.assertGreater(sum(plan.values()), 0)
        self.assertLessEqual(sum(plan.values()), budget.ALLOWANCES_S["production servers"], plan)

    def test_the_budgets_and_the_allowances_fit_four_minutes(self):
        total = sum(budget.QUICK_BUDGETS_S.values()) + sum(budget.ALLOWANCES_S.values()) + budget.RUN_FIXED_S
        self.assertLessEqual(total, budget.QUICK_LIMIT_S)

    def test_a_longer_profile_is_planned_longer(self):
        """The plan follows the definitions: a check that can fail."""
        longer = dataclasses.replace(QUICK, duration="1s")
        self.assertGreater(budget.planned(longer)["http-keepalive"], budget.planned(QUICK)["http-keepalive"] + 10)
        self.assertNotIn("http-close", budget.planned(QUICK, scenarios=("http-keepalive",)))

    def test_the_docs_table_is_the_code_s(self):
        self.assertEqual(docs_table(), budget.QUICK_BUDGETS_S)


if __name__ == "__main__":
    unittest.main()
