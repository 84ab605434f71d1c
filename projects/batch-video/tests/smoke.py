"""The real requests that prove a running service works (tests/smoke.json), and their checks.

    python tests/smoke.py http://127.0.0.1:8000 [--api-key KEY] [--files DIR]
    python tests/smoke.py --container-files     # what to copy out of the container first

The project's CI workflow runs it against the image it built; the test suite runs it against
the service it starts (tests/e2e/test_smoke.py). Each step sends one request; its JSON
answer must hold what the step's `expect` says, by dotted path (`items.0.name`, a list index
as a number):
a value, {"nonempty": true}, {"min": N}, or {"equals": "<step>.<path>"} for what an earlier
answer said. A file whose path starts with /app/ comes from the running container: copy it
into --files DIR first. Only the standard library, so it runs anywhere.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
import uuid
from pathlib import Path
from typing import Any

STEPS: list[dict[str, Any]] = json.loads(Path(__file__).with_name("smoke.json").read_text())
CONTAINER_FILES = "/app/"


class SmokeFailure(AssertionError):
    """A step's answer does not hold what the step expects."""


def container_files() -> list[str]:
    """Files the steps read from the running container."""
    return [
        source
        for step in STEPS
        for source in step.get("files", {}).values()
        if isinstance(source, str) and source.startswith(CONTAINER_FILES)
    ]


def run(
    base_url: str, *, api_key: str | None = None, files: Path | None = None, timeout_s: float = 120
) -> list[dict[str, Any]]:
    """Sends every step in order; their answers. Raises SmokeFailure on the first miss."""
    answers: list[dict[str, Any]] = []
    headers = {"X-API-Key": api_key} if api_key else {}
    for step in STEPS:
        request = _request(base_url, step, headers, files)
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            answer = json.loads(response.read())
        for path, expected in step.get("expect", {}).items():
            _check(step["name"], path, value_at(answer, path), expected, answers)
        answers.append(answer)
    return answers


def value_at(document: Any, path: str) -> Any:
    for key in path.split("."):
        if isinstance(document, list) and key.isdigit() and int(key) < len(document):
            document = document[int(key)]
        elif isinstance(document, dict) and key in document:
            document = document[key]
        else:
            return None
    return document


def _check(step: str, path: str, value: Any, expected: Any, answers: list[Any]) -> None:
    if isinstance(expected, dict) and "nonempty" in expected:
        ok = bool(value.strip() if isinstance(value, str) else value)
    elif isinstance(expected, dict) and "min" in expected:
        ok = isinstance(value, int | float) and value >= expected["min"]
    elif isinstance(expected, dict) and "equals" in expected:
        index, _, earlier = expected["equals"].partition(".")
        expected = value_at(answers[int(index)], earlier)
        ok = value == expected
    else:
        ok = value == expected
    if not ok:
        raise SmokeFailure(f"{step}: {path} is {value!r}, expected {expected!r}")


def _request(
    base_url: str, step: dict[str, Any], headers: dict[str, str], files: Path | None
) -> urllib.request.Request:
    url = base_url.rstrip("/") + step["path"]
    if "json" in step:
        body = json.dumps(step["json"]).encode()
        content_type = "application/json"
    else:
        boundary = uuid.uuid4().hex
        body = b""
        for field, source in step.get("files", {}).items():
            name, kind, data = _file(source, files)
            part = (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
                f'filename="{name}"\r\nContent-Type: {kind}\r\n\r\n'
            )
            body += part.encode() + data + b"\r\n"
        body += f"--{boundary}--\r\n".encode()
        content_type = f"multipart/form-data; boundary={boundary}"
    return urllib.request.Request(
        url,
        data=body,
        method=step.get("method", "POST"),
        headers={"Content-Type": content_type, **headers},
    )


def _file(source: str | dict[str, str], files: Path | None) -> tuple[str, str, bytes]:
    """(file name, media type, bytes) of a step's file: inline, or copied from the container."""
    if isinstance(source, dict):
        return source["name"], source["type"], source["content"].encode()
    name = Path(source).name
    if files is None or not (files / name).is_file():
        raise FileNotFoundError(f"{source}: copy it out of the container into --files")
    kind = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}.get(
        Path(name).suffix.lower(), "application/octet-stream"
    )
    return name, kind, (files / name).read_bytes()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base_url", nargs="?", help="e.g. http://127.0.0.1:8000")
    parser.add_argument("--api-key", help="sent as X-API-Key")
    parser.add_argument("--files", type=Path, help="where the container's files were copied")
    parser.add_argument("--container-files", action="store_true", help="list them and exit")
    args = parser.parse_args()
    if args.container_files:
        print("\n".join(container_files()))
        return 0
    if not args.base_url:
        parser.error("the service's base URL is needed")
    try:
        answers = run(args.base_url, api_key=args.api_key, files=args.files)
    except SmokeFailure as failure:
        print(f"smoke: {failure}", file=sys.stderr)
        return 1
    for step, answer in zip(STEPS, answers, strict=True):
        print(f"smoke: {step['name']}: {json.dumps(answer)[:300]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
