"""Hostile content, round two (issue 27): pictures, tags, URLs and clocks an editor (or an attacker with an editor's
access) can get wrong. Each case was reproduced on the code before; each is a problem naming the file, the field and
the fix, or is served correctly, never an outage, a traceback or a future date.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import lxml.html
import pytest
from lxml import etree
from PIL import Image

from feedsvc.config import ConfigError, config_from_env
from feedsvc.models import tag_slug
from feedsvc.problems import ContentError
from feedsvc.source.loader import load_content
from tests.conftest import ROOT, write_entry
from tests.servers import fetch, running_service
from tests.test_newsroom import BASE, NS, Clock, make_app, page

GOOD = 'id: "urn:example:hostile"\ntitle: Hostile\ndate: 2025-07-08T10:00:00Z\nsection: news'


def _problems(folder: Path) -> list[str]:
    with pytest.raises(ContentError) as caught:
        load_content(folder)
    return [str(problem) for problem in caught.value.problems]


def _check(folder: Path, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FEEDSVC_")}
    command = [sys.executable, "-m", "feedsvc", "check", "--content", str(folder)]
    return subprocess.run(command, cwd=ROOT, env={**clean, **(env or {})}, capture_output=True, text=True, timeout=timeout)


# --- pictures ------------------------------------------------------------------------------------


def _market_path(publication) -> str:
    return next(path for path in publication.paths() if path.startswith("/media/market."))


def test_a_picture_swapped_for_a_fifo_answers_404_at_once(newsroom, tmp_path):
    """A plain open() of a FIFO waits for a writer: every thread asked for the picture was pinned for good."""
    app = make_app(newsroom, tmp_path / "state")
    publication = app.extensions["feedsvc"].current
    path = _market_path(publication)
    (newsroom / "media" / "market.webp").unlink()
    os.mkfifo(newsroom / "media" / "market.webp")
    answers = []
    asking = threading.Thread(target=lambda: answers.append(app.test_client().get(path).status_code), daemon=True)
    try:
        asking.start()
        asking.join(5)
        assert answers == [404]
    finally:  # on the code before, a writer lets the blocked open() go
        descriptor = os.open(newsroom / "media" / "market.webp", os.O_WRONLY | os.O_NONBLOCK) if asking.is_alive() else None
        if descriptor is not None:
            os.close(descriptor)


@pytest.mark.integration
def test_a_fifo_picture_never_hangs_a_running_service(newsroom, tmp_path):
    with running_service(newsroom, tmp_path, workers=2, env={"FEEDSVC_STATE_DIR": str(tmp_path / "state")}) as (base, _):
        feed = fetch(base + "/feed.xml")[2]
        (market,) = {url for url in etree.fromstring(feed).xpath("//media:content/@url", namespaces=NS) if "/media/market." in url}
        (newsroom / "media" / "market.webp").unlink()
        os.mkfifo(newsroom / "media" / "market.webp")
        try:
            with concurrent.futures.ThreadPoolExecutor(12) as pool:
                statuses = list(pool.map(lambda _: _timed_fetch(market.replace(BASE, base)), range(12)))
            assert statuses == [404] * 12
            assert _timed_fetch(base + "/feed.xml") == 200
            deadline = time.monotonic() + 10
            while "market.webp" not in (health := fetch(base + "/healthz")[2].decode()) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert "media/market.webp" in health and "regular file" in health
        finally:
            for _ in range(12):  # on the code before: release any open() still waiting, or the service never stops
                try:
                    os.close(os.open(newsroom / "media" / "market.webp", os.O_WRONLY | os.O_NONBLOCK))
                except OSError:
                    break


def _timed_fetch(url: str) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0  # no answer within 5 s


def _picture_entry(newsroom: Path, file: str) -> None:
    write_entry(newsroom, "pictured.md", f"{GOOD}\nimage: {file}\nimage_alt: A picture")


def test_a_picture_above_the_pixel_limit_says_its_size_and_the_limit(newsroom):
    Image.new("1", (10_000, 10_000)).save(newsroom / "media" / "huge.png")  # 100 MP in a few kB: over Pillow's 89.5 MP too
    _picture_entry(newsroom, "media/huge.png")
    (problem,) = _problems(newsroom)
    assert "media/huge.png is 10,000x10,000 pixels (100,000,000), more than 50,000,000" in problem
    assert "not a readable" not in problem


@pytest.mark.parametrize(("name", "kind"), [("cut.jpg", "JPEG"), ("cut.png", "PNG")])
def test_a_truncated_picture_is_a_problem_not_a_broken_image(newsroom, name, kind):
    whole = newsroom / "media" / ("whole." + name.rsplit(".")[1])
    Image.effect_noise((320, 240), 60).convert("RGB").save(whole)
    data = whole.read_bytes()
    (newsroom / "media" / name).write_bytes(data[: len(data) * 2 // 3])
    _picture_entry(newsroom, f"media/{name}")
    (problem,) = _problems(newsroom)
    assert f"posts/pictured.md: image: media/{name} is not a whole {kind} image: it ends early (truncated)" in problem


def test_exif_orientation_turns_the_width_and_height_pages_and_feeds_give(newsroom, tmp_path):
    picture = Image.effect_noise((400, 300), 40).convert("RGB")
    exif = picture.getexif()
    exif[0x0112] = 6  # stored landscape, shown rotated a quarter: portrait
    picture.save(newsroom / "media" / "turned.jpg", exif=exif)
    _picture_entry(newsroom, "media/turned.jpg")
    client = make_app(newsroom, tmp_path / "state").test_client()
    (img,) = page(client, "/posts/pictured/").xpath("//figure/img")
    assert (img.get("width"), img.get("height")) == ("300", "400")
    rss = etree.fromstring(client.get("/feed.xml").data)
    (media,) = rss.xpath("//item[link='%s']/media:content" % (BASE + "/posts/pictured/"), namespaces=NS)
    assert (media.get("width"), media.get("height")) == ("300", "400")


@pytest.mark.parametrize("name", ["what?.jpg", "one#two.jpg", "a%2Fb.jpg", "line\nbreak.jpg", "café au lait.jpg"])
def test_a_picture_name_that_urls_would_escape_still_gives_a_working_link(newsroom, tmp_path, name):
    Image.new("RGB", (40, 30), "#345678").save(newsroom / "media" / name, format="JPEG")
    write_entry(newsroom, "pictured.md", f"{GOOD}\nimage: {json.dumps('media/' + name)}\nimage_alt: A picture")
    client = make_app(newsroom, tmp_path / "state").test_client()
    (src,) = page(client, "/posts/pictured/").xpath("//figure/img/@src")
    assert src.startswith(BASE + "/media/") and not set(src) & set("?#% \n")
    response = client.get(src.removeprefix(BASE))
    assert response.status_code == 200 and response.data == (newsroom / "media" / name).read_bytes()
    (enclosure,) = etree.fromstring(client.get("/feed.xml").data).xpath(
        "//item[link='%s']/media:content/@url" % (BASE + "/posts/pictured/"), namespaces=NS
    )
    assert enclosure == src


def test_a_long_picture_name_never_makes_a_file_name_an_export_cannot_write(newsroom, tmp_path):
    name = "p" * 240 + ".png"
    Image.new("RGB", (40, 30)).save(newsroom / "media" / name)
    _picture_entry(newsroom, f"media/{name}")
    export = tmp_path / "export"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FEEDSVC_")} | {"FEEDSVC_STATE_DIR": str(tmp_path / "s")}
    built = subprocess.run(
        [sys.executable, "-m", "feedsvc", "build", str(export), "--content", str(newsroom)],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr
    (written,) = [p for p in (export / "media").iterdir() if p.name.startswith("ppp") and not p.name.endswith(".gz")]
    assert len(written.name.encode()) <= 255 and written.read_bytes() == (newsroom / "media" / name).read_bytes()


def test_build_says_which_document_it_could_not_write_without_a_traceback(newsroom, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FEEDSVC_")} | {"FEEDSVC_STATE_DIR": str(tmp_path / "s")}
    built = subprocess.run(
        [sys.executable, "-m", "feedsvc", "build", str(blocker / "export"), "--content", str(newsroom)],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 1
    assert "Traceback" not in built.stderr and "(build)" in built.stderr and "cannot be written" in built.stderr


# --- tags ----------------------------------------------------------------------------------------


def test_more_tags_than_the_cap_is_a_problem_found_at_once(newsroom):
    tags = json.dumps([f"topic {number}" for number in range(1000)])
    write_entry(newsroom, "tagged.md", f"{GOOD}\ntags: {tags}")
    started = time.monotonic()
    checked = _check(newsroom)  # 1,000 tags took 209 s and 305 MiB before
    assert checked.returncode == 1 and time.monotonic() - started < 30
    assert "posts/tagged.md: tags: has 1000 tags, more than 50; keep the ones a reader would follow" in checked.stderr


def test_a_tag_too_long_to_link_is_a_problem(newsroom):
    write_entry(newsroom, "tagged.md", f"{GOOD}\ntags: [{'x' * 70_000}]")
    (problem,) = _problems(newsroom)
    assert "posts/tagged.md: tags: tag" in problem and "is 70,000 characters long, more than 100" in problem


def test_a_tag_whose_url_segment_would_not_fit_a_file_name_is_a_problem(newsroom):
    write_entry(newsroom, "tagged.md", f"{GOOD}\ntags: [{'हिंदी' * 18}]")  # 90 characters, 270 bytes of UTF-8
    (problem,) = _problems(newsroom)
    assert "makes a URL segment of 270 bytes, more than 255" in problem


def test_a_slug_too_long_for_a_folder_name_is_a_problem(newsroom):
    write_entry(newsroom, "long.md", f"{GOOD}\nslug: {'-'.join(['word'] * 60)}")
    (problem,) = _problems(newsroom)
    assert "posts/long.md: slug: is 299 characters long, more than 200" in problem


def test_tag_feeds_are_rendered_on_request_not_with_every_version(newsroom, tmp_path):
    """Every tag's three feeds were rendered with the version and kept in the hot set: N tags cost 3N feeds of N categories."""
    tags = json.dumps([f"topic {number}" for number in range(50)])
    write_entry(newsroom, "tagged.md", f"{GOOD}\ntags: {tags}")
    app = make_app(newsroom, tmp_path / "state")
    publication = app.extensions["feedsvc"].current
    assert not [path for path in publication.documents if path.startswith("/tags/") and path != "/tags/"]
    client = app.test_client()
    for path in ("/tags/topic-7/feed.xml", "/tags/topic-7/atom.xml", "/tags/topic-7/feed.json"):
        response = client.get(path)
        assert response.status_code == 200 and b"Hostile" in response.data
    assert "/tags/topic-7/feed.xml" in publication.subscription_feeds  # still a topic a WebSub hub hears of


def test_tag_topics_change_exactly_when_the_tags_feeds_do(newsroom, tmp_path):
    from feedsvc.publication import subscription_topics

    write_entry(newsroom, "tagged.md", f"{GOOD}\ntags: [Harbour, Weather]")
    app = make_app(newsroom, tmp_path / "state")
    publisher = app.extensions["feedsvc"]
    before = subscription_topics(publisher.current)
    write_entry(newsroom, "tagged.md", f"{GOOD}\ntags: [Harbour, Weather]", "A new paragraph.")
    os.utime(newsroom / "posts" / "tagged.md", (time.time() + 5, time.time() + 5))
    assert publisher.refresh()
    after = subscription_topics(publisher.current)
    changed = {url for url in after if after[url] != before.get(url)}
    assert BASE + "/tags/weather/feed.xml" in changed and BASE + "/tags/harbour/atom.xml" in changed
    assert not [url for url in changed if "/tags/" in url and "/weather/" not in url and "/harbour/" not in url]


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        ("हिंदी", "हंद", False),  # Devanagari: the vowel signs are part of the word
        ("বাংলা", "বংল", False),  # Bengali
        ("สวัสดี", "สวสด", False),  # Thai: its vowel and tone marks are combining marks
        ("عَرَبِي", "عربي", True),  # Arabic harakat are optional: one word, one tag (README)
        ("Zürich", "Zu\u0308rich", True),  # composed or not
    ],
)
def test_tag_slugs_keep_combining_marks(first, second, same):
    assert tag_slug(first) and tag_slug(second)
    assert (tag_slug(first) == tag_slug(second)) is same
    assert "-" not in tag_slug(first)


def test_invisible_characters_are_removed_from_tag_labels(newsroom, tmp_path):
    write_entry(newsroom, "tagged.md", f'{GOOD}\ntags: ["ev\u202eil\u200b tag", "\u200bHarbour\u2066"]')
    content = load_content(newsroom)
    entry = next(e for e in content.entries if e.source == "posts/tagged.md")
    assert entry.tags == ("evil tag", "Harbour")
    client = make_app(newsroom, tmp_path / "state").test_client()
    html = client.get("/posts/tagged/").data.decode()
    assert "\u202e" not in html and "\u200b" not in html and "evil tag" in html


PERSIAN = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # "I want": a ZWNJ keeps its prefix apart, as Persian spells it


def test_persian_joiners_stay_in_labels_and_out_of_slugs(newsroom):
    write_entry(newsroom, "tagged.md", f'{GOOD}\ntags: ["{PERSIAN}"]')
    entry = next(e for e in load_content(newsroom).entries if e.source == "posts/tagged.md")
    assert entry.tags == (PERSIAN,) and tag_slug(entry.tags[0]) == PERSIAN.replace("\u200c", "")


# --- URLs ----------------------------------------------------------------------------------------


def _site_file_with(newsroom: Path, line: str) -> None:
    site = newsroom / "site.yaml"
    site.write_text(site.read_text() + line + "\n")


def test_a_base_url_with_a_line_break_is_refused_not_written_into_robots_txt(newsroom):
    _site_file_with(newsroom, 'base_url: "https://news.example.com/\\nDisallow: /\\nX: "')
    (problem,) = _problems(newsroom)
    assert problem.startswith("site.yaml: base_url:") and "line break (U+000A)" in problem


@pytest.mark.parametrize("value", ["https://news.example.com/\r\nX: y", "https://news.example.com/a b", 'https://x.example/"><script>'])
def test_a_base_url_from_the_environment_is_checked_the_same_way(value):
    with pytest.raises(ConfigError, match="FEEDSVC_BASE_URL"):
        config_from_env({"FEEDSVC_BASE_URL": value})


def test_a_hub_url_with_a_line_break_is_refused():
    with pytest.raises(ConfigError, match="FEEDSVC_HUB_URL"):
        config_from_env({"FEEDSVC_HUB_URL": "https://hub.example/\nX: y"})


@pytest.mark.parametrize(
    ("front_matter", "field"),
    [
        ("image: 'https://cdn.example/a b.jpg'\nimage_alt: x", "image"),
        ("image: 'https://cdn.example/a\"onerror=\"x.jpg'\nimage_alt: x", "image"),
        ("image: 'https://cdn.example/<a>.jpg'\nimage_alt: x", "image"),
        ('authors: [{name: A, url: "https://a.example/\'><script>"}]', "authors"),
        ('authors: [{name: A, url: "https://a.example/x\\ty"}]', "authors"),
    ],
)
def test_image_and_author_urls_hold_no_quote_space_bracket_or_control(newsroom, front_matter, field):
    write_entry(newsroom, "bad-url.md", f"{GOOD}\n{front_matter}")
    (problem,) = _problems(newsroom)
    assert problem.startswith(f"posts/bad-url.md: {field}:") and "percent-encode it" in problem


# --- text that looks like HTML -------------------------------------------------------------------

PLANTED = "<script>alert(1)</script><aside>planted</aside>"


def _html_elements(fragment: str) -> set[str]:
    """The element names a reader that renders ``fragment`` as HTML would make."""
    if not fragment.strip():
        return set()
    return {element.tag for element in lxml.html.fragment_fromstring(fragment, create_parent="div").iter() if isinstance(element.tag, str)}


def test_markup_typed_into_any_text_field_stays_text_in_every_format(newsroom, tmp_path):
    site = newsroom / "site.yaml"
    text = site.read_text()
    text = text.replace('description: "An invented town\'s news: the example newsroom of feedsvc."', f"description: {json.dumps(PLANTED)}")
    text = text.replace("title: Harbour Town Chronicle", f"title: {json.dumps('Chronicle ' + PLANTED)}")
    text = text.replace("author: Chronicle Newsroom", f"author: {json.dumps('Desk ' + PLANTED)}")
    text = text.replace("  news: News", f"  news: {json.dumps('News ' + PLANTED)}")
    site.write_text(text)
    write_entry(
        newsroom,
        "planted.md",
        f'id: "urn:example:planted"\ntitle: {json.dumps("Title " + PLANTED)}\ndate: 2025-07-08T10:00:00Z\nsection: news\n'
        f"summary: {json.dumps('Summary ' + PLANTED)}\ntags: [{json.dumps('Tag ' + PLANTED)}]\n"
        f"authors: [{{name: {json.dumps('Ada ' + PLANTED)}}}]\nimage: media/harbour.jpg\nimage_alt: {json.dumps('Alt ' + PLANTED)}",
        f"Body {PLANTED}\n",
    )
    client = make_app(newsroom, tmp_path / "state").test_client()
    for feed in ("/feed.xml", "/news/feed.xml", "/tags/tag-script-alert-1-script-aside-planted-aside/feed.xml"):
        rss = etree.fromstring(client.get(feed).data)
        for element in rss.xpath("//channel/description | //item/description | //content:encoded", namespaces=NS):
            assert not _html_elements(element.text or "") & {"script", "aside"}, (feed, etree.tostring(element))
        atom = etree.fromstring(client.get(feed.replace("feed.xml", "atom.xml")).data)
        for element in atom.xpath("//*[@type='html']"):
            assert not _html_elements(element.text or "") & {"script", "aside"}, (feed, etree.tostring(element))
        assert not atom.xpath("//*[@type='xhtml']")
        items = json.loads(client.get(feed.replace("feed.xml", "feed.json")).data)["items"]
        for item in items:
            assert not _html_elements(item.get("content_html", "")) & {"script", "aside"}
    for path in ("/", "/posts/planted/", "/tags/", "/news/archive/"):
        html = lxml.html.fromstring(client.get(path).data)
        assert not html.xpath("//aside[.='planted'] | //script[contains(., 'alert')]"), path


# --- clocks --------------------------------------------------------------------------------------


def test_an_updated_date_in_the_future_is_a_problem_until_its_time(newsroom, tmp_path):
    clock = Clock()
    now = datetime.fromtimestamp(clock.now, UTC)
    app = make_app(newsroom, tmp_path / "state", clock=clock)
    publisher = app.extensions["feedsvc"]
    later = (now + timedelta(minutes=10)).isoformat()
    write_entry(newsroom, "early.md", f'id: "urn:example:early"\ntitle: Early\ndate: 2025-07-08T10:00:00Z\nsection: news\nupdated: {later}')
    assert not publisher.refresh()
    (problem,) = publisher.error.problems
    assert str(problem).startswith("posts/early.md: updated:") and "is later than now" in str(problem)
    assert b"Early" not in app.test_client().get("/feed.xml").data  # the last good version stays
    clock.now += 5 * 60
    assert not publisher.retry_due() and not publisher.refresh()
    clock.now += 5 * 60 + 1  # its time came: published without a further edit, as a fresh node would
    assert publisher.retry_due() and publisher.refresh()
    assert publisher.error is None and b"Early" in app.test_client().get("/feed.xml").data


def test_check_refuses_an_updated_date_of_2099(newsroom):
    write_entry(newsroom, "early.md", f"{GOOD}\nupdated: 2099-01-01")
    checked = _check(newsroom)
    assert checked.returncode == 1 and "posts/early.md: updated: 2099-01-01" in checked.stderr and "is later than now" in checked.stderr


@pytest.mark.integration
def test_last_modified_is_never_later_than_date_under_a_burst_of_saves(content_dir, tmp_path):
    """A save every 50 ms for 10 s, polled by two workers: Last-Modified ran up to 11 s ahead of Date before."""
    env = {"FEEDSVC_STATE_DIR": str(tmp_path / "state")}
    with running_service(content_dir, tmp_path, workers=2, env=env) as (base, _):
        stop = threading.Event()
        answers: list[tuple[str, datetime, datetime]] = []

        def poll() -> None:
            while not stop.is_set():
                status, headers, _ = fetch(base + "/feed.xml")
                if status == 200 and "Last-Modified" in headers:
                    answers.append(
                        (headers["ETag"], parsedate_to_datetime(headers["Last-Modified"]), parsedate_to_datetime(headers["Date"]))
                    )

        pollers = [threading.Thread(target=poll) for _ in range(2)]
        for poller in pollers:
            poller.start()
        try:
            deadline = time.monotonic() + 10
            number = 0
            while time.monotonic() < deadline:
                number += 1
                write_entry(
                    content_dir, "burst.md", f'id: "urn:example:burst"\ntitle: Save {number}\ndate: 2025-07-08T10:00:00Z\nsection: latest'
                )
                time.sleep(0.05)
        finally:
            stop.set()
            for poller in pollers:
                poller.join()
    assert len({etag for etag, _, _ in answers}) > 5  # the burst was published, not just polled
    ahead = [(etag, modified, date) for etag, modified, date in answers if modified > date]
    assert not ahead, f"{len(ahead)} of {len(answers)} answers had Last-Modified after Date"
    times: dict[str, set[datetime]] = {}
    for etag, modified, _ in answers:
        times.setdefault(etag, set()).add(modified)
    assert all(len(found) == 1 for found in times.values())  # one time per set of bytes, whichever worker answered


@pytest.mark.parametrize(
    ("label", "kept"),
    [
        ("\u0915\u094d\u200d\u0937", "\u0915\u094d\u200d\u0937"),  # Devanagari: a virama and ZWJ ask for a half form
        ("\U0001f469\u200d\U0001f4bb", "\U0001f469\u200d\U0001f4bb"),  # an emoji sequence
        ("\u200dHarbour\u200c", "Harbour"),  # joining nothing: invisible, so gone
        ("Har\u00adbour\u2060", "Harbour"),  # soft hyphen, word joiner
    ],
)
def test_joiners_stay_only_where_they_join(label, kept):
    from feedsvc.models import visible_label

    assert visible_label(label) == kept


def test_an_ampersand_in_the_site_description_is_escaped_once_in_rss(newsroom, tmp_path):
    """Escaping the whole description twice made "Sport & more" "&amp;amp;": the W3C validator warned of HTML in it."""
    site = newsroom / "site.yaml"
    site.write_text(
        site.read_text().replace('description: "An invented town\'s news: the example newsroom of feedsvc."', 'description: "Sport & more"')
    )
    client = make_app(newsroom, tmp_path / "state").test_client()
    for path in ("/feed.xml", "/news/feed.xml", "/tags/harbour/feed.xml"):
        (description,) = etree.fromstring(client.get(path).data).xpath("/rss/channel/description/text()")
        assert description.endswith("Sport & more"), path
