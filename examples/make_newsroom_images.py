"""Draw the example newsroom's pictures (examples/newsroom/media): made for the project, no one else's photos.

Run from the repository root: python examples/make_newsroom_images.py
"""

from pathlib import Path

from PIL import Image, ImageDraw

MEDIA = Path(__file__).parent / "newsroom" / "media"


def harbour() -> Image.Image:
    image = Image.new("RGB", (960, 540), "#8ecae6")
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 330, 960, 540), fill="#219ebc")  # the water
    draw.polygon([(180, 330), (420, 330), (380, 390), (220, 390)], fill="#023047")  # a hull
    draw.rectangle((290, 170, 300, 330), fill="#023047")  # its mast
    draw.polygon([(300, 180), (300, 320), (400, 320)], fill="#ffb703")  # its sail
    draw.ellipse((760, 60, 860, 160), fill="#fb8500")  # the sun
    return image


def lighthouse() -> Image.Image:
    image = Image.new("RGB", (480, 640), "#f1faee")
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 520, 480, 640), fill="#457b9d")
    draw.polygon([(200, 520), (280, 520), (265, 180), (215, 180)], fill="#e63946")
    for y in (260, 360, 460):
        draw.rectangle((205, y, 275, y + 30), fill="#f1faee")
    draw.rectangle((205, 140, 275, 180), fill="#1d3557")
    draw.polygon([(275, 150), (480, 100), (480, 200)], fill="#ffd166")  # the beam
    return image


def market() -> Image.Image:
    image = Image.new("RGB", (800, 600), "#fefae0")
    draw = ImageDraw.Draw(image)
    for index, colour in enumerate(("#d62828", "#f77f00", "#fcbf49", "#2a9d8f")):
        left = 40 + index * 190
        draw.polygon([(left, 200), (left + 170, 200), (left + 150, 120), (left + 20, 120)], fill=colour)  # awnings
        draw.rectangle((left + 10, 200, left + 160, 420), fill="#dda15e")
    draw.rectangle((0, 420, 800, 600), fill="#606c38")
    return image


if __name__ == "__main__":
    MEDIA.mkdir(parents=True, exist_ok=True)
    harbour().save(MEDIA / "harbour.jpg", quality=80, optimize=True)
    lighthouse().save(MEDIA / "lighthouse.png", optimize=True)
    market().save(MEDIA / "market.webp", quality=80)
