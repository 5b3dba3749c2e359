"""Generate a content folder of N entries shaped like the seed's posts (title, date, section, one paragraph).

python bench/generate_content.py 10000 /tmp/content-10k
"""

from __future__ import annotations

import argparse
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORDS = [
    "aggregator",
    "archive",
    "beaver",
    "boys",
    "coast",
    "debutants",
    "football",
    "galaxy",
    "gourmet",
    "harbor",
    "injuries",
    "market",
    "montana",
    "plea",
    "port",
    "railway",
    "rapper",
    "ship",
    "town",
    "wilderness",
]


def generate(directory: Path, count: int) -> Path:
    """Write ``count`` entries plus the bundled site file into ``directory`` (replaced if it exists)."""
    if directory.exists():
        shutil.rmtree(directory)
    posts = directory / "posts"
    posts.mkdir(parents=True)
    shutil.copy(ROOT / "content" / "site.yaml", directory / "site.yaml")
    newest = datetime(2025, 7, 7, 18, 0, tzinfo=UTC)
    namespace = uuid.UUID("6f1c7c52-56a4-4e4f-9a7e-0f6f4a1b2c3d")
    for index in range(count):
        words = [WORDS[(index * 7 + k * 3) % len(WORDS)] for k in range(6)]
        title = " ".join(w.capitalize() for w in words) + f" {index}"
        slug = f"post-{index:05d}"
        # uuid5: deterministic, so a regenerated folder has the same ids (and the same ETags)
        entry_id = f"urn:uuid:{uuid.uuid5(namespace, slug)}"
        date = (newest - timedelta(minutes=10 * index)).strftime("%b %d, %Y %H:%M")
        section = "featured" if index % 2 == 0 else "latest"
        body = f"The {words[0]} of {words[1]} meets the {words[2]} near the {words[3]}: story number {index}."
        (posts / f"{slug}.md").write_text(
            f'---\nid: "{entry_id}"\ntitle: "{title}"\ndate: {date}\nsection: {section}\n---\n{body}\n', encoding="utf-8"
        )
    return directory


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int)
    parser.add_argument("directory", type=Path)
    args = parser.parse_args()
    generate(args.directory, args.count)
    print(f"wrote {args.count} entries to {args.directory}")
