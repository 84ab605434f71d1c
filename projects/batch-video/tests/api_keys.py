"""Settings and request headers for the tests' services: empty, as API keys are off."""

from __future__ import annotations

SETTINGS: dict[str, object] = {}
HEADERS: dict[str, str] = {}
