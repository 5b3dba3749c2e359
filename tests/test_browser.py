"""The pages in a real browser: Debian's Chromium driven by Playwright, with axe-core for accessibility."""

from __future__ import annotations

import os
import shutil
from importlib import resources
from pathlib import Path

import pytest

from tests.conftest import ROOT, require
from tests.servers import running_service

pytestmark = pytest.mark.integration
CHROMIUM = os.environ.get("FEEDSVC_CHROMIUM", "/usr/bin/chromium")
# axe-core's own build, as the PyPI package axe-playwright-python carries it (requirements-dev.txt): no npm step
AXE = Path(str(resources.files("axe_playwright_python").joinpath("axe.min.js")))
ARTIFACTS = ROOT / "artifacts" / "screenshots"
# without these, Chromium tries to reach Google's hosts, which this network refuses
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDTHS = (375, 1280)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    content = tmp_path_factory.mktemp("browser") / "content"
    shutil.copytree(ROOT / "content", content)
    with running_service(content, content.parent) as (base, _):
        yield base


@pytest.fixture(scope="module")
def browser():
    require(Path(CHROMIUM).exists(), f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "playwright is not installed (pip install -r requirements-dev.txt)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def entry_paths(base: str) -> list[str]:
    import urllib.request

    import feedparser

    with urllib.request.urlopen(base + "/feed.xml") as response:
        return [entry.link.removeprefix(base) for entry in feedparser.parse(response.read()).entries]


class PageProblems:
    """Console errors, page errors and failed or erroring requests seen while a page loads."""

    def __init__(self, page, allowed_status: dict[str, int]):
        self.messages: list[str] = []
        self.allowed_status = allowed_status
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.messages.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: self.messages.append(f"request failed: {r.url} {r.failure}"))
        page.on("response", self._response)

    def _console(self, message):
        # Chromium logs every 4xx document as an error; the 404 page's own status is expected
        if message.type == "error" and self.allowed_status.get(message.location.get("url"), 200) == 200:
            self.messages.append(f"console: {message.text}")

    def _response(self, response):
        expected = self.allowed_status.get(response.url, 200)
        if response.status != expected:
            self.messages.append(f"{response.url}: HTTP {response.status}")


def visit(browser, url: str, width: int, *, color_scheme: str = "light", expected_status: int = 200, bypass_csp: bool = False):
    context = browser.new_context(viewport={"width": width, "height": 800}, color_scheme=color_scheme, bypass_csp=bypass_csp)
    page = context.new_page()
    problems = PageProblems(page, {url: expected_status})
    response = page.goto(url, wait_until="load")
    assert response.status == expected_status
    return context, page, problems


def slug_of(path: str) -> str:
    return path.strip("/").replace("/", "-") or "index"


@pytest.mark.parametrize("width", WIDTHS)
def test_every_page_loads_cleanly_without_horizontal_scrolling(browser, site, width):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    paths = ["/", *entry_paths(site), "/archive/", "/archive/2025-07/", "/latest/archive/", "/tags/"]
    assert len(paths) == 16
    for path, status in [*((p, 200) for p in paths), ("/no-such-page", 404)]:
        context, page, problems = visit(browser, site + path, width, expected_status=status)
        try:
            page.screenshot(path=str(ARTIFACTS / f"{slug_of(path)}-{width}.png"), full_page=True)
            assert problems.messages == [], (path, problems.messages)
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at {width}px"
            feeds = page.eval_on_selector_all("head link[rel=alternate]", "links => links.map(l => [l.type, l.href])")
            site_feeds = [
                ["application/rss+xml", f"{site}/feed.xml"],
                ["application/atom+xml", f"{site}/atom.xml"],
                ["application/feed+json", f"{site}/feed.json"],
            ]
            assert feeds[:3] == site_feeds
            # the landing page also offers every section's feeds, and all of them in one OPML file
            assert len(feeds) == (13 if path == "/" else 3)
            assert page.eval_on_selector("link[rel=stylesheet]", "l => l.sheet !== null")  # CSS applied under the CSP
            assert page.locator("h1").count() == 1
        finally:
            context.close()


def test_a_long_line_of_code_never_makes_an_entry_page_scroll_sideways(browser, tmp_path):
    from tests.conftest import write_entry

    content = tmp_path / "content"
    shutil.copytree(ROOT / "content", content)
    long_line = "curl --silent --show-error --fail --location https://news.example.com/feed.xml" + "?x=1" * 60
    write_entry(
        content,
        "code.md",
        "id: urn:example:code\ntitle: A long line of code\ndate: 2025-07-09T10:00:00Z\nsection: latest",
        f"Run this:\n\n```sh\n{long_line}\n```\n\nOr inline: `{long_line}`.\n",
    )
    with running_service(content, tmp_path) as (base, _):
        context, page, problems = visit(browser, base + "/posts/code/", 375)
        try:
            assert page.locator("pre code").count() == 1
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"the page scrolls sideways by {overflow}px at 375px"
            assert page.evaluate("document.querySelector('pre').scrollWidth <= document.querySelector('pre').clientWidth")
            assert problems.messages == []
        finally:
            context.close()


def test_landing_page_shows_the_subscribe_urls_in_full(browser, site):
    context, page, problems = visit(browser, site + "/", 375)
    try:
        subscribe = page.locator("section.subscribe")
        for path in ("/feed.xml", "/atom.xml", "/feed.json"):
            assert subscribe.get_by_text(site + path, exact=True).is_visible()
        assert page.locator("article.lead time").get_attribute("datetime").startswith("2025-07-07T19:00")
        assert page.locator("section[aria-labelledby=section-featured] li time").count() == 5
        assert problems.messages == []
    finally:
        context.close()


def test_keyboard_focus_is_visible(browser, site):
    context, page, _ = visit(browser, site + "/", 1280)
    try:
        page.keyboard.press("Tab")  # the skip link
        page.keyboard.press("Tab")  # the site name
        outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert outline != "none"
    finally:
        context.close()


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
@pytest.mark.parametrize("width", WIDTHS)
def test_axe_finds_no_serious_or_critical_violations(browser, site, color_scheme, width):
    for path in ["/", *entry_paths(site)[:2], "/archive/", "/archive/2025-07/", "/no-such-page"]:
        serious = serious_violations(browser, site + path, width, color_scheme, 404 if path == "/no-such-page" else 200)
        assert serious == [], (path, color_scheme, width, serious)


def serious_violations(browser, url: str, width: int, color_scheme: str, status: int = 200) -> list[dict]:
    """Run axe-core on one page; return its serious and critical violations."""
    require(AXE.exists(), f"{AXE} is missing (pip install -r requirements-dev.txt)")
    # axe is injected as a script, which the pages' own CSP rightly forbids: bypass it for the audit
    context, page, _ = visit(browser, url, width, color_scheme=color_scheme, expected_status=status, bypass_csp=True)
    try:
        page.add_script_tag(path=str(AXE))
        violations = page.evaluate(
            "async () => (await axe.run(document)).violations.map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.length}))"
        )
        return [v for v in violations if v["impact"] in ("serious", "critical")]
    finally:
        context.close()


@pytest.fixture(scope="module")
def newsroom(tmp_path_factory):
    content = tmp_path_factory.mktemp("browser-newsroom") / "newsroom"
    shutil.copytree(ROOT / "examples" / "newsroom", content)
    with running_service(content, content.parent) as (base, _):
        yield base


NEWSROOM_PAGES = [
    "/",
    "/posts/harbour-reopens/",  # picture, byline with a link, contents, a picture in the body, tags
    "/posts/market-day/",  # a WebP picture, a tag with non-ASCII letters
    "/posts/council-budget/",  # no picture
    "/tags/",
    "/tags/harbour/",
    "/tags/caf%C3%A9-culture/",
    "/archive/2025-03/",
]


@pytest.mark.parametrize("width", WIDTHS)
def test_newsroom_pages_show_every_picture_without_layout_shift_or_sideways_scrolling(browser, newsroom, width):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for path in NEWSROOM_PAGES:
        context, page, problems = visit(browser, newsroom + path, width)
        try:
            page.screenshot(path=str(ARTIFACTS / f"newsroom-{slug_of(path)}-{width}.png"), full_page=True)
            assert problems.messages == [], (path, problems.messages)  # no image blocked by the CSP, none missing
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at {width}px"
            pictures = page.evaluate(
                """() => [...document.images].map(i => ({src: i.src, loaded: i.complete && i.naturalWidth > 0,
                    right: i.getBoundingClientRect().right, width: i.getAttribute('width'), height: i.getAttribute('height')}))"""
            )
            page.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")  # lazy thumbnails load on the way
            page.wait_for_load_state("networkidle")
            loaded = page.evaluate("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
            assert loaded, (path, pictures)
            for picture in pictures:
                assert picture["width"] and picture["height"], picture  # the box is reserved before the bytes arrive
                assert picture["right"] <= width, picture
            if path in ("/", "/posts/harbour-reopens/", "/tags/harbour/"):
                assert pictures, path
        finally:
            context.close()


def test_the_contents_list_jumps_to_its_headings(browser, newsroom):
    context, page, problems = visit(browser, newsroom + "/posts/harbour-reopens/", 375)
    try:
        links = page.locator("nav.contents a")
        assert links.count() == 3
        links.nth(2).click()
        assert page.evaluate("location.hash") == "#what-comes-next"
        assert page.evaluate("document.querySelector(':target').id") == "what-comes-next"
        top = page.evaluate("document.getElementById('what-comes-next').getBoundingClientRect().top")
        assert 0 <= top < page.evaluate("window.innerHeight")  # scrolled into view
        assert problems.messages == []
    finally:
        context.close()


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
@pytest.mark.parametrize("width", WIDTHS)
def test_axe_finds_no_serious_or_critical_violations_on_the_newsroom(browser, newsroom, color_scheme, width):
    for path in NEWSROOM_PAGES:
        serious = serious_violations(browser, newsroom + path, width, color_scheme)
        assert serious == [], (path, color_scheme, width, serious)
