"""The Snakemake report, built for the shared small run and opened in a real (headless) browser.

A module-scoped fixture builds ``results/report.html`` and ``results/report.zip`` for the
session's small workflow run (``small_run`` in conftest.py); the tests then check what a user
would get: the files build, the captions render (config values filled in, no RST errors),
and in Debian's Chromium, driven by Playwright with every network request blocked, the
report loads without console errors, lists the categories, shows our labelled results and
opens the plots as embedded PNG images. Each browser test opens the report in its own page,
with its own record of console messages and network requests.

Browser tests skip (with the reason) where ``/usr/bin/chromium`` or Playwright is missing,
and fail instead under CI=true (``.ci/run`` installs both). Never ``playwright install``: it
downloads another browser. Screenshots go to the report's run directory (printed).
"""

from __future__ import annotations

import ast
import html
import json
import re
import shutil
import subprocess
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import REPO, SMALL_CONFIG, once, results_of, shared_root, skip_or_fail, snakemake_args

pytestmark = pytest.mark.slow
browser_test = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CATEGORIES = ("Findings", "Convergence", "Divergence", "Timing", "Reproducibility")

GRID = SMALL_CONFIG["grid"]
RUNS_PER_DEVICE = len(GRID["dataset"]) * len(GRID["lr"]) * len(GRID["seed"])
LRS_AS_RENDERED = ", ".join(str(lr) for lr in GRID["lr"])

# Console messages every offline load logs (measured with Snakemake 9's report): the embedded
# Tailwind build's production warning (no request is made) and Vega-Lite's version warning.
BENIGN_CONSOLE = (
    re.compile(r"cdn\.tailwindcss\.com should not be used in production"),
    re.compile(r"version.*vega-lite|vega-lite.*version", re.IGNORECASE),
    # Snakemake's Statistics view draws job runtimes on a log axis; the rules that run inside
    # Snakemake (theory, join_timing) take ~0 s, which Vega-Lite warns about.
    re.compile(r"WARN Log scale domain includes zero"),
)

REPORT_TIMEOUT_S = 300


@dataclass
class ReportRun:
    """A finished small workflow run and its two reports."""

    workdir: Path
    html: Path
    zip: Path
    report_output: dict[str, str]  # html/zip -> Snakemake's output while building that report
    seconds: dict[str, float] = field(default_factory=dict)

    def embedded(self, name: str) -> object:
        """A JSON value the report embeds as ``<script id="NAME">var x = ...;</script>``."""
        text = self.html.read_text(encoding="utf-8")
        match = re.search(rf'<script id="{name}">\s*var \w+ = (.*?);\s*</script>', text, re.S)
        assert match, f"report.html embeds no <script id={name!r}>: the report format changed"
        return json.loads(match.group(1))


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="module")
def report_run(small_run: Path, tmp_path_factory: pytest.TempPathFactory) -> ReportRun:
    """Build report.html and report.zip (in parallel) for a copy of the session's small run,
    once for every worker of the test session (other tests read the run meanwhile)."""
    workdir = shared_root(tmp_path_factory) / "small_run_reports" / "run"

    def build(folder: Path) -> dict:
        shutil.copytree(small_run, folder / "run", symlinks=True)
        seconds = {}
        start = time.perf_counter()
        builds = {
            kind: subprocess.Popen(
                snakemake_args(workdir, "--report", f"results/config/report.{kind}"),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for kind in ("html", "zip")
        }
        output = {}
        for kind, proc in builds.items():
            out, _ = proc.communicate(timeout=REPORT_TIMEOUT_S)
            output[kind] = out
            assert proc.returncode == 0, f"snakemake --report results/config/report.{kind} failed:\n{_tail(out)}"
        seconds["reports"] = time.perf_counter() - start
        return {"output": output, "seconds": seconds}

    made = once(tmp_path_factory, "small_run_reports", build)
    output, seconds = made["output"], made["seconds"]
    return ReportRun(workdir, results_of(workdir) / "report.html", results_of(workdir) / "report.zip", output, seconds)


# ------------------------------------------------------------------------------ the files


def test_report_html_and_zip_build(report_run: ReportRun) -> None:
    """If this fails, `snakemake --report results/report.html` (or `.zip`) breaks or leaves out
    results: a user gets no report, or one without the plots and tables they ran for."""
    print(f"both reports {report_run.seconds['reports']:.1f} s")
    assert report_run.html.stat().st_size > 100_000, "report.html is too small to hold the plots"
    with zipfile.ZipFile(report_run.zip) as zf:
        assert zf.testzip() is None, "report.zip is corrupt"
        names = zf.namelist()
    assert "report/report.html" in names, f"report.zip has no report/report.html: {names}"
    for result in (
        "convergence.png",
        "divergence.png",
        "timing.png",
        "summary.html",
        "findings.html",
        "time_to_target.png",
        "provenance.html",
        "theory.html",
    ):
        assert any(n.endswith("/" + result) for n in names), f"report.zip lacks {result}: {names}"

    categories = report_run.embedded("categories")
    assert set(CATEGORIES) <= set(categories), f"report categories {sorted(categories)} lack some of {CATEGORIES}"
    results = report_run.embedded("results")
    unlabelled = [path for path, r in results.items() if not r.get("labels") or r["labels"] in ("{}", "None")]
    assert not unlabelled, f"results shown by file name instead of labels: {unlabelled}"


def test_report_build_guesses_no_file_type(report_run: ReportRun) -> None:
    """If this fails, building the report prints "Could not detect mimetype ... assuming
    text/plain" (a result a browser cannot show, such as the Parquet table, is in the report)."""
    for kind, out in report_run.report_output.items():
        assert "Could not detect mimetype" not in out, f"report.{kind}:\n{_tail(out)}"


def test_captions_render_without_rst_errors(report_run: ReportRun) -> None:
    """If this fails, a caption or the front page shows a docutils "System Message" error box,
    a raw ``{{ ... }}`` template, or an empty value where the config belongs, instead of
    telling the user what the plot shows and with which settings it was made."""
    for kind, out in report_run.report_output.items():
        problems = [line for line in out.splitlines() if re.search(r"\((ERROR|SEVERE|WARNING)/\d\)", line)]
        assert not problems, f"docutils complained while building report.{kind}:\n" + "\n".join(problems)

    front = report_run.embedded("workflow-desc")
    results = report_run.embedded("results")
    captions = {path: r.get("caption", "") for path, r in results.items()}
    for where, rendered in {"front page (workflow.rst)": front, **captions}.items():
        assert rendered.strip(), f"{where}: empty caption"
        assert "System Message" not in rendered and "system-message" not in rendered, f"{where}: RST error"
        assert "{{" not in rendered and "{%" not in rendered, f"{where}: unrendered template"
        # An undefined config key renders as nothing: "= ." or "( )" are its trace.
        text = html.unescape(re.sub(r"<[^>]+>", "", rendered))
        assert not re.search(r"=\s*[.,;)]|\(\s*\)|``", text), f"{where}: a value is missing:\n{text}"

    front_text = html.unescape(re.sub(r"<[^>]+>", "", front))
    assert f"{RUNS_PER_DEVICE} runs on cpu" in front_text, f"front page miscounts the grid:\n{front_text}"
    # the findings, from findings.csv: the lesson's data converges fastest at lr 0.17 (100 epochs)
    assert "tutorial" in front_text and "fastest at lr 0.17 (100 epochs" in front_text, front_text
    assert "located edge 0.1806 = 1.0017 × critical lr 0.1803" in front_text, front_text
    assert LRS_AS_RENDERED in front_text, "front page does not list the grid's learning rates"
    assert "This report's grid: config (results in results/config/" in front_text, "front page names no grid"
    by_name = {Path(p).name: html.unescape(re.sub(r"<[^>]+>", "", c)) for p, c in captions.items()}
    assert LRS_AS_RENDERED in by_name["convergence.png"], "convergence caption lacks the grid's lrs"
    assert "2/λmax" in by_name["divergence.png"] and "full-batch" in by_name["divergence.png"]
    assert "device_name" in by_name["timing.png"], "timing caption does not say where the machine is named"


def test_captions_use_only_defined_config_keys(report_run: ReportRun) -> None:
    """If this fails, a caption reads a config key that does not exist (a typo, or a key that
    was renamed): Snakemake renders it as nothing, so the user reads "converged once the cost
    is <=" with the value missing. Renders every caption with this run's full config (from
    provenance.json) under Jinja's StrictUndefined, which raises instead."""
    import jinja2  # Snakemake's own dependency

    provenance = json.loads((results_of(report_run.workdir) / "provenance.json").read_text(encoding="utf-8"))
    snakemake = SimpleNamespace(config=provenance["config"], params=SimpleNamespace(devices=provenance["grid_devices"]))
    categories = [SimpleNamespace(name=name) for name in report_run.embedded("categories")]
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    captions = sorted((REPO / "workflow" / "report").glob("*.rst"))
    assert len(captions) >= 12, f"captions missing from workflow/report: {[c.name for c in captions]}"
    for caption in captions:
        try:
            env.from_string(caption.read_text(encoding="utf-8")).render(
                snakemake=snakemake, categories=categories, files=[]
            )
        except jinja2.UndefinedError as exc:
            pytest.fail(f"{caption.relative_to(REPO)}: {exc}")


# ------------------------------------------------------------------------------ the browser


@dataclass
class Opened:
    """A page showing the report, with what it logged and asked the network for."""

    page: object
    console: list[str]
    requests: list[str]
    blocked: list[str]

    def problems(self) -> list[str]:
        return [m for m in self.console if not any(p.search(m) for p in BENIGN_CONSOLE)]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's Chromium under Playwright (skips where either is missing; fails in CI)."""
    if not CHROMIUM.exists():
        skip_or_fail(f"{CHROMIUM} is missing (Debian: apt-get install chromium)")
    try:
        from playwright import sync_api
    except ImportError:
        skip_or_fail("Playwright for Python is missing (pip install playwright)")
    with sync_api.sync_playwright() as pw:
        # Playwright adds --headless, --no-sandbox, --no-first-run, --disable-background-networking,
        # --disable-component-update, --disable-sync and its own profile.
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--disable-gpu"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def opened(browser: object, report_run: ReportRun) -> Iterator[Opened]:
    """report.html loaded in a page of its own for one test, every request but the file
    itself aborted and recorded (so one test's console message is never blamed on another)."""
    url = report_run.html.resolve().as_uri()
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    console: list[str] = []
    requests: list[str] = []
    blocked: list[str] = []

    def route(r: object) -> None:
        if r.request.url.split("#")[0] == url:
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    context.on("request", lambda req: requests.append(req.url))
    page = context.new_page()
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda exc: console.append(f"uncaught: {exc}"))
    page.goto(url)
    page.wait_for_selector("#loading-screen", state="hidden", timeout=30_000)
    try:
        yield Opened(page, console, requests, blocked)
    finally:
        context.close()


def _sidebar(page: object) -> object:
    return page.locator("#app > div > nav")


def _menu(page: object) -> object:
    """Back to the sidebar's main menu (the breadcrumb's home icon); returns the sidebar."""
    nav = _sidebar(page)
    home = nav.locator("nav ol li a").first
    if home.count():
        home.click()
    nav.get_by_text("Results", exact=True).wait_for()
    return nav


def _show_category(page: object, name: str) -> object:
    """Open a category from the main menu; returns the sidebar."""
    nav = _menu(page)
    nav.get_by_text(name, exact=True).click()
    nav.locator("table").first.wait_for()
    return nav


def _labels(raw: object) -> dict:
    """A result's labels (the report embeds them as a Python dict's repr)."""
    value = ast.literal_eval(raw) if isinstance(raw, str) else raw
    return dict(value or {})


def _text(locator: object) -> str:
    # Headings are upper-cased by CSS: text_content() gives the text as written.
    return " ".join((locator.text_content() or "").split())


@browser_test
def test_report_loads_offline_without_console_errors(opened: Opened, report_run: ReportRun) -> None:
    """If this fails, the report breaks for a user without internet (it fetches something)
    or its scripts throw: a blank page, a stuck "Loading Snakemake Report...", or views that
    do not open. Visits the front page, Workflow, Statistics and every category."""
    page = opened.page
    for view in ("Workflow", "Statistics"):
        _menu(page).get_by_text(view, exact=True).click()
        page.wait_for_timeout(300)
    for category in CATEGORIES:
        _show_category(page, category)
    page.wait_for_timeout(300)
    assert not opened.problems(), "console errors or warnings:\n" + "\n".join(opened.problems())
    others = [u for u in opened.requests if u.split("#")[0] != report_run.html.resolve().as_uri()]
    assert not others and not opened.blocked, f"the report asked for more than its own file: {others + opened.blocked}"


@browser_test
def test_front_page_fits_and_links_to_categories(opened: Opened, report_run: ReportRun) -> None:
    """If this fails, the front page (workflow.rst) is cut off at the top in a 1280x720 window
    (Snakemake centres it vertically: text taller than the window loses its first lines, which
    cannot be scrolled to), or its links to the categories do nothing."""
    page = opened.page
    _menu(page).get_by_text("Workflow", exact=True).click()
    page.set_viewport_size({"width": 1280, "height": 720})
    try:
        front = page.locator(".prose", has_text="gradient descent on linear regression").first
        front.wait_for()
        box = front.bounding_box()
        assert box, "the front page's text is not shown"
        assert box["y"] >= 0, f"the front page is cut off at the top by {-box['y']:.0f} px: shorten workflow.rst"
        assert f"{RUNS_PER_DEVICE} runs on cpu" in _text(front), f"the front page miscounts the grid: {_text(front)}"
        page.screenshot(path=str(report_run.workdir / "report-front.png"))
        front.locator("a.reference", has_text="Divergence").click()  # javascript:app.showCategory(...)
        crumb = _sidebar(page).locator("nav ol").get_by_text("Divergence", exact=True)
        try:
            crumb.wait_for(timeout=5_000)
        except Exception as exc:  # playwright's TimeoutError
            raise AssertionError("the front page's Divergence link did not open the category") from exc
    finally:
        page.set_viewport_size({"width": 1400, "height": 900})


@browser_test
def test_sidebar_lists_the_categories(opened: Opened) -> None:
    """If this fails, the menu under "Results" misses a category: the user cannot reach the
    convergence, divergence, timing or reproducibility results at all."""
    nav = _menu(opened.page)
    text = _text(nav)
    assert "Results" in text, f"no Results heading in the menu: {text!r}"
    for category in CATEGORIES:
        assert nav.get_by_text(category, exact=True).count() == 1, f"menu lacks {category}: {text!r}"


@browser_test
@pytest.mark.parametrize("category", CATEGORIES)
def test_category_lists_labelled_results(opened: Opened, report_run: ReportRun, category: str) -> None:
    """If this fails, a category shows fewer results than the workflow made, or lists them by
    file name (convergence.png) instead of our labels (cost vs epoch)."""
    nav = _show_category(opened.page, category)
    assert category in _text(nav.locator("nav ol")), "the breadcrumb does not name the category"
    results = report_run.embedded("results")
    paths = report_run.embedded("categories")[category]
    expected = {p: list(_labels(results[p]["labels"]).values()) for sub in paths.values() for p in sub}
    rows = [_text(nav.locator("tbody tr").nth(i)) for i in range(nav.locator("tbody tr").count())]
    assert len(rows) == len(expected), f"{category}: {len(rows)} rows shown, {len(expected)} results: {rows}"
    for labels in expected.values():
        assert any(all(str(v) in row for v in labels) for row in rows), f"{category}: no row labelled {labels}: {rows}"
    for row in rows:
        assert not re.search(r"\.(png|svg|csv|parquet|json)\b", row), f"{category}: row named by a file: {row!r}"
    if category == "Convergence":
        assert any("cost vs epoch" in row for row in rows)


@browser_test
@pytest.mark.parametrize(
    ("category", "label", "screenshot"),
    [
        ("Convergence", "cost vs epoch", "report-convergence.png"),
        ("Divergence", "final cost vs learning rate", "report-divergence.png"),
        ("Timing", "seconds per epoch and throughput", "report-timing.png"),
    ],
)
def test_plot_opens_as_embedded_png(
    opened: Opened, report_run: ReportRun, category: str, label: str, screenshot: str
) -> None:
    """If this fails, clicking a plot's eye icon shows nothing, a broken image, or an image
    fetched from elsewhere: the user cannot see the figure. Also opens the plot's description
    and checks the caption shows the grid's values."""
    page = opened.page
    nav = _show_category(page, category)
    row = nav.locator("tbody tr", has_text=label)
    assert row.count() == 1, f"{category}: no single row {label!r}"
    row.locator("a[iconname=eye]").click()
    img = page.locator("img[src^='data:image/png']").last
    img.wait_for(state="visible")
    width, height = img.evaluate("i => [i.naturalWidth, i.naturalHeight]")
    assert width > 500 and height > 200, f"the {label!r} image did not decode ({width}x{height})"

    row.locator("a[iconname=information-circle]").click()
    description = _sidebar(page)
    description.get_by_text("Description", exact=True).wait_for()
    if category != "Timing":
        assert LRS_AS_RENDERED in _text(description), f"{label!r}: the description lacks the grid's lrs"
    page.screenshot(path=str(report_run.workdir / screenshot))
    print(f"screenshot: {report_run.workdir / screenshot}")
    assert not opened.problems(), "console errors or warnings:\n" + "\n".join(opened.problems())
    assert not opened.blocked, f"the report asked the network for {opened.blocked}"


@browser_test
@pytest.mark.parametrize(
    ("category", "label", "column"),
    [
        ("Divergence", "summary (one row per run)", "converged_at"),
        ("Findings", "findings (one row per dataset x optimizer)", "best_epochs"),
        ("Divergence", "stability edge (table)", "edge_hi"),
    ],
)
def test_tables_sort_and_filter_in_the_page(
    opened: Opened, report_run: ReportRun, category: str, label: str, column: str
) -> None:
    """If this fails, a table of the report is a download again (or its scripts need the
    network): a reader cannot sort the summary by converged_at or filter it in the page."""
    page = opened.page
    nav = _show_category(page, category)
    row = nav.locator("tbody tr", has_text=label)
    assert row.count() == 1, f"{category}: no single row {label!r}"
    row.locator("a[iconname=eye]").click()
    frame = None
    for _ in range(100):
        frames = [f for f in page.frames if f.locator("table.dataTable").count()]
        if frames:
            frame = frames[-1]
            break
        page.wait_for_timeout(100)
    assert frame is not None, f"{label!r} does not show an interactive table in the page"
    header = frame.locator(".dt-scroll-head th", has_text=column).first
    index = header.evaluate("t => [...t.parentElement.children].indexOf(t)")
    _click_until_ascending(frame, header)
    cells = frame.locator(".dt-scroll-body tbody tr").evaluate_all(
        f"rows => rows.map(r => r.children[{index}].textContent)"
    )
    numbers = [float(c) for c in cells if c]
    assert numbers and numbers == sorted(numbers), f"{column} not sorted ascending: {cells}"
    assert cells[0] != "", "empty cells sort before numbers"
    frame.locator("input[type=search]").first.fill("tutorial")
    info = " ".join((frame.locator(".dt-info").first.text_content() or "").split())
    assert "filtered from" in info, f"the search box does not filter: {info!r}"
    assert not opened.problems(), "console errors or warnings:\n" + "\n".join(opened.problems())
    assert not opened.blocked, f"the report asked the network for {opened.blocked}"


def _click_until_ascending(frame, header) -> None:
    """Click a column header and wait until the table says it is sorted ascending by it. On a
    busy machine a click can land before DataTables has bound its handlers; then it is clicked
    again (at most 3 clicks, 5 s each: a table that never sorts still fails the test)."""
    for _ in range(3):
        header.click()
        for _ in range(50):
            if header.get_attribute("aria-sort") == "ascending":
                return
            frame.page.wait_for_timeout(100)
