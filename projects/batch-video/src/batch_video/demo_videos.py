"""Test and demo videos made here: scikit-learn's bundled handwritten digits drawn on the
frames, so the demo classifier has a right answer for every frame. Nothing is downloaded.

Each video shows a sequence of digits, one per segment; `Script` says which digit is shown
when, so a test can check each analysed frame's label and each segment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

SIDE = 128  # pixels: the 8x8 digits drawn 16 times larger
CODECS = {  # codec -> the containers it is written in
    "libx264": ("mp4", "mkv"),
    "libx265": ("mp4", "mkv"),
    "libvpx-vp9": ("webm", "mkv"),
    "libsvtav1": ("mkv", "webm", "mp4"),
}


@dataclass(frozen=True)
class Script:
    digits: tuple[int, ...]  # shown in turn
    segment_s: float  # how long each is shown

    def digit_at(self, seconds: float) -> int:
        return self.digits[min(int(seconds / self.segment_s), len(self.digits) - 1)]

    @property
    def duration_s(self) -> float:
        return self.segment_s * len(self.digits)


def digit_images() -> dict[int, np.ndarray]:
    """One clean example of each digit (8x8, 0 to 16), from scikit-learn's digits."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    found: dict[int, np.ndarray] = {}
    for image, target in zip(digits.images, digits.target, strict=True):
        found.setdefault(int(target), image)
    return found


def encoder_available(codec: str) -> bool:
    try:
        av.codec.Codec(codec, "w")
    except (av.FFmpegError, ValueError):
        return False
    return True


def write_video(
    path: Path,
    script: Script,
    *,
    codec: str = "libx264",
    fps: int = 25,
    gop: int = 25,
    variable_rate: bool = False,
    seed: int = 0,
) -> Path:
    """Writes `script` as a video: `gop` frames between keyframes; `variable_rate` spaces
    the frames unevenly (between a half and one and a half frame periods)."""
    images = digit_images()
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width = SIDE
        stream.height = SIDE
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = gop
        stream.codec_context.time_base = Fraction(1, fps * 100)
        if codec == "libx264":
            stream.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"}
        elif codec == "libx265":
            stream.options = {
                "x265-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:log-level=error"
            }
        elif codec == "libsvtav1":
            stream.options = {"g": str(gop), "preset": "12"}
        else:
            stream.options = {"g": str(gop)}
        ticks = 0
        for _ in range(round(script.duration_s * fps)):
            seconds = ticks / (fps * 100)
            if seconds >= script.duration_s:
                break
            pixels = _draw(images[script.digit_at(seconds)], rng)
            frame = av.VideoFrame.from_ndarray(pixels, format="gray").reformat(format="yuv420p")
            frame.pts = ticks
            frame.time_base = Fraction(1, fps * 100)
            container.mux(stream.encode(frame))
            ticks += int(rng.integers(50, 151)) if variable_rate else 100
        container.mux(stream.encode(None))
    return path


def write_corrupt(path: Path, source: Path) -> Path:
    """A copy of `source` with its middle overwritten by noise and its end cut off."""
    data = bytearray(source.read_bytes())
    rng = np.random.default_rng(7)
    middle = len(data) // 2
    data[middle : middle + 2048] = rng.integers(0, 256, 2048, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data[: int(len(data) * 0.7)]))
    return path


def write_folder(folder: Path, scripts: Sequence[Script], **options: object) -> list[Path]:
    return [
        write_video(folder / f"video-{n:03d}.mp4", script, seed=n, **options)  # type: ignore[arg-type]
        for n, script in enumerate(scripts)
    ]


def _draw(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    scale = SIDE // digit.shape[0]
    big = np.kron(digit / 16.0 * 255.0, np.ones((scale, scale)))
    noisy = big + rng.normal(0, 4, big.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def demo_scripts(count: int, seconds: float, *, segment_s: float = 2.0) -> list[Script]:
    """`count` scripts of `seconds` each, every one its own order of digits."""
    segments = max(1, round(seconds / segment_s))
    return [
        Script(tuple((n * 3 + k * 7) % 10 for k in range(segments)), segment_s)
        for n in range(count)
    ]
