"""The content loader: the bundled seed transcription and every documented kind of bad file."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from feedsvc.markdown import SUMMARY_LIMIT, render_markdown
from feedsvc.problems import ContentError
from feedsvc.source.fields import split_front_matter
from feedsvc.source.loader import load_content
from feedsvc.source.scan import scan_folder
from tests.conftest import BUNDLED_CONTENT, require, write_entry

SEED = Path(__file__).resolve().parents[2] / "shared" / "seeds" / "000_a13736f9783a376b.txt"
ARTICLE_TITLE = "Ketamine Therapy: High Risk, High Reward for Severe Depression?"
FEATURED = [
    "Two 16 Year Old Boys Found Dead On Poynton Railway Line",
    "This Montana Town Where Gourmet Food Meets Untamed Wilderness",
    "Oregon State Beavers Star Makes Ea Sports College Football 2024 Top 100",
    "New Faces Proteas Announce Test Debutants",
    "4 Xtra Rapper Suffers Hand Injuries In Independence Day Fireworks Accident",
]
LATEST = [
    "Fathers Heartbreaking Plea Searching For Missing Daughter In Texas",
    "Newspaper Headline Analysis Exploring The Effectiveness Of You Ll Never Walk Alone And Swept Away",
    "The Superman Lex Luthor Relationship A Deep Dive Into Their Complicated Bond",
    "Dogecoins Future Examining The Factors Behind Potential Price Increases",
    "Yemen Ports Hit In Israeli Military Operation Galaxy Leader Ship Involved",
]
GOOD_ENTRY = """
    id: "urn:uuid:5b0f4f8e-0c55-4bd7-a1c6-3f61f3f0a001"
    title: A good entry
    date: Jul 08, 2025 09:00
    section: latest
"""


@pytest.fixture(scope="module")
def bundled():
    return load_content(BUNDLED_CONTENT)


def test_bundled_content_has_the_article_and_ten_posts_in_page_order(bundled):
    titles = [e.title for e in bundled.entries]
    assert titles == [ARTICLE_TITLE, *FEATURED, *LATEST]  # newest first == the page's order
    assert [e.section for e in bundled.entries] == ["article"] + ["featured"] * 5 + ["latest"] * 5


def test_post_titles_are_exactly_those_of_the_seed_page():
    require(SEED.exists(), f"the seed page {SEED} is not beside this checkout")
    seed = SEED.read_text(encoding="utf-8")
    for title in FEATURED + LATEST:
        assert f"\n{title}\n" in seed


def test_posts_keep_the_calendar_date_written_on_the_page(bundled):
    for entry in bundled.entries:
        assert (entry.published.year, entry.published.month, entry.published.day) == (2025, 7, 7)
        assert entry.published.utcoffset() is not None
    published = [e.published for e in bundled.entries]
    assert len(set(published)) == len(published), "validators warn when two entries share a timestamp"


def test_article_has_lede_every_heading_every_list_and_the_closing_advice(bundled):
    article = bundled.entries[0]
    lede = "A groundbreaking treatment, or a risky gamble? We delve into the complexities of ketamine therapy for severe depression."
    assert article.summary == lede  # the first paragraph, as plain text
    assert article.body_html.startswith(f"<p>{lede}</p>")  # and part of the full content
    for heading in [
        "Ketamine: Beyond the Party Drug",
        "How Does Ketamine Therapy Work?",
        "The Potential Benefits: A Glimpse of Hope",
        "The Risks: Navigating the Challenges",
        "Who is a Candidate for Ketamine Therapy?",
        "Finding a Qualified Provider",
        "Ketamine Therapy: A Balanced Perspective",
    ]:
        assert f">{heading}</h2>" in article.body_html  # with its anchor id (tests/test_newsroom.py)
    assert article.body_html.count("<ul>") == 2
    assert article.body_html.count("<li>") == 7
    assert "Always seek the advice of a healthcare professional before starting any new treatment." in article.body_html


def test_site_chrome_is_not_content(bundled):
    everything = " ".join(e.title + e.summary + e.body_html for e in bundled.entries)
    for chrome in ["Welcome to your ultimate source", "Thank you for visiting", "Table of Contents"]:
        assert chrome not in everything


def test_posts_have_no_invented_text(bundled):
    for entry in bundled.entries[1:]:
        assert entry.body_html == "" and entry.summary == ""


def test_ids_and_slugs_are_unique_and_ids_are_uris(bundled):
    ids = [e.id for e in bundled.entries]
    slugs = [e.slug for e in bundled.entries]
    assert len(set(ids)) == len(ids) == 11
    assert len(set(slugs)) == len(slugs)
    assert all(i.startswith("urn:uuid:") for i in ids)


def test_id_survives_a_title_and_slug_change(content_dir):
    before = {e.title: e.id for e in load_content(content_dir).entries}
    path = content_dir / "posts" / "new-faces-proteas-announce-test-debutants.md"
    text = path.read_text().replace("New Faces Proteas Announce Test Debutants", "Proteas Name New Test Debutants")
    path.write_text(text.replace("section: featured", "section: featured\nslug: proteas-debutants"))
    after = {e.title: (e.id, e.slug) for e in load_content(content_dir).entries}
    assert after["Proteas Name New Test Debutants"] == (before["New Faces Proteas Announce Test Debutants"], "proteas-debutants")


def test_naive_dates_take_the_site_time_zone_and_zoned_dates_keep_theirs(content_dir):
    site = content_dir / "site.yaml"
    site.write_text(site.read_text().replace("timezone: UTC", "timezone: America/Chicago"))
    write_entry(content_dir, "naive.md", GOOD_ENTRY)
    write_entry(content_dir, "zoned.md", GOOD_ENTRY.replace("5b0f", "6c1f").replace("09:00", "09:00 +02:00"))
    entries = {e.slug: e for e in load_content(content_dir).entries}
    assert entries["naive"].published.utcoffset() == timedelta(hours=-5)  # CDT in July
    assert entries["zoned"].published.utcoffset() == timedelta(hours=2)
    assert entries["naive"].published == datetime.fromisoformat("2025-07-08T14:00:00+00:00")


def _name(path: Path, content_dir: Path) -> str:
    """Name a file the way problems do: relative to the content folder."""
    return path.relative_to(content_dir).as_posix()


def _problems(content_dir: Path) -> list[str]:
    with pytest.raises(ContentError) as caught:
        load_content(content_dir)
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize(
    ("front_matter", "field", "words"),
    [
        (GOOD_ENTRY.replace("title: A good entry", ""), "title", "is missing"),
        (GOOD_ENTRY.replace("title: A good entry", 'title: ""'), "title", "is empty"),
        (GOOD_ENTRY.replace("Jul 08, 2025 09:00", "the day after tomorrow"), "date", "is not a date"),
        (GOOD_ENTRY.replace("Jul 08, 2025 09:00", "Feb 30, 2025"), "date", "is not a date"),
        (GOOD_ENTRY.replace("section: latest", "section: sport"), "section", "is not a section"),
        (GOOD_ENTRY.replace('"urn:uuid:5b0f4f8e-0c55-4bd7-a1c6-3f61f3f0a001"', "not a uri"), "id", "is not a URI"),
        # RFC 8141: a namespace id has 2 characters at least (the W3C validator: "id is not a valid URN")
        (GOOD_ENTRY.replace('"urn:uuid:5b0f4f8e-0c55-4bd7-a1c6-3f61f3f0a001"', "urn:x:1"), "id", "is not a URI"),
        (GOOD_ENTRY + "\n    slug: Not A Slug", "slug", "is not a slug"),
        (GOOD_ENTRY + "\n    tittle: typo", "tittle", "unknown field"),
        (GOOD_ENTRY.replace("title: A good entry", "title: [unclosed"), "front matter", "invalid YAML at line"),
        (GOOD_ENTRY.replace("title: A good entry", "title: yes"), "title", "put the value in quotes"),
        (GOOD_ENTRY + "\n    updated: Jul 01, 2025", "updated", "earlier than date"),
    ],
)
def test_bad_entry_is_reported_with_file_field_and_fix(content_dir, front_matter, field, words):
    write_entry(content_dir, "bad.md", front_matter)
    problems = _problems(content_dir)
    assert any(p.startswith(f"posts/bad.md: {field}: ") and words in p for p in problems), problems


def test_duplicate_id_and_slug_name_both_files(content_dir):
    first = _name(write_entry(content_dir, "one.md", GOOD_ENTRY), content_dir)
    second = _name(write_entry(content_dir, "two.md", GOOD_ENTRY + "\n    slug: one"), content_dir)
    problems = _problems(content_dir)
    assert (
        f"{second}: id: 'urn:uuid:5b0f4f8e-0c55-4bd7-a1c6-3f61f3f0a001' is already used by {first}; every entry needs its own id"
        in problems
    )
    assert any(p.startswith(f"{second}: slug: 'one' is already used by {first}") for p in problems)


def test_non_utf8_file_is_named_with_the_offending_byte(content_dir):
    path = content_dir / "posts" / "latin1.md"
    path.write_bytes(("---\n" + GOOD_ENTRY + "---\nCaf\u00e9\n").encode("latin-1"))
    assert any(p.startswith("posts/latin1.md: encoding: byte 0xe9") and "UTF-8" in p for p in _problems(content_dir))


def test_half_written_file_without_closing_delimiter_is_reported(content_dir):
    (content_dir / "posts" / "half.md").write_text("---\nid: urn:example:1\ntitle: Half")
    assert any(p.startswith("posts/half.md: front matter: missing") for p in _problems(content_dir))


def test_every_problem_is_reported_at_once(content_dir):
    write_entry(content_dir, "a.md", GOOD_ENTRY.replace("section: latest", "section: sport"))
    write_entry(content_dir, "b.md", GOOD_ENTRY.replace("Jul 08, 2025 09:00", "someday").replace("5b0f", "7d2f"))
    problems = _problems(content_dir)
    assert any(": section: " in p for p in problems) and any(": date: " in p for p in problems)


@pytest.mark.parametrize(
    ("replace", "field", "words"),
    [
        (("timezone: UTC", "timezone: Mars/Olympus"), "timezone", "is not an IANA time zone"),
        (("item_limit: 20", "item_limit: -3"), "item_limit", "at least 1"),
        (("title: Best Website", "title:"), "title", "is missing"),
        (("sections:", "sections: 3\nignored:"), "sections", "must map"),
    ],
)
def test_bad_site_file_is_reported(content_dir, replace, field, words):
    site = content_dir / "site.yaml"
    site.write_text(site.read_text().replace(*replace))
    assert any(p.startswith(f"site.yaml: {field}: ") and words in p for p in _problems(content_dir))


def test_bad_environment_override_is_reported(content_dir):
    with pytest.raises(ContentError) as caught:
        load_content(content_dir, {"base_url": "ftp://example.com"})
    assert str(caught.value.problems[0]).startswith("environment: FEEDSVC_BASE_URL: 'ftp://example.com' is not an absolute http(s) URL")


def test_control_characters_are_stripped_from_text(content_dir):
    write_entry(content_dir, "ctl.md", GOOD_ENTRY.replace("A good entry", "A\x01 good\x1f entry"), body="Body\x0b text\n")
    entry = next(e for e in load_content(content_dir).entries if e.slug == "ctl")
    assert entry.title == "A good entry"
    assert entry.body_html == "<p>Body text</p>\n"


def test_raw_html_in_markdown_is_escaped_not_executed():
    html = render_markdown("<script>alert(1)</script>\n\n[x](javascript:alert(1)) <img src=x onerror=alert(1)>", "https://e.com/p/").html
    assert "<script>" not in html and "<img" not in html
    assert 'href="javascript' not in html


def test_relative_links_and_images_become_absolute():
    html = render_markdown("[a](../other/) [b](/feed.xml) ![c](pic.png) [d](https://elsewhere.org/x)", "https://e.com/posts/slug/").html
    assert 'href="https://e.com/posts/other/"' in html
    assert 'href="https://e.com/feed.xml"' in html
    assert 'src="https://e.com/posts/slug/pic.png"' in html
    assert 'href="https://elsewhere.org/x"' in html


def test_front_matter_split_requires_both_delimiters():
    assert split_front_matter("---\na: 1\n---\nbody") == ("a: 1\n", "body")
    assert split_front_matter("a: 1\nbody") is None
    assert split_front_matter("---\na: 1\n") is None


def test_yaml_dates_stay_text_so_iso_dates_parse_with_dateutil(content_dir):
    write_entry(content_dir, "iso.md", GOOD_ENTRY.replace("Jul 08, 2025 09:00", "2025-07-08"))
    entry = next(e for e in load_content(content_dir).entries if e.slug == "iso")
    assert entry.published == datetime.fromisoformat("2025-07-08T00:00:00+00:00")


def test_summary_defaults_to_the_first_paragraph_as_plain_text(content_dir):
    write_entry(content_dir, "sum.md", GOOD_ENTRY, body="# Heading\n\nFirst *para* with `code`\nand a [link](/x).\n\nSecond.\n")
    entry = next(e for e in load_content(content_dir).entries if e.slug == "sum")
    assert entry.summary == "First para with code and a link."


@pytest.mark.parametrize(
    "name",
    [".#post.md", "#post.md#", "post.md~", ".post.md.swp", "README.md", "readme.md", ".drafts/post.md", "notes.txt"],
)
def test_editor_files_and_documentation_are_not_entries(content_dir, name):
    path = content_dir / "posts" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("not front matter at all")
    assert [file.name.rpartition("/")[2] for file in scan_folder(content_dir).files].count(path.name) == 0
    assert len(load_content(content_dir).entries) == 11


def test_a_dangling_symlink_is_not_an_entry(content_dir):
    # what Emacs leaves while a buffer has unsaved changes: .#name.md -> user@host.pid:time
    (content_dir / "posts" / "lock.md").symlink_to("root@host.4242:1700000000")
    assert len(load_content(content_dir).entries) == 11


@pytest.mark.parametrize(
    ("written", "words"),
    [
        ("Jul 07", "is not a complete date"),  # the year would come from the day the process started
        ("19:00", "is not a complete date"),
        ("Monday", "is not a complete date"),
        ("July 2025", "is not a complete date"),
        ("Jul 07, 2025 19:00 PST", "time-zone abbreviation 'PST' is ambiguous"),
        ("2025-07-07 19:00 GMT+3", "mixes a zone name with an offset"),
        ("0001-01-01T00:30:00+01:00", "outside the years 1000-9999"),
        ("9999-12-31T23:00:00-05:00", "outside the years 1000-9999"),
    ],
)
def test_dates_that_depend_on_the_day_or_cannot_be_written_are_refused(content_dir, written, words):
    write_entry(content_dir, "bad.md", GOOD_ENTRY.replace("Jul 08, 2025 09:00", written))
    problems = _problems(content_dir)
    assert any(p.startswith("posts/bad.md: date: ") and words in p for p in problems), problems


@pytest.mark.parametrize(
    ("written", "words"),
    [
        ("Mar 30, 2025 01:30", "does not exist (the clocks skip it) in Europe/London"),
        ("Oct 26, 2025 01:30", "happens twice (the clocks go back) in Europe/London"),
    ],
)
def test_local_times_in_a_dst_gap_or_overlap_are_refused(content_dir, written, words):
    site = content_dir / "site.yaml"
    site.write_text(site.read_text().replace("timezone: UTC", "timezone: Europe/London"))
    write_entry(content_dir, "bad.md", GOOD_ENTRY.replace("Jul 08, 2025 09:00", written))
    assert any(words in p and "UTC offset" in p for p in _problems(content_dir))


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("2025-07-07T19:30:00+02:00", "2025-07-07T19:30:00+02:00"),
        ("2025-07-07T17:30:00Z", "2025-07-07T17:30:00+00:00"),
        ("Jul 07, 2025 17:30 UTC", "2025-07-07T17:30:00+00:00"),
        ("2000-01-01", "2000-01-01T00:00:00+00:00"),
        ("Jan 01, 2025 00:00", "2025-01-01T00:00:00+00:00"),
    ],
)
def test_complete_dates_keep_the_offset_they_were_written_with(content_dir, written, expected):
    write_entry(content_dir, "good.md", GOOD_ENTRY.replace("Jul 08, 2025 09:00", written))
    entry = next(e for e in load_content(content_dir).entries if e.slug == "good")
    assert entry.published.isoformat() == expected


@pytest.mark.parametrize(
    ("body", "summary"),
    [
        ("- first point\n- second point\n\nThen prose.\n", "first point; second point"),
        ("![A harbour at dawn](https://images.example.org/harbour.jpg)\n\nThe lede after the picture.\n", "The lede after the picture."),
        ("## A heading\n\nText under it.\n", "Text under it."),
        ("A body that mentions <aside> and 5 < 6.\n", "A body that mentions <aside> and 5 < 6."),
    ],
)
def test_summary_is_the_first_text_of_the_body(content_dir, body, summary):
    write_entry(content_dir, "sum.md", GOOD_ENTRY, body=body)
    assert next(e for e in load_content(content_dir).entries if e.slug == "sum").summary == summary


def test_a_long_summary_is_cut_at_a_word(content_dir):
    write_entry(content_dir, "long.md", GOOD_ENTRY, body=" ".join(["wordy"] * 200) + "\n")
    summary = next(e for e in load_content(content_dir).entries if e.slug == "long").summary
    assert len(summary) <= SUMMARY_LIMIT and summary.endswith("wordy\u2026")


@pytest.mark.parametrize("zone", ["UTC", "Europe/London", "America/Los_Angeles"])
@pytest.mark.parametrize(
    "text",
    [
        "2025-07-07T18:00:00+01:00",
        "2025-07-07T18:00:00Z",
        "2025-07-07 18:00",
        "2025-07-07T18:00:00.123456-08:00",
        "2025-07-07T18:00:00+00:00",
        "2025-03-30T01:30:00",  # a DST gap in London
        "2025-11-02T01:30:00",  # an overlap in Los Angeles
        "2025-02-30T10:00:00Z",
        "0999-12-31T00:00:00Z",
    ],
)
def test_rfc3339_dates_read_without_dateutil_mean_what_dateutil_reads(monkeypatch, zone, text):
    import re
    from zoneinfo import ZoneInfo

    import feedsvc.source.fields

    def read(convert):
        try:
            value = convert(text)
            return value, value.tzinfo, value.isoformat()
        except ValueError as error:  # _FieldError
            return str(error)

    fast = read(feedsvc.source.fields._date_in(ZoneInfo(zone)))
    monkeypatch.setattr(feedsvc.source.fields, "_RFC3339", re.compile("(?!)"))  # everything through python-dateutil
    assert fast == read(feedsvc.source.fields._date_in(ZoneInfo(zone)))


@pytest.mark.parametrize("key", ["posts", "tags", "archive", "media", "static", "sitemaps", "healthz"])
def test_a_section_may_not_take_a_name_the_sites_own_documents_use(content_dir, key):
    """A section 'posts' would put its archive at /posts/archive/, where posts/archive.md's page is: one would hide the other."""
    site = content_dir / "site.yaml"
    site.write_text(site.read_text() + f"  {key}: A section\n")
    write_entry(content_dir, "archive.md", f"id: urn:example:archive\ntitle: Archive\ndate: 2025-07-09T10:00:00Z\nsection: {key}")
    with pytest.raises(ContentError) as raised:
        load_content(content_dir)
    assert str(raised.value.problems[0]).startswith(f"site.yaml: sections: section '{key}' is a name the site's own")


def test_two_documents_at_one_path_are_a_problem_naming_both_sources():
    from feedsvc.urls import PathTable, Source

    table = PathTable()
    section = Source("site.yaml", "sections", "the archive of section 'news'")
    table.add(["/news/archive/", "/news/feed.xml"], section)
    table.add(["/news/feed.xml"], section)  # the same source twice: no clash
    assert table.problems == []
    table.add(["/news/archive/"], Source("posts/a.md", "aliases", "an old path of posts/a.md"))
    table.add_entries({"/posts/x/"}, lambda path: Source("posts/x.md", "slug", "the page of posts/x.md"))
    assert [str(problem) for problem in table.problems] == [
        "posts/a.md: aliases: an old path of posts/a.md would be at /news/archive/, where the archive of section 'news' is"
        " (site.yaml); rename one of them"
    ]
    table.add(["/posts/x/"], Source("site.yaml", "sections", "a document of section 'posts'"))
    table.add_entries({"/posts/x/"}, lambda path: Source("posts/x.md", "slug", "the page of posts/x.md"))
    assert str(table.problems[-1]).startswith("posts/x.md: slug: the page of posts/x.md would be at /posts/x/, where a document of")


@pytest.mark.parametrize(
    ("order", "written", "expected"),
    [
        (None, "7/8/2025 10:00", "is ambiguous: 7 may be the day or the month"),
        (None, "13/8/2025 10:00", "2025-08-13T10:00:00+00:00"),  # only one reading: 13 cannot be a month
        (None, "8/8/2025 10:00", "2025-08-08T10:00:00+00:00"),
        ("DMY", "7/8/2025 10:00", "2025-08-07T10:00:00+00:00"),
        ("MDY", "7/8/2025 10:00", "2025-07-08T10:00:00+00:00"),
        ("MDY", "13/8/2025 10:00", "has no month 13 (date_order: MDY in site.yaml)"),
        ("DMY", "Jul 07, 2025 18:00", "2025-07-07T18:00:00+00:00"),  # words are never ambiguous
    ],
)
def test_a_date_of_numbers_only_needs_the_sites_order_when_it_could_be_read_two_ways(content_dir, order, written, expected):
    if order:
        (content_dir / "site.yaml").write_text((content_dir / "site.yaml").read_text() + f"date_order: {order}\n")
    write_entry(content_dir, "numeric.md", f'id: urn:example:numeric\ntitle: Numeric\ndate: "{written}"\nsection: latest')
    try:
        entry = next(entry for entry in load_content(content_dir).entries if entry.slug == "numeric")
    except ContentError as error:
        assert any(
            problem.file == "posts/numeric.md" and problem.field == "date" and expected in problem.message for problem in error.problems
        )
    else:
        assert entry.published.isoformat() == expected


def test_a_yaml_error_names_the_files_own_line_and_what_was_being_read(content_dir):
    """An editor counts lines in the file: front matter starts on line 2; an unclosed quote says where the quote opened."""
    path = write_entry(content_dir, "quote.md", 'id: urn:example:q\ntitle: "Unclosed quote\ndate: 2025-07-09T10:00:00Z\nsection: latest')
    assert path.read_text().splitlines()[2].startswith('title: "')  # the file's line 3
    with pytest.raises(ContentError) as raised:
        load_content(content_dir)
    assert [str(problem) for problem in raised.value.problems] == [
        "posts/quote.md: front matter: invalid YAML at line 6, column 1: found unexpected end of stream"
        " (while scanning a quoted scalar that starts at line 3, column 8)"
    ]
