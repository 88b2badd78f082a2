"""The viewer in a real browser: Debian's Chromium, headless, driven by Playwright through
`executable_path` (no browser download). Every main page renders without console errors, navigation
and search work, the graph view draws, planted HTML stays text, and a screenshot of each main page is
written to the test output (`$VIEWER_SCREENSHOT_DIR`, default a pytest temporary directory).

The tests skip, saying why, when Playwright or a Chromium executable is missing, unless
`ENVFACTORY_REQUIRE_BROWSER=1` (set by scripts/test, which installs Chromium), where that fails.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
REQUIRE = os.environ.get("ENVFACTORY_REQUIRE_BROWSER") == "1"


def _chromium() -> str | None:
    explicit = os.environ.get("ENVFACTORY_CHROMIUM")
    if explicit:
        return explicit
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def _unavailable(reason: str) -> None:
    if REQUIRE:
        pytest.fail(f"{reason} (ENVFACTORY_REQUIRE_BROWSER=1)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[test]')")
    executable = _chromium()
    if executable is None:
        _unavailable("no Chromium executable (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True,
                                              args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("VIEWER_SCREENSHOT_DIR")
    directory = Path(chosen) if chosen else tmp_path_factory.mktemp("viewer-screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


class Watched:
    """A page whose console errors and uncaught exceptions are collected."""

    def __init__(self, browser: Any, base_url: str) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
        # Nothing beyond the viewer's own origin may be fetched.
        self.context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(base_url)
                           else route.abort())
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.base_url = base_url

    def open(self, path: str) -> Any:
        response = self.page.goto(self.base_url + path, wait_until="load")
        assert response is not None and response.status == 200, path
        return self.page


@pytest.fixture()
def watched(browser: Any, base_url: str) -> Iterator[Watched]:
    watched = Watched(browser, base_url)
    yield watched
    watched.context.close()


MAIN_PAGES = {
    "overview": "/",
    "environments": "/envs",
    "environment": "/env/library/braket_jobs",
    "funnels": "/funnels",
    "run": "/run/synth-1",
    "graph": "/graph",
    "chains": "/chains",
    "tasks": "/tasks",
    "task": "/task?file=runs/synth-1/synth/tasks.jsonl&n=3",
    "drops": "/drops",
    "trajectories": "/trajectories",
    "trajectory": "/trajectory?file=runs/synth-1/synth/trajectories.jsonl&n=3",
    "evaluations": "/evals",
    "evaluation": "/eval/eval-demo",
    "attempt": "/eval/eval-demo/attempt/1",
}


def test_main_pages_render_without_console_errors(watched: Watched, screenshots: Path) -> None:
    for name, path in MAIN_PAGES.items():
        page = watched.open(path)
        if name == "graph":
            page.wait_for_selector("#cy[data-drawn]", state="attached", timeout=20_000)
        heading = page.locator("h1").inner_text()
        assert heading and "error" not in heading.lower(), (name, heading)
        target = screenshots / f"{name}.png"
        page.screenshot(path=str(target), full_page=name not in {"environment", "funnels"})
        assert target.stat().st_size > 5_000, name
    assert watched.errors == []


def test_state_diffs_and_gate_results_show(watched: Watched, screenshots: Path) -> None:
    page = watched.open("/trajectory?file=runs/synth-1/synth/trajectories.jsonl&n=3")
    diff = page.locator(".state-diff")
    assert diff.count() == 1 and diff.is_visible()  # after the one write of the episode
    assert diff.locator(".diff-head").inner_text() == "state diff in shop: 1 added, 2 changed, 1 other"
    added = diff.locator("tr.diff-added")
    assert added.count() == 4 and added.first.locator("td").nth(4).inner_text() == '"order_3"'
    diff.screenshot(path=str(screenshots / "state-diff.png"))
    page = watched.open("/task?file=runs/synth-1/synth/tasks.jsonl&n=3")
    rows = page.locator("#gate-results tr")
    assert rows.count() == 4 and rows.nth(1).locator("td").nth(1).inner_text() == "passed"
    page.locator("#gates").screenshot(path=str(screenshots / "task-gates.png"))
    assert watched.errors == []


def test_graph_view_draws_and_filters(watched: Watched) -> None:
    page = watched.open("/graph")
    page.wait_for_selector("#cy[data-drawn]", state="attached", timeout=20_000)
    drawn = int(page.locator("#cy").get_attribute("data-drawn"))
    assert drawn > 5
    assert page.evaluate("window.envfactoryGraph.edges().length") > 0
    assert page.locator("#cy canvas").count() > 0
    assert "tools," in page.locator("#graph-status").inner_text()
    # filter by environment through the form
    page.select_option("#server-filter", "calendar")
    page.click(".graph-filter button[type=submit]")
    page.wait_for_selector("#cy[data-drawn]", state="attached", timeout=20_000)
    assert "server=calendar" in page.url
    servers = page.evaluate("window.envfactoryGraph.nodes().map(n => n.data('server'))")
    assert "calendar" in servers
    # a tool's neighbourhood: tapping a node opens it
    # (the tap is emitted after evaluate returns: a navigation inside evaluate stalls it)
    with page.expect_navigation():
        page.evaluate("setTimeout(() => window.envfactoryGraph.nodes()"
                      ".filter(n => n.data('server') === 'calendar')[0].emit('tap'), 0)")
    page.wait_for_selector("#neighbourhood")
    assert "tool=calendar__" in page.url
    page.wait_for_selector("#cy[data-drawn]", state="attached", timeout=20_000)
    assert page.evaluate("window.envfactoryGraph.nodes('[?focus]').length") == 1
    assert watched.errors == []


def test_navigation_and_search(watched: Watched) -> None:
    page = watched.open("/")
    page.click("header nav >> text=Environments")
    assert page.url.endswith("/envs")
    page.fill("form.search input[name=q]", "vault")
    page.press("form.search input[name=q]", "Enter")
    page.wait_for_url("**/envs?*q=vault*")
    rows = page.locator("#env-list tr td:first-child a")
    assert rows.all_inner_texts() == ["vault", "vault"]  # the shipped one and the build's
    rows.first.click()
    assert page.locator("h1").inner_text() == "Environment vault"
    page.click("#tools details summary >> nth=0")
    assert page.locator("#tools details[open] pre").first.is_visible()
    page.click("header nav >> text=Trajectories")
    page.fill("form.search input[name=q]", "traj-00007")
    page.press("form.search input[name=q]", "Enter")
    page.wait_for_url("**/trajectories?*q=traj-00007*")
    assert page.locator("#trajectory-list a").all_inner_texts() == ["traj-00007"]
    page.click("#trajectory-list a")
    assert page.locator("h1").inner_text() == "Trajectory traj-00007"
    assert page.locator(".result.error").inner_text().startswith("error not_found")
    page.click("header nav >> text=Environments")
    page.click("text=next →")
    assert "page=2" in page.url and "page 2 of" in page.locator(".pager-count").first.inner_text()
    assert watched.errors == []


def test_planted_script_does_not_run(watched: Watched) -> None:
    for path in ("/env/workspace/hostile_books", "/trajectory?file=runs/synth-1/synth/trajectories.jsonl&n=1",
                 "/task?file=runs/synth-1/synth/tasks.jsonl&n=5"):  # a state diff and a gate record hold it too
        page = watched.open(path)
        assert page.evaluate("window.__planted === undefined"), path
        assert "<script>window.__planted = 1</script>" in page.locator("main").inner_text(), path
        assert page.locator("main img").count() == 0 and page.locator("main b").count() == 0, path
    assert watched.errors == []


def test_error_pages_are_pages(watched: Watched) -> None:
    response = watched.page.goto(watched.base_url + "/env/library/no_such_env")
    assert response is not None and response.status == 404
    assert "no environment 'no_such_env'" in watched.page.locator("#error-message").inner_text()
