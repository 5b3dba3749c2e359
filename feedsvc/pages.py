"""Pure HTML rendering: Content -> landing page, entry pages and the 404 page (Jinja, autoescaped)."""

from __future__ import annotations

from dataclasses import dataclass

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from .models import Content, Entry

_environment = Environment(
    loader=PackageLoader("feedsvc", "templates"),
    autoescape=select_autoescape(default=True),
    undefined=StrictUndefined,  # a typo in a template fails the build, not silently renders ""
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class FeedLink:
    """A feed offered for subscription: name, media type and absolute URL."""

    title: str
    media_type: str
    url: str


@dataclass(frozen=True)
class PageContext:
    """What every page needs besides its own data."""

    content: Content
    feeds: tuple[FeedLink, ...]
    stylesheet: str  # site path of the hashed stylesheet
    icon: str  # site path of the hashed favicon


def _render(template: str, context: PageContext, **values) -> bytes:
    site = context.content.site
    return _environment.get_template(template).render(site=site, page=context, **values).encode("utf-8")


def render_index(context: PageContext) -> bytes:
    """Render the landing page: the lead entry, then one list per remaining section."""
    content = context.content
    first, *others = content.site.sections
    lead = next(iter(content.in_section(first.key)), None)
    lists = [(section, content.in_section(section.key)) for section in others]
    return _render("index.html", context, lead=lead, lists=lists)


def render_entry(context: PageContext, entry: Entry) -> bytes:
    """Render the page of one entry."""
    return _render("entry.html", context, entry=entry, section=context.content.site.section(entry.section))


def render_not_found(context: PageContext) -> bytes:
    """Render the page shown for unknown paths."""
    return _render("404.html", context)
