"""The running service against its own OpenAPI document, fuzzed by schemathesis.

Every check is on: no 5xx, every status documented, every body and content type as the
schema says, schema-valid requests accepted and invalid ones refused with a 4xx, and,
where routes chain (an id one returns, another takes), stateful sequences. The seed is
fixed and the case count bounded (tests/schemathesis.toml), so a run is reproducible; the
kind's `fuzz_url` fixture serves the service with data loaded, so the answering paths are
reached, not only the refusals.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.api_keys import HEADERS

SEED = 1
MIN_CASES = 1000
CONFIG = Path(__file__).parent.parent / "schemathesis.toml"
# The stateful phase's summary line: "API Links:    11 covered / 14 selected / ...".
LINKS = re.compile(r"API Links:\s+(?P<covered>\d+) covered / (?P<selected>\d+) selected")


def test_every_response_conforms_to_the_schema_under_fuzzing(fuzz_url: str, tmp_path: Path) -> None:
    headers = [arg for name, value in HEADERS.items() for arg in ("-H", f"{name}: {value}")]
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        str(CONFIG),
        "run",
        f"{fuzz_url}/openapi.json",
        "--seed",
        str(SEED),
        "--continue-on-failure",
        "--no-color",
        "--report",
        "json",
        "--report-dir",
        str(tmp_path),
        *headers,
    ]
    # Run from tmp_path: schemathesis leaves its cache in the working directory.
    run = subprocess.run(
        command, capture_output=True, text=True, timeout=1200, check=False, cwd=tmp_path
    )
    reports = list(tmp_path.glob("*.json"))
    assert reports, run.stdout[-4000:] + run.stderr[-4000:]
    report = json.loads(reports[0].read_text())
    assert report["exit_code"] == 0, run.stdout[-12000:]
    assert report["test_cases"]["with_failures"] == 0, run.stdout[-12000:]
    assert report["test_cases"]["generated"] >= MIN_CASES, report["test_cases"]
    # Where routes chain, the stateful phase follows the links: at least one.
    links = LINKS.search(run.stdout)
    if links:
        covered, selected = int(links["covered"]), int(links["selected"])
        assert covered or not selected, links[0]
    print(
        f"schema fuzz: {report['test_cases']['generated']} cases, seed {SEED}, "
        f"{links[0].strip() if links else 'no links'}"
    )
