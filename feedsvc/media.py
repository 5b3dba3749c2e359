"""Images of the content folder: which files are images, and what feeds and pages need to know of one.

Pillow reads the dimensions from the file's header (no hand-written header parsing); the bytes
are hashed for the image's URL, so a changed picture gets a new URL and the old one stays cacheable
forever.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import warnings
from dataclasses import dataclass, field

from PIL import Image as PillowImage
from PIL import UnidentifiedImageError

from .models import MediaFile

# file suffix -> the media type Pillow must find in the file (a .jpg that is a PNG is a mistake worth naming)
MEDIA_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
}
MAX_MEDIA_SIZE = 20 * 1024 * 1024  # bytes of one image: a news photo is rarely over 2 MB
MAX_PIXELS = 50_000_000  # Pillow's decompression-bomb guard, tighter than its default


class MediaError(ValueError):
    """An image cannot be used; the message says why and what to do."""


def is_media_name(name: str) -> bool:
    """Tell whether a content folder file name is an image the site can publish."""
    return os.path.splitext(name)[1].lower() in MEDIA_TYPES


def read_media(path: str, name: str, size: int, mtime_ns: int) -> MediaFile:
    """Read one image: its digest, dimensions and media type, or raise MediaError."""
    if size > MAX_MEDIA_SIZE:
        raise MediaError(f"{name} is {size:,} bytes, more than {MAX_MEDIA_SIZE:,}; publish a smaller image")
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_MEDIA_SIZE + 1)
    except OSError as error:
        raise MediaError(f"{name} cannot be read ({error.strerror})") from None
    expected = MEDIA_TYPES[os.path.splitext(name)[1].lower()]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PillowImage.DecompressionBombWarning)
            with PillowImage.open(io.BytesIO(data)) as image:
                width, height = image.size
                found = PillowImage.MIME.get(image.format or "", "")
    except (UnidentifiedImageError, PillowImage.DecompressionBombWarning, PillowImage.DecompressionBombError, OSError, ValueError):
        raise MediaError(f"{name} is not a readable {expected.split('/')[1].upper()} image; export it again") from None
    if found != expected:
        raise MediaError(f"{name} is {found or 'not'} an image of the type its name says ({expected}); rename or convert it")
    if width * height > MAX_PIXELS:
        raise MediaError(f"{name} has {width}x{height} pixels, more than {MAX_PIXELS:,}; publish a smaller image")
    return MediaFile(name, hashlib.sha256(data).hexdigest(), len(data), mtime_ns, width, height, expected)


@dataclass
class MediaLibrary:
    """The images of one scan of the content folder, read (and remembered) when an entry refers to one.

    Plain data, so it travels to the processes that parse in parallel.
    """

    files: dict[str, tuple[str, int, int]]  # name -> (path, size, mtime_ns), from the folder's scan
    known: dict[str, MediaFile] = field(default_factory=dict)  # read before, valid while size and mtime match

    def current(self, media: MediaFile) -> bool:
        """Tell whether an image read before is still the file in the folder."""
        found = self.files.get(media.name)
        return found is not None and found[1:] == (media.size, media.mtime_ns)

    def get(self, name: str) -> MediaFile:
        """Return the image at ``name`` (relative to the content folder), or raise MediaError."""
        earlier = self.known.get(name)
        if earlier is not None and self.current(earlier):
            return earlier
        found = self.files.get(name)
        if found is None:
            if not is_media_name(name):
                raise MediaError(f"{name} is not an image file; use one of {', '.join(sorted(MEDIA_TYPES))}")
            raise MediaError(f"{name} is not in the content folder; add the file or fix the path")
        media = read_media(found[0], name, found[1], found[2])
        self.known[name] = media
        return media


def resolve(reference: str, folder: str = "") -> str | None:
    """Return the content folder name a relative reference points to from ``folder``, or None when it leaves the folder.

    A reference starting with "/" is relative to the content folder itself.
    """
    joined = posixpath.normpath(reference.lstrip("/") if reference.startswith("/") else posixpath.join(folder, reference))
    if joined.startswith("../") or joined in ("..", ".") or joined.startswith("/"):
        return None
    return joined
