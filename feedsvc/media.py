"""Images of the content folder: which files are images, and what feeds and pages need to know of one.

Pillow reads the dimensions from the file's header (no hand-written header parsing); the bytes
are hashed for the image's URL, so a changed picture gets a new URL and the old one stays cacheable
forever.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import posixpath
import re
import stat
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


def read_picture(path: str, name: str, limit: int = MAX_MEDIA_SIZE) -> bytes:
    """Read a picture file's bytes, or raise MediaError: a regular file of at most ``limit`` bytes, nothing else.

    Opened non-blocking and checked after opening (as content files are): a picture swapped for a
    FIFO or a device is refused at once, never waited on. A plain ``open()`` of a FIFO blocks until
    a writer comes, which pinned every thread of every worker that was asked for the picture.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        raise MediaError(f"{name} cannot be read ({error.strerror})") from None
    with open(descriptor, "rb", closefd=True) as file:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise MediaError(f"{name} is not a regular file; put the picture itself there")
        if info.st_size > limit:
            raise MediaError(f"{name} is {info.st_size:,} bytes, more than {limit:,}; publish a smaller image")
        data = file.read(limit + 1)
    if len(data) > limit:
        raise MediaError(f"{name} is more than {limit:,} bytes; publish a smaller image")
    return data


# Orientations (EXIF tag 0x0112) that turn the picture a quarter: browsers and readers show it
# turned (CSS image-orientation: from-image), so its width and height are the stored ones swapped.
_QUARTER_TURNS = frozenset({5, 6, 7, 8})
_EXIF_ORIENTATION = 0x0112


def _decoded(data: bytes, name: str, kind: str) -> None:
    """Decode the whole picture (bounded by MAX_PIXELS): a truncated or corrupt file fails here, not in readers' browsers.

    A JPEG is decoded at an eighth of its size (every byte of it is still read and checked).
    PNG's own check reads every chunk and its CRC without inflating the pixels.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PillowImage.DecompressionBombWarning)  # MAX_PIXELS was checked
            with PillowImage.open(io.BytesIO(data)) as image:  # a fresh one: PNG's verify() must come first
                if image.format == "PNG":
                    image.verify()
                    return
                if image.format == "JPEG":
                    image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
                image.load()
    except Exception as error:  # whatever a decoder raises on a damaged file (OSError, SyntaxError, struct.error, ...)
        detail = "it ends early (truncated)" if "truncated" in str(error).lower() else f"it is damaged ({error})"
        raise MediaError(f"{name} is not a whole {kind} image: {detail}; export it again") from None


def read_media(path: str, name: str, size: int, mtime_ns: int) -> MediaFile:
    """Read one image: its digest, dimensions (as shown, after its EXIF orientation) and media type, or raise MediaError."""
    if size > MAX_MEDIA_SIZE:
        raise MediaError(f"{name} is {size:,} bytes, more than {MAX_MEDIA_SIZE:,}; publish a smaller image")
    data = read_picture(path, name)
    expected = MEDIA_TYPES[os.path.splitext(name)[1].lower()]
    kind = expected.split("/")[1].upper()
    try:
        # Pillow's own bomb guard (a warning above 89.5 MP, an error above twice that) would hide
        # the size: the header is read without it, and MAX_PIXELS (lower) decides before any decoding
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PillowImage.DecompressionBombWarning)
            image = PillowImage.open(io.BytesIO(data))
    except PillowImage.DecompressionBombError as error:
        raise MediaError(f"{name} is {_declared(error)}, more than {MAX_PIXELS:,}; publish a smaller image") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise MediaError(f"{name} is not a readable {kind} image; export it again") from None
    with image:
        width, height = image.size
        found = PillowImage.MIME.get(image.format or "", "")
        if found != expected:
            raise MediaError(f"{name} is {found or 'not'} an image of the type its name says ({expected}); rename or convert it")
        if width * height > MAX_PIXELS:
            raise MediaError(
                f"{name} is {width:,}x{height:,} pixels ({width * height:,}), more than {MAX_PIXELS:,}; publish a smaller image"
            )
        with contextlib.suppress(Exception):  # a damaged EXIF block: the picture is shown as stored
            if image.getexif().get(_EXIF_ORIENTATION) in _QUARTER_TURNS:
                width, height = height, width
    _decoded(data, name, kind)
    return MediaFile(name, hashlib.sha256(data).hexdigest(), len(data), mtime_ns, width, height, expected)


def _declared(error: Exception) -> str:
    """Return the pixel count Pillow's bomb error declares ("Image size (N pixels) exceeds ..."), as words."""
    found = re.search(r"\((\d+) pixels\)", str(error))
    return f"{int(found.group(1)):,} pixels" if found else "too many pixels"


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
