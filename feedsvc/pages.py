"""Pure HTML rendering: Content -> landing page, entry pages, HTML archives and the 404 page (Jinja, autoescaped)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from .models import Author, Content, Entry, Section, tag_slug
from .urls import tag_path

_environment = Environment(
    loader=PackageLoader("feedsvc", "templates"),
    autoescape=select_autoescape(default=True),
    undefined=StrictUndefined,  # a typo in a template fails the build, not silently renders ""
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,  # packaged templates never change while running: no stat() of each one per page
)


@dataclass(frozen=True)
class FeedLink:
    """A feed offered for subscription: name, format name, media type and absolute URL."""

    title: str
    format: str
    media_type: str
    url: str


@dataclass(frozen=True)
class PageContext:
    """What every page needs besides its own data; URLs are absolute and computed once, not per page."""

    content: Content
    feeds: tuple[FeedLink, ...]  # the site's feeds: RSS, Atom, JSON Feed
    stylesheet_url: str  # the hashed stylesheet
    icon_url: str  # the hashed favicon
    section_feeds: tuple[tuple[Section, tuple[FeedLink, ...]], ...] = ()
    chrome: Mapping[str, Markup] = field(default_factory=dict, compare=False)  # head links, header, footer
    tag_labels: Mapping[str, str] = field(default_factory=dict, compare=False)  # slug -> label, every tag of the site
    opml_url: str = ""  # every subscription feed in one OPML file

    @property
    def home_url(self) -> str:
        """Return the absolute URL of the landing page."""
        return self.content.site.url("/")


def page_context(
    content: Content,
    feeds: tuple[FeedLink, ...],
    stylesheet_url: str,
    icon_url: str,
    section_feeds: tuple[tuple[Section, tuple[FeedLink, ...]], ...] = (),
    tag_labels: Mapping[str, str] | None = None,
    opml_url: str = "",
) -> PageContext:
    """Build the shared page context, rendering the parts all pages share once."""
    context = PageContext(content, feeds, stylesheet_url, icon_url, section_feeds, {}, tag_labels or {}, opml_url)
    chrome = _environment.get_template("_chrome.html").module
    site = content.site
    parts = {name: Markup(getattr(chrome, name)(site, context)) for name in ("head", "header", "footer")}
    return replace(context, chrome=parts)


def _render(template: str, context: PageContext, **values) -> bytes:
    site = context.content.site
    template = _environment.get_template(template)
    return template.render(site=site, page=context, chrome=context.chrome, home_url=context.home_url, **values).encode("utf-8")


def render_index(context: PageContext) -> bytes:
    """Render the landing page: the lead entry, then one list per remaining section."""
    content = context.content
    first, *others = content.site.sections
    leading = content.in_section(first.key)
    lead = next(iter(leading), None)
    # the newest few per section: with thousands of entries the feeds' archives hold the rest;
    # the lead's own section is listed too when it has more than the lead (a newsroom's news)
    limit = content.site.item_limit
    lists = [(first, leading[1 : limit + 1])] if len(leading) > 1 else []
    lists += [(section, content.in_section(section.key)[:limit]) for section in others]
    return _render("index.html", context, lead=lead, lists=lists)


CONTENTS_FROM = 3  # headings an entry needs before its page lists them at the top


def tag_links(context: PageContext, entry: Entry) -> list[tuple[str, str]]:
    """Return (label, absolute URL) of each of the entry's tags, with the site's label for it."""
    site = context.content.site
    return [(context.tag_labels[slug], site.url(tag_path(slug))) for slug in map(tag_slug, entry.tags)]


def render_entry(context: PageContext, entry: Entry) -> bytes:
    """Render the page of one entry: picture, byline, contents (three headings or more), body, tags."""
    site = context.content.site
    body_html, headings, summary = entry.texts()
    return _render(
        "entry.html",
        context,
        entry=entry,
        body_html=body_html,
        summary=summary,
        entry_url=site.url(entry.path),
        section=site.section(entry.section),
        contents=headings if len(headings) >= CONTENTS_FROM else (),
        authors=entry.authors or (Author(site.author),),
        tags=tag_links(context, entry),
    )


@dataclass(frozen=True)
class Pager:
    """Where one page of a paginated list stands: its number, the count, and the pages around it."""

    number: int
    count: int
    newer_url: str | None
    older_url: str | None


def render_tag_page(context: PageContext, label: str, entries: tuple[Entry, ...], pager: Pager, feeds: tuple[FeedLink, ...]) -> bytes:
    """Render one page of a tag's entries, newest first, with its feeds for autodiscovery."""
    return _render("tag.html", context, label=label, entries=entries, pager=pager, tag_feeds=feeds)


def render_tags_index(context: PageContext, tags: tuple[tuple[str, str, int], ...]) -> bytes:
    """Render the list of every tag: (label, absolute URL, number of entries), by label."""
    return _render("tags.html", context, tags=tags)


@dataclass(frozen=True)
class ArchiveMonth:
    """One month of an HTML archive: its label, absolute URL and number of entries."""

    label: str
    url: str
    count: int


def render_archive_index(
    context: PageContext, heading: str, noun: str, months: tuple[ArchiveMonth, ...], others: tuple[tuple[str, str], ...]
) -> bytes:
    """Render an HTML archive's index: every month, newest first, grouped by year."""
    years: dict[str, list[ArchiveMonth]] = {}
    for month in months:
        years.setdefault(month.label.rsplit(" ", 1)[1], []).append(month)
    total = sum(month.count for month in months)
    return _render("archive_index.html", context, heading=heading, noun=noun, years=list(years.items()), total=total, others=others)


def render_archive_month(
    context: PageContext, heading: str, entries: tuple[Entry, ...], index_url: str, newer: ArchiveMonth | None, older: ArchiveMonth | None
) -> bytes:
    """Render one month of an HTML archive: its entries, newest first, with links to the months around it."""
    return _render("archive_month.html", context, heading=heading, entries=entries, index_url=index_url, newer=newer, older=older)


def render_not_found(context: PageContext) -> bytes:
    """Render the page shown for unknown paths."""
    return _render("404.html", context)
