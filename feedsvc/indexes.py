"""Pure rendering of the documents that list the site for machines: sitemap, robots.txt, OPML.

lxml writes the XML (nothing escaped by hand); nothing here reads the clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from email.utils import format_datetime

from lxml import etree

from .models import Site

SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
SITEMAP_LIMIT = 50_000  # URLs in one sitemap file (sitemaps.org protocol); more go into an index of sitemaps
SITEMAP_TYPE = "application/xml; charset=utf-8"
OPML_TYPE = "text/x-opml; charset=utf-8"  # OPML 2.0 names no registered type; readers know this one
ROBOTS_TYPE = "text/plain; charset=utf-8"


def _xml(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _sitemap_xml(root_name: str, item_name: str, items: Sequence[tuple[str, datetime | None]]) -> bytes:
    root = etree.Element(f"{{{SITEMAP_NS}}}{root_name}", nsmap={None: SITEMAP_NS})
    for location, modified in items:
        item = etree.SubElement(root, f"{{{SITEMAP_NS}}}{item_name}")
        etree.SubElement(item, f"{{{SITEMAP_NS}}}loc").text = location
        if modified is not None:
            etree.SubElement(item, f"{{{SITEMAP_NS}}}lastmod").text = modified.isoformat()  # W3C Datetime
    return _xml(root)


def render_sitemap(urls: Sequence[tuple[str, datetime | None]]) -> bytes:
    """Render a sitemap (sitemaps.org 0.9): absolute URL and last modification of each page."""
    return _sitemap_xml("urlset", "url", urls)


def render_sitemap_index(sitemaps: Sequence[tuple[str, datetime | None]]) -> bytes:
    """Render a sitemap index: the absolute URL of each sitemap and the newest change it lists."""
    return _sitemap_xml("sitemapindex", "sitemap", sitemaps)


def render_robots(site: Site) -> bytes:
    """Render robots.txt: everything may be crawled; the sitemap says what there is (RFC 9309)."""
    return f"User-agent: *\nAllow: /\n\nSitemap: {site.url('/sitemap.xml')}\n".encode()


def render_opml(site: Site, groups: Sequence[tuple[str, Sequence[tuple[str, str, str]]]], updated: datetime) -> bytes:
    """Render OPML 2.0 (http://opml.org/spec2.opml) listing feeds for subscription, in groups.

    ``groups`` is (group title, [(feed title, RSS URL, HTML URL), ...]); a reader importing the
    file subscribes to every feed, keeping the groups as folders.
    """
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = f"{site.title}: every feed"
    etree.SubElement(head, "dateModified").text = format_datetime(updated)  # RFC 822, as OPML 2.0 asks
    etree.SubElement(head, "ownerName").text = site.author
    body = etree.SubElement(root, "body")
    for title, feeds in groups:
        group = etree.SubElement(body, "outline", text=title)  # a folder: text only (a type would make it something else)
        for feed_title, xml_url, html_url in feeds:
            etree.SubElement(group, "outline", type="rss", text=feed_title, title=feed_title, xmlUrl=xml_url, htmlUrl=html_url)
    return _xml(root)
