"""Markdown bodies: CommonMark to HTML with absolute links, anchored headings and checked pictures, plus the lede.

Pure: a body's HTML depends only on its text, the page's URL and the pictures ``find_image`` names.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable
from html import escape
from typing import NamedTuple
from urllib.parse import unquote, urljoin, urlsplit

from markdown_it import MarkdownIt
from mdit_py_plugins.anchors import anchors_plugin
from mdit_py_plugins.anchors.index import slugify as _heading_slug

from .media import MediaError
from .models import Heading, MediaFile

log = logging.getLogger(__name__)

# ids the pages' own elements use: a heading called "Main" must not take the skip link's target
_PAGE_IDS = frozenset({"main", "contents", "contents-title", "subscribe", "lead-title", "tags", "byline"})


def _anchor(text: str) -> str:
    slug = _heading_slug(text) or "section"
    return f"{slug}-section" if slug in _PAGE_IDS else slug


# CommonMark with raw HTML disabled: HTML typed into Markdown is shown as text, never executed,
# and markdown-it's validateLink already refuses javascript:/vbscript:/data: links. Every heading
# gets a stable id from its text (GitHub's way, unique within the entry) for links and contents.
# Its own "normalize" rule is replaced by ``_normalized`` (the same text, faster).
_markdown = MarkdownIt("commonmark", {"html": False}).use(anchors_plugin, min_level=1, max_level=6, slug_func=_anchor).disable("normalize")


def _normalized(source: str) -> str:
    """Return ``source`` as markdown-it's "normalize" rule makes it: line endings as "\\n", NUL as U+FFFD (CommonMark 2.1, 2.3).

    The rule substitutes every line ending with a regular expression, even "\\n" for itself: 40 us
    of a ~1 ms body, 4-8 % of rendering Markdown. Most text has no "\\r" and no NUL to look for twice.
    """
    if "\r" in source:
        source = source.replace("\r\n", "\n").replace("\r", "\n")
    return source.replace("\0", "\ufffd") if "\0" in source else source


_PLAIN = {"text", "code_inline", "softbreak", "hardbreak"}
SUMMARY_LIMIT = 300  # characters; a longer lede is cut at a word


def _plain_text(inline) -> str:
    return "".join(" " if c.type in ("softbreak", "hardbreak") else c.content for c in inline.children or () if c.type in _PLAIN).strip()


def shorten(text: str, limit: int = SUMMARY_LIMIT) -> str:
    """Cut ``text`` to at most ``limit`` characters at a word boundary, marking the cut with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0] if " " in text[: limit - 1] else text[: limit - 1]
    return cut.rstrip(" ,;:.-") + "\u2026"


def _lede(tokens) -> str:
    """Return the first text of the body as plain text: its first paragraph, or its first list's items.

    Images, headings and empty paragraphs are passed over, so a body that starts with a picture
    or a list still gets a readable summary.
    """
    depth = 0  # list nesting
    items: list[str] = []
    for index, token in enumerate(tokens):
        if token.type in ("bullet_list_open", "ordered_list_open"):
            depth += 1
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            depth -= 1
            if depth == 0 and items:
                return "; ".join(items)
        elif token.type == "inline" and index and tokens[index - 1].type == "paragraph_open":
            text = _plain_text(token)
            if text and depth:
                items.append(text.rstrip(";,"))
            elif text:
                return text
    return "; ".join(items)


class RenderedMarkdown(NamedTuple):
    """A body rendered from one parse: its HTML, lede, headings, the images it shows and what is wrong with them."""

    html: str
    lede: str  # plain text: the default summary
    headings: tuple[Heading, ...]
    media: tuple[MediaFile, ...]
    problems: tuple[str, ...]  # images that cannot be shown, each with the fix


# find_image(reference relative to the content folder file) -> (absolute URL, image), or MediaError
ImageFinder = Callable[[str], tuple[str, MediaFile]]
CONTENTS_LEVELS = (1, 2, 3)  # heading levels listed in an entry's table of contents


def _is_local(reference: str) -> bool:
    parts = urlsplit(reference)
    return not parts.scheme and not parts.netloc and bool(parts.path)


def render_markdown(source: str, page_url: str, find_image: ImageFinder | None = None) -> RenderedMarkdown:
    """Render CommonMark to HTML, resolving links and images against the page's absolute URL.

    With ``find_image``, an image with a relative address is a file of the content folder: it is
    shown from its content-hashed URL with its width and height (no layout shift), and a missing
    or unreadable one is a problem, never a broken picture.
    """
    tokens = _markdown.parse(_normalized(source))
    media: dict[str, MediaFile] = {}
    problems: list[str] = []
    headings: list[Heading] = []
    for index, token in enumerate(tokens):
        if token.type == "heading_open" and int(token.tag[1]) in CONTENTS_LEVELS:
            headings.append(Heading(int(token.tag[1]), str(token.attrGet("id")), _plain_text(tokens[index + 1])))
        for child in token.children or ():
            attribute = {"link_open": "href", "image": "src"}.get(child.type)
            if not attribute or child.attrGet(attribute) is None:
                continue
            reference = str(child.attrGet(attribute))
            if child.type == "image" and find_image is not None and _is_local(reference):
                try:
                    url, found = find_image(unquote(urlsplit(reference).path))
                except MediaError as error:
                    problems.append(f"image {reference[:80]!r}: {error}")
                    continue
                media[found.name] = found
                child.attrSet("src", url)
                child.attrSet("width", str(found.width))
                child.attrSet("height", str(found.height))
            else:
                child.attrSet(attribute, urljoin(page_url, reference))
    html = _markdown.renderer.render(tokens, _markdown.options, {})
    return RenderedMarkdown(html, _lede(tokens), tuple(headings), tuple(media.values()), tuple(problems))


def has_no_pictures(source: str) -> bool:
    """Tell whether a body can show no picture: every CommonMark image, inline or by reference, starts with ``![``.

    Such a body cannot have a problem (only pictures can: ``render_markdown``), and its HTML
    depends only on its text and its page's URL.
    """
    return "![" not in source


class DeferredBody:
    """A body without pictures, rendered when first asked for (``models.StoredText``).

    A start of 100,000 entries checks them by their front matter and renders these bodies once
    serving (the state keeps their source until then): Markdown is 80 % of a parse. The result
    is what the full parse renders, byte for byte: the same renderer, the same text and URL.
    """

    __slots__ = ("_texts", "packed_source", "page_url", "written_summary")

    def __init__(self, packed_source: bytes, page_url: str, written_summary: str | None):
        # zlib (level 1) of the UTF-8 Markdown: a third of the size for 40 us; 100,000 bodies are written
        # to the state at a start, ~300 MB as text
        self.packed_source = packed_source
        self.page_url = page_url
        self.written_summary = written_summary  # the front matter's ``summary``; None: the body's lede
        self._texts: tuple[str, tuple[Heading, ...], str] | None = None

    @classmethod
    def of(cls, source: str, page_url: str, written_summary: str | None) -> DeferredBody:
        return cls(zlib.compress(source.encode(), 1), page_url, written_summary)

    @property
    def source(self) -> str:
        return zlib.decompress(self.packed_source).decode()

    def texts(self) -> tuple[str, tuple[Heading, ...], str]:
        """Return the body's HTML, headings and summary, rendering it the first time."""
        if self._texts is None:
            source = self.source
            try:
                body = render_markdown(source, self.page_url)
            except Exception as error:  # checked only by its front matter: a library failing here must not fail a request
                log.error("body of %s could not be rendered (%s: %s); shown as plain text", self.page_url, type(error).__name__, error)
                body = RenderedMarkdown(f"<pre>{escape(source)}</pre>\n", "", (), (), ())
            self._texts = (body.html, body.headings, shorten(self.written_summary or body.lede))
        return self._texts

    def html(self) -> str:
        return self.texts()[0]

    def headings(self) -> tuple[Heading, ...]:
        return self.texts()[1]

    def summary(self) -> str:
        return self.texts()[2]
