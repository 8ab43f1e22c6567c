#!/usr/bin/env python3
"""report.html in a real browser: headless Chromium driven by Selenium WebDriver.

The test makes a small run of its own with the stand-in binaries (fakes/), three repeats so
that spread exists, adds test_soak_plots.py's synthetic soak.json to it (so the soak section has
its table and charts), draws it with `python3 -m plots`, then opens DIR/report.html from a file
URL with networking disabled (every host name resolves to nothing, every proxy request goes to
a closed port) and asserts, from what the browser itself logged:
* no console errors (the browser log);
* no request leaves the file (the performance log: only the file's own URL and data: URLs);
* every chart (inline SVG) has a non-zero rendered size;
* every section heading is present, and the soak section's verdicts and charts;
* clicking a table header changes its row order (ascending, then descending);
* the screenshot is not blank (pixel spread of the decoded PNG);
* printed (Chromium's PDF), each section starts a page;
* with JavaScript off, the tables and charts are still there.

Needs Debian's chromium, chromium-driver and python3-selenium; exits 77 (skip) only when one
of them is absent. SERVERBENCH_REPORT_SHOTS=DIR keeps the screenshots for a person to look at.
"""
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(HERE, "fakes"))
from fake_build import make_fake_build, processes_mentioning  # noqa: E402
from test_soak_plots import CHARTS as SOAK_CHARTS, add_soak  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FIXED_SECTIONS = ["The run", "Headline: medians with their spread", "How to read the charts",
                  "Capacity and latency over time", "Soak: memory, descriptors and p99 over time", "A/B comparison",
                  "The models beside their production forms", "Claim verdicts", "Microbenchmarks",
                  "Counted work"]


def prerequisites_missing():
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("python3-selenium")
    return missing


def browser(javascript=True):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1600", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost",
                "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
                "--disable-background-networking", "--disable-component-update", "--no-first-run",
                "--disable-sync", "--disable-extensions", "--disable-default-apps"):
        opts.add_argument(arg)
    if not javascript:
        opts.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def make_run(tmp):
    """A smoke run of three stand-in models plus one the kernel 'refuses', three repeats each, a
    synthetic soak of three of them, then the plotting command. Returns the run folder."""
    make_fake_build(tmp, {"blocking": "ok", "thread-pool": "ok", "epoll": "ok", "io-uring": "unsupported"})
    out = os.path.join(tmp, "run")
    env = dict(os.environ, SERVERBENCH_FAKE_POINT_S="0.05")
    run = subprocess.run([os.path.join(ROOT, "run_all.sh"), "--profile", "smoke", "--no-build", "--no-plots",
                          "--build-dir", os.path.join(tmp, "build"), "--out", out, "--repeat", "3"],
                         capture_output=True, text=True, timeout=400, env=env)
    if run.returncode != 0:
        raise AssertionError(f"run_all.sh exited {run.returncode}:\n{run.stderr[-3000:]}")
    add_soak(out)
    plot = subprocess.run(["/usr/bin/python3", "-m", "plots", out], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    if plot.returncode != 0:
        raise AssertionError(f"python3 -m plots exited {plot.returncode}:\n{plot.stderr[-3000:]}")
    return out


class ReportInBrowserTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="serverbench-report-")
        try:
            cls.run_dir = make_run(cls.tmp)
            with open(os.path.join(cls.run_dir, "manifest.json")) as f:
                cls.manifest = json.load(f)
            cls.report = os.path.join(cls.run_dir, "report.html")
            cls.url = "file://" + cls.report
            cls.driver = browser()
            cls.driver.get(cls.url)
            cls.console = cls.driver.get_log("browser")
            cls.network = cls.driver.get_log("performance")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        driver = getattr(cls, "driver", None)
        if driver is not None:
            driver.quit()
        leftovers = processes_mentioning(cls.tmp)
        shutil.rmtree(cls.tmp, ignore_errors=True)
        assert not leftovers, f"processes left running: {leftovers}"

    def test_no_console_errors(self):
        errors = [e for e in self.console if e.get("level") == "SEVERE"]
        self.assertEqual(errors, [])

    def test_no_request_leaves_the_file(self):
        urls = []
        for entry in self.network:
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                urls.append(message["params"]["request"]["url"])
        # The log is really observed: the page's own load is in it.
        self.assertIn(self.url, urls)
        outside = [u for u in urls if u.split("#")[0] != self.url and not u.startswith("data:")]
        self.assertEqual(outside, [])

    def test_every_chart_has_a_size(self):
        from selenium.webdriver.common.by import By
        charts = self.driver.find_elements(By.CSS_SELECTOR, "figure > svg")
        scenarios = len(self.manifest["scenarios"])
        self.assertGreaterEqual(len(charts), scenarios + 1)
        for chart in charts:
            box = self.driver.execute_script(
                "var r = arguments[0].getBoundingClientRect(); return [r.width, r.height];", chart)
            self.assertTrue(box[0] > 100 and box[1] > 50, (chart.get_attribute("aria-label"), box))

    def test_every_section_heading(self):
        from selenium.webdriver.common.by import By
        headings = [h.text for h in self.driver.find_elements(By.CSS_SELECTOR, "section > h2")]
        expected = FIXED_SECTIONS + [f"Scenario {s}:" for s in self.manifest["scenarios"]]
        for title in expected:
            self.assertTrue(any(h.startswith(title) for h in headings), (title, headings))

    def test_soak_section(self):
        from selenium.webdriver.common.by import By
        cells = [[td.text for td in row.find_elements(By.TAG_NAME, "td")]
                 for row in self.driver.find_elements(By.CSS_SELECTOR, "#soak table.sortable tbody tr")]
        verdicts = {row[0].split(" ")[0]: row[1:3] for row in cells}
        self.assertEqual(verdicts, {"blocking": ["not-applicable", "-"], "epoll": ["flat", "-"],
                                    "thread-pool": ["grows", "descriptors"]})
        charts = self.driver.find_elements(By.CSS_SELECTOR, "#soak figure > svg")
        self.assertEqual(len(charts), len(SOAK_CHARTS), [c.get_attribute("aria-label") for c in charts])

    def rows_of(self, table, column):
        return self.driver.execute_script(
            "var col = arguments[1]; return Array.prototype.map.call(arguments[0].tBodies[0].rows, function (r) {"
            " return [r.cells[0].textContent, r.cells[col].getAttribute('data-v')]; });", table, column)

    def test_sorting_changes_row_order(self):
        from selenium.webdriver.common.by import By
        table = self.driver.find_element(By.CSS_SELECTOR, "#scenario-http-keepalive table.sortable")
        header = table.find_elements(By.CSS_SELECTOR, "thead th")[2]
        self.assertIn("req/s", header.text)
        before = self.rows_of(table, 2)
        header.click()
        ascending = self.rows_of(table, 2)
        header.click()
        descending = self.rows_of(table, 2)
        self.assertNotEqual(ascending, descending)
        self.assertTrue(before != ascending or before != descending)
        numbers = [float(v) for _, v in ascending if v not in (None, "")]
        self.assertGreaterEqual(len(numbers), 4)
        self.assertEqual(numbers, sorted(numbers))
        numbers_down = [float(v) for _, v in descending if v not in (None, "")]
        self.assertEqual(numbers_down, sorted(numbers_down, reverse=True))

    def test_prints_a_page_per_section(self):
        import base64
        import re
        from selenium.webdriver.common.by import By
        pdf = base64.b64decode(self.driver.execute_cdp_cmd("Page.printToPDF", {"printBackground": True})["data"])
        pages = len(re.findall(rb"/Type\s*/Page\b", pdf))
        sections = len(self.driver.find_elements(By.CSS_SELECTOR, "section"))
        self.assertGreaterEqual(pages, sections)

    def test_screenshot_is_not_blank(self):
        import matplotlib.image
        png = self.driver.get_screenshot_as_png()
        pixels = matplotlib.image.imread(io.BytesIO(png), format="png")[..., :3]
        self.assertGreater(pixels.shape[0] * pixels.shape[1], 100 * 100)
        self.assertGreater(float(pixels.std()), 0.05)
        ink = (pixels.mean(axis=2) < 0.9).mean()
        self.assertGreater(ink, 0.01)
        keep = os.environ.get("SERVERBENCH_REPORT_SHOTS")
        if keep:
            self.keep_shots(keep, png)

    def keep_shots(self, folder, png):
        from selenium.webdriver.common.by import By
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "top.png"), "wb") as f:
            f.write(png)
        for section in self.driver.find_elements(By.CSS_SELECTOR, "section"):
            self.driver.execute_script("arguments[0].scrollIntoView()", section)
            section.screenshot(os.path.join(folder, f"{section.get_attribute('id')}.png"))

    def test_the_logs_would_see_a_request_and_an_error(self):
        """The two log checks above can fail: a page that asks for a remote image and logs an
        error shows both, and the remote request does not get through."""
        probe = os.path.join(self.tmp, "probe.html")
        with open(probe, "w") as f:
            f.write('<!DOCTYPE html><html><body><img src="http://example.invalid/x.png">'
                    '<script>console.error("probe error")</script></body></html>')
        driver = browser()
        try:
            driver.get("file://" + probe)
            console = driver.get_log("browser")
            network = [json.loads(e["message"])["message"] for e in driver.get_log("performance")]
        finally:
            driver.quit()
        self.assertTrue(any("probe error" in e.get("message", "") for e in console if e.get("level") == "SEVERE"))
        sent = [m["params"]["request"]["url"] for m in network if m.get("method") == "Network.requestWillBeSent"]
        self.assertIn("http://example.invalid/x.png", sent)
        failed = [m for m in network if m.get("method") == "Network.loadingFailed"]
        self.assertTrue(failed)

    def test_readable_without_javascript(self):
        from selenium.webdriver.common.by import By
        driver = browser(javascript=False)
        try:
            driver.get(self.url)
            rows = driver.find_elements(By.CSS_SELECTOR, "#headline table tbody tr")
            self.assertEqual(len(rows), len(self.manifest["models"]))
            charts = driver.find_elements(By.CSS_SELECTOR, "figure > svg")
            self.assertTrue(charts and all(c.size["width"] > 100 for c in charts))
            self.assertEqual(driver.find_elements(By.CSS_SELECTOR, "th.sortable"), [])
        finally:
            driver.quit()


if __name__ == "__main__":
    missing = prerequisites_missing()
    if missing:
        print(f"SKIP: missing {', '.join(missing)} (apt-get install -y chromium chromium-driver python3-selenium)")
        sys.exit(77)
    unittest.main()
