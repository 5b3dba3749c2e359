"""Generate a newsroom's archive: N entries of 2-4 KB Markdown shaped like the seed (headings, lists, links) over five years.

python -m bench.archive 100000 /tmp/archive-100k [--hugo /tmp/hugo-100k] [--tags 20]

Deterministic (seeded): the same N gives the same files, ids and dates, so two runs (or two
machines) publish the same bytes. Dates are written as the seed's pages write them ("Jul 07, 2025 18:00"). ``--hugo`` also writes a Hugo site of the same entries (same
titles, dates, sections and bodies; minimal templates rendering a page per entry, paginated
section lists and RSS), the yardstick of bench/scale.py.
"""

from __future__ import annotations

import argparse
import random
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

SECTIONS = ("article", "featured", "latest")
WORDS = [
    "harbour",
    "council",
    "budget",
    "railway",
    "coast",
    "market",
    "minister",
    "storm",
    "festival",
    "league",
    "injury",
    "season",
    "court",
    "hospital",
    "school",
    "bridge",
    "election",
    "river",
    "museum",
    "airport",
    "energy",
    "water",
    "housing",
    "police",
    "theatre",
    "farm",
    "tourism",
    "strike",
    "research",
    "climate",
    "station",
    "mayor",
    "report",
    "village",
    "island",
    "fishing",
    "transport",
    "debate",
]
NEWEST = datetime(2025, 7, 7, 18, 0, tzinfo=UTC)
SPAN = timedelta(days=5 * 365)
NAMESPACE = uuid.UUID("0b5e7e0e-4c1a-4f7c-9d55-3a2b1c0d9e8f")
SITE_FILE = """\
id: "urn:uuid:7c2e9a54-1b8d-4e0f-a6c3-5d9f2b7e8a10"
title: Harbour Daily (generated archive)
description: Five years of a newsroom's stories, generated for the scale benchmark.
author: Harbour Daily
base_url: https://news.example.com
sections:
  article: Articles
  featured: Featured Posts
  latest: Latest Posts
"""
HUGO_CONFIG = """\
baseURL = "https://news.example.com/"
title = "Harbour Daily (generated archive)"
disableKinds = ["taxonomy", "term"]
[pagination]
  pagerSize = 20
[services.rss]
  limit = 20
[outputs]
  home = ["HTML", "RSS"]
  section = ["HTML", "RSS"]
"""
# the tag-heavy variant: Hugo renders each tag's page list and RSS, as feedsvc renders each tag's pages and feeds
HUGO_TAGGED_CONFIG = HUGO_CONFIG.replace('disableKinds = ["taxonomy", "term"]\n', "") + '  term = ["HTML", "RSS"]\n  taxonomy = ["HTML"]\n'
HUGO_LAYOUTS = {
    "single.html": "<!doctype html><html lang=en><title>{{ .Title }}</title><h1>{{ .Title }}</h1>"
    '<time datetime="{{ .Date.Format "2006-01-02T15:04:05Z07:00" }}">{{ .Date.Format "Jan 2, 2006" }}</time>{{ .Content }}</html>\n',
    "list.html": "<!doctype html><html lang=en><title>{{ .Title }}</title><h1>{{ .Title }}</h1><ul>"
    '{{ range .Paginator.Pages }}<li><a href="{{ .RelPermalink }}">{{ .Title }}</a> {{ .Summary }}</li>{{ end }}</ul>'
    '{{ with .Paginator.Next }}<a href="{{ .URL }}">older</a>{{ end }}</html>\n',
}


def _sentence(rng: random.Random, words: int) -> str:
    text = " ".join(rng.choice(WORDS) for _ in range(words))
    return text[0].upper() + text[1:] + "."


def _body(rng: random.Random, index: int, count: int) -> str:
    """2-4 KB of Markdown shaped like the seed's article: a lede, three to six headed parts, lists of bold-led
    points, and links to other stories of the archive (as its Featured and Latest lists link) and elsewhere."""
    parts = [" ".join(_sentence(rng, rng.randint(10, 18)) for _ in range(3))]
    for heading in range(rng.randint(3, 6)):
        parts.append(f"## {_sentence(rng, 4)[:-1]}")
        parts.append(" ".join(_sentence(rng, rng.randint(10, 18)) for _ in range(rng.randint(2, 4))))
        if heading % 2 == 0:
            points = (f"- **{_sentence(rng, 2)[:-1]}:** {_sentence(rng, rng.randint(4, 8))}" for _ in range(rng.randint(2, 4)))
            parts.append("\n".join(points))
    related = sorted({rng.randrange(count) for _ in range(3)} - {index})
    links = ", ".join(f"[{_sentence(rng, 3)[:-1].lower()}](/posts/story-{other:06d}/)" for other in related)
    parts.append(f"Related: {links}. Read the [council's report](https://council.example.org/reports/{index}) for background.")
    return "\n\n".join(parts) + "\n"


def entries(count: int):
    """Yield (slug, id, date, section, title, body) for ``count`` entries, newest first."""
    rng = random.Random(20250707)
    step = SPAN / max(1, count)
    for index in range(count):
        slug = f"story-{index:06d}"
        date = NEWEST - step * index - timedelta(seconds=rng.randint(0, 59))
        section = SECTIONS[0] if index % 50 == 0 else SECTIONS[1 + (index % 2)]
        title = _sentence(rng, rng.randint(5, 9))[:-1]
        yield (
            slug,
            f"urn:uuid:{uuid.uuid5(NAMESPACE, slug)}",
            date.replace(second=0, microsecond=0),
            section,
            title,
            _body(rng, index, count),
        )


def tags_of(index: int, tags: int) -> list[str]:
    """Return entry ``index``'s ``tags`` tags: two-word topics of a vocabulary as large as the archive, a few common, most rare."""
    if not tags:
        return []
    rng = random.Random(index)
    chosen: dict[str, None] = {}
    while len(chosen) < tags:
        first = min(int(rng.paretovariate(1.2)) - 1, len(WORDS) - 1)  # Zipf-like: "harbour ..." on many stories
        chosen[f"{WORDS[first]} {WORDS[rng.randrange(len(WORDS))]}"] = None
    return list(chosen)


def generate(directory: Path, count: int, hugo: Path | None = None, tags: int = 0) -> None:
    """Write the feedsvc content folder (and the Hugo site) of ``count`` entries, replacing them; ``tags`` tags each."""
    for target in (directory, hugo):
        if target is not None and target.exists():
            shutil.rmtree(target)
    posts = directory / "posts"
    posts.mkdir(parents=True)
    (directory / "site.yaml").write_text(SITE_FILE, encoding="utf-8")
    if hugo is not None:
        (hugo / "layouts" / "_default").mkdir(parents=True)
        (hugo / "hugo.toml").write_text(HUGO_TAGGED_CONFIG if tags else HUGO_CONFIG, encoding="utf-8")
        for name, template in HUGO_LAYOUTS.items():
            (hugo / "layouts" / "_default" / name).write_text(template, encoding="utf-8")
        for section in SECTIONS:
            (hugo / "content" / section).mkdir(parents=True)
    for index, (slug, entry_id, date, section, title, body) in enumerate(entries(count)):
        when = date.isoformat()
        written = date.strftime("%b %d, %Y %H:%M")  # as the seed's pages write dates (the site's zone is UTC)
        tagged = f"tags: [{', '.join(tags_of(index, tags))}]\n" if tags else ""
        (posts / f"{slug}.md").write_text(
            f'---\nid: "{entry_id}"\ntitle: "{title}"\ndate: {written}\nsection: {section}\n{tagged}---\n{body}', encoding="utf-8"
        )
        if hugo is not None:
            (hugo / "content" / section / f"{slug}.md").write_text(
                f'---\ntitle: "{title}"\ndate: {when}\n{tagged}---\n{body}', encoding="utf-8"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--hugo", type=Path, help="also write a Hugo site of the same entries here")
    parser.add_argument("--tags", type=int, default=0, help="tags on every entry (the tag-heavy variant)")
    args = parser.parse_args()
    generate(args.directory, args.count, args.hugo, args.tags)
    print(f"wrote {args.count:,} entries to {args.directory}" + (f" and {args.hugo}" if args.hugo else ""))


if __name__ == "__main__":
    main()
