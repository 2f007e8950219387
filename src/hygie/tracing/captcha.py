"""The platform's own captcha: image and audio challenges, and a per-client rate limit.

Registration sits behind a captcha so that one client cannot register thousands of
fake users (ROBERT v1.1, section 4, "proof of work"). The challenges are rendered
here with the ``captcha`` library (distorted text with its bundled font; spoken
characters from its bundled voice samples), so no third-party service ever sees the
app's traffic. Challenges are single use and expire; the engine stores them.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass

from hygie.tracing.errors import RateLimited

#: Characters that cannot be confused with one another (no 0/O, 1/I).
IMAGE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
AUDIO_ALPHABET = "0123456789"
KINDS = ("image", "audio")


@dataclass(frozen=True)
class Challenge:
    kind: str
    answer: str


def new_challenge(kind: str) -> Challenge:
    """A random answer for an image (5 characters) or audio (6 digits) captcha."""
    if kind == "image":
        return Challenge(kind, "".join(secrets.choice(IMAGE_ALPHABET) for _ in range(5)))
    if kind == "audio":
        return Challenge(kind, "".join(secrets.choice(AUDIO_ALPHABET) for _ in range(6)))
    raise ValueError(f"captcha type must be one of {KINDS}")


def render_image(answer: str) -> bytes:
    """PNG of the distorted answer."""
    from captcha.image import ImageCaptcha

    return ImageCaptcha(width=220, height=80).generate(answer, format="png").getvalue()


def render_audio(answer: str) -> bytes:
    """WAV of the answer spoken character by character, with background noise."""
    from captcha.audio import AudioCaptcha

    return bytes(AudioCaptcha().generate(answer))


def answers_match(expected: str, given: str) -> bool:
    """Case and surrounding blanks do not matter; the comparison is constant-time."""
    normal = "".join(given.split()).upper()
    return secrets.compare_digest(expected.upper().encode(), normal.encode())


class RateLimiter:
    """Sliding-window limit per (action, client) kept in this process's memory.

    A process restart forgets the windows, which only lets a client start afresh;
    several server processes each apply the limit to what they see.
    """

    def __init__(self, clock: object = time.monotonic) -> None:
        self._clock = clock
        self._hits: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, action: str, client: str, limit: int, window_s: float) -> None:
        """Count one request; raise ``RateLimited`` when the window is already full."""
        now = self._clock()  # type: ignore[operator]
        with self._lock:
            hits = self._hits.setdefault((action, client), deque())
            while hits and hits[0] <= now - window_s:
                hits.popleft()
            if len(hits) >= limit:
                retry = max(1, int(hits[0] + window_s - now + 0.999))
                raise RateLimited(f"at most {limit} {action} requests per {int(window_s)} s "
                                  "from one client", retry_after=retry)
            hits.append(now)
            if len(self._hits) > 100_000:
                self._hits = {k: v for k, v in self._hits.items() if v and v[-1] > now - window_s}
