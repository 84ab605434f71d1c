"""The API key the tests' services accept, as settings and as request headers: none,
API keys are off."""

from __future__ import annotations

SETTINGS: dict[str, object] = {}
HEADERS: dict[str, str] = {}
