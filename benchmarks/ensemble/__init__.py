"""Ensemble: the service against its members fanned out alone, against a FastAPI app that
calls the same members one after another, and with one optional member forced slow.

The members are the project's own demo ensemble, trained by its `train-demo` on
scikit-learn's bundled digits: a CNN (TorchScript, required), an MLP in ONNX Runtime int8
(optional, hedged after 100 ms) and a linear model (TorchScript, optional), weights 2, 1, 1.
Every request is one digit (64 pixel intensities) from the held-out test split, a handful
of them in rotation, combined by the weighted mean.

Contenders (every one with the same intra-op thread count, `--threads`):
- ours: the rendered service at its defaults, serving the demo members file;
- sequential-fastapi: a plain FastAPI endpoint that calls the same three members in turn
  and averages their probabilities with the same weights (sequential_server.py);
- http-floor: the same app calling no member, answering a fixed prediction it computed
  at start (the same body read and checked, the same JSON written): what HTTP, FastAPI
  and the load generator cost alone on this machine, so that what the ensemble adds can
  be told from what any Python HTTP service pays;
- triton-ensemble: Triton's own ensemble scheduling over the same members, exported by the
  project's `export-triton` and called directly (binary tensors, one call per request, every
  member's logits back; the client's weighted mean is not timed). Triton is the server
  PyTriton bundles, which has only the Python backend, so each member runs in a Python
  process beside it (triton_peer.py): a handicap a full Triton with its libtorch and
  onnxruntime backends does not have, which the notes state beside the figures;
- ours-triton: the service with the exported members file, every member a `triton` member
  calling its model on such a Triton server, each under its own deadline and batcher;
- ours-slow-member: the service with the demo's members file but for `linear`, replaced by
  a stand-in that sleeps ten times its 50 ms deadline (slow_member.py), its circuit breaker
  kept closed so that every request waits on that deadline; its answers leave that member
  out, so it agrees only with itself.
The limit is the three members alone in process, each request's three calls at once on
threads, no HTTP and no aggregation (limit.py): its latency at concurrency 1 and its
throughput at 32. The accuracy of every member and aggregation on the held-out digits comes
from train-demo's report and sits beside the timings.
"""

from __future__ import annotations

import collections
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import numpy as np
import yaml
from tritonclient.http import InferenceServerClient, InferInput, InferResult

from benchmarks import stats
from benchmarks.ensemble.slow_member import SLEEP_S
from benchmarks.loadgen import RequestFailed, RequestSpec
from benchmarks.processes import ServerSpec, free_port, render_project, run_python
from benchmarks.suite import Contender, Figure, Outcome, Suite, Target

KIND = "ensemble"
ROOT = Path(__file__).resolve().parents[2]
TARGET_CONCURRENCY = 32
REQUESTS = 8  # test-split rows the requests rotate over
AGGREGATION = "weighted"
MEMBERS = ("cnn", "mlp", "linear")
AGGREGATIONS = ("mean", "weighted", "vote", "stacking")
# The slow member: the stand-in replaces `linear` with this deadline, and the targets allow
# its deadline plus this much for the whole request.
SLOW_MEMBER = "slow"
SLOW_DEADLINE_MS = 50.0
SLOW_MARGIN_MS = 5.0
# Failures in a row before the slow member's breaker opens: never, in a run. At the default
# (5) the breaker would skip the member after its first misses, and nearly every request
# would leave it out at once, without waiting on the deadline the target is about.
SLOW_BREAKER_FAILURES = 1_000_000_000
# The targets against the limit.
P50_OVERHEAD_MS = 1.0
P99_OVERHEAD_MS = 3.0
LIMIT_SHARE = 0.90


def build(workdir: Path, device: str, options: Mapping[str, Any]) -> Suite:
    """Renders the project, trains its demo members, and declares the contenders."""
    if device != "cpu":
        raise SystemExit("the ensemble suite runs on CPU only for now")
    threads = int(options.get("threads", 1))
    render = render_project(KIND, workdir / "render")
    pythonpath = f"{ROOT}:{render / 'src'}"
    demo = workdir / "demo"
    trained = run_python(
        "-m",
        "ensemble",
        "train-demo",
        "--output",
        str(demo),
        env={"PYTHONPATH": pythonpath},
        timeout_s=900.0,
    )
    print(trained.strip().splitlines()[-1], flush=True)
    members_path = demo / "members.yaml"
    repository = workdir / "triton-repository"
    run_python(
        "-m",
        "ensemble",
        "export-triton",
        "--members",
        str(members_path),
        "--output",
        str(repository),
        env={"PYTHONPATH": pythonpath},
    )
    slow_members_path = _slow_members(members_path, demo / "members-slow.yaml")
    report = json.loads((demo / "report.json").read_text())
    with np.load(demo / "test.npz") as data:
        rows = data["inputs"][:REQUESTS].astype(np.float32)
    requests = [_request(row) for row in rows]
    triton_requests = [_triton_request(row) for row in rows]
    document = yaml.safe_load(members_path.read_text())
    weights = {m["name"]: float(m.get("weight", 1.0)) for m in document["members"]}
    labels = [str(label) for label in document["labels"]]
    common_env = {"OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}

    def service(name: str, members: Path, port: int, **extra: str) -> ServerSpec:
        env = {
            **extra,
            **common_env,
            "PYTHONPATH": pythonpath,  # the repository root: the slow stand-in's factory
            "APP_HOST": "127.0.0.1",
            "APP_PORT": str(port),
            "APP_MEMBERS_PATH": str(members),
            "APP_DEVICE": "cpu",
            "APP_TORCH_THREADS": str(threads),
            "APP_LOG_LEVEL": "WARNING",
        }
        argv = [sys.executable, "-m", "ensemble", "serve"]
        return ServerSpec(name, argv, f"http://127.0.0.1:{port}/readyz", env, cwd=workdir)

    ports = {
        name: free_port()
        for name in ("ours", "sequential", "floor", "slow", "triton", "ours-triton", "its-triton")
    }

    def triton(name: str, port: int) -> ServerSpec:
        argv = [
            sys.executable,
            "-m",
            "benchmarks.ensemble.triton_peer",
            "--repository",
            str(repository),
            "--port",
            str(port),
            "--threads",
            str(threads),
        ]
        # The rendered project's root first: its `tests` package has the Triton server.
        env = {**common_env, "PYTHONPATH": f"{render}:{render / 'src'}:{ROOT}"}
        ready = f"http://127.0.0.1:{port}/v2/models/ensemble/ready"
        return ServerSpec(name, argv, ready, env, cwd=workdir)

    def sequential(name: str, port: int, *extra: str) -> ServerSpec:
        argv = [
            sys.executable,
            "-m",
            "benchmarks.ensemble.sequential_server",
            "--members",
            str(members_path),
            "--port",
            str(port),
            "--threads",
            str(threads),
            *extra,
        ]
        env = {**common_env, "PYTHONPATH": pythonpath}
        return ServerSpec(name, argv, f"http://127.0.0.1:{port}/health", env, cwd=workdir)

    service_settings = {
        "APP_TORCH_THREADS": threads,
        "APP_INFERENCE_WORKERS": "2 per member (default)",
        "APP_MAX_BATCH_SIZE": "8 (default)",
        "APP_MAX_WAIT_MS": "2 (default)",
        "APP_LOG_LEVEL": "WARNING",
    }
    slow_check = DegradedCheck()
    contenders = [
        Contender(
            name="ours",
            description="the generated service at its defaults, the demo's three members",
            servers=[service("ours", members_path, ports["ours"])],
            base_url=f"http://127.0.0.1:{ports['ours']}",
            requests=requests,
            top_label=_combined_label,
            settings=service_settings,
        ),
        Contender(
            name="sequential-fastapi",
            description="FastAPI `def` endpoint calling the same three members one after "
            "another, weighted mean",
            servers=[sequential("sequential-fastapi", ports["sequential"])],
            base_url=f"http://127.0.0.1:{ports['sequential']}",
            requests=requests,
            top_label=_combined_label,
            settings={"torch threads": threads, "uvicorn workers": 1},
        ),
        Contender(
            name="http-floor",
            description="the sequential app answering a fixed prediction, no member called: "
            "HTTP, FastAPI and JSON alone under this load generator",
            servers=[sequential("http-floor", ports["floor"], "--floor")],
            base_url=f"http://127.0.0.1:{ports['floor']}",
            requests=requests,
            top_label=_combined_label,
            agreement_group="http-floor",
            settings={"uvicorn workers": 1},
        ),
        Contender(
            name="triton-ensemble",
            description="Triton's ensemble scheduling over the same members, called "
            "directly (PyTriton's server: members in a Python process)",
            servers=[triton("triton-ensemble", ports["triton"])],
            base_url=f"http://127.0.0.1:{ports['triton']}",
            requests=triton_requests,
            top_label=lambda response: _triton_label(response, weights, labels),
            settings={
                "max_batch_size": "8 per member (the service's default)",
                "max_queue_delay": "2 ms (the service's default wait)",
                "instances": "2 per member",
                "torch threads": threads,
            },
        ),
        Contender(
            name="ours-triton",
            description="the generated service with every member on Triton (runtime: "
            "triton), each under its own deadline",
            servers=[
                triton("ours-triton-server", ports["its-triton"]),
                service(
                    "ours-triton",
                    repository / "members.yaml",
                    ports["ours-triton"],
                    APP_TRITON_URL=f"127.0.0.1:{ports['its-triton']}",
                ),
            ],
            base_url=f"http://127.0.0.1:{ports['ours-triton']}",
            requests=requests,
            top_label=_combined_label,
            settings={**service_settings, "members": "runtime triton, export-triton's file"},
        ),
        Contender(
            name="ours-slow-member",
            description=f"the generated service with `linear` replaced by a stand-in that "
            f"sleeps past its {SLOW_DEADLINE_MS:g} ms deadline (optional)",
            servers=[service("ours-slow-member", slow_members_path, ports["slow"])],
            base_url=f"http://127.0.0.1:{ports['slow']}",
            requests=requests,
            top_label=_degraded_label,
            exchange=slow_check,
            agreement_group="slow-member",
            settings={
                **service_settings,
                "slow member": f"deadline_ms {SLOW_DEADLINE_MS:g}, required false, sleeps "
                f"{SLEEP_S * 1000:g} ms a call, breaker_failures {SLOW_BREAKER_FAILURES:.0e} "
                "(kept closed)",
            },
        ),
    ]
    wanted = options.get("contenders")
    if wanted:
        contenders = [c for c in contenders if c.name in wanted]

    def limit() -> dict[str, Any]:
        output = run_python(
            "-m",
            "benchmarks.ensemble.limit",
            "--members",
            str(members_path),
            "--inputs",
            str(demo / "test.npz"),
            "--rows",
            str(REQUESTS),
            "--threads",
            str(threads),
            "--concurrency",
            f"1,{TARGET_CONCURRENCY}",
            env={**common_env, "PYTHONPATH": pythonpath},
        )
        return json.loads(output.strip().splitlines()[-1])

    accuracy = {name: float(value) for name, value in report["accuracy"].items()}
    figures = ", ".join(f"{name} {value:.4f}" for name, value in accuracy.items())
    return Suite(
        kind=KIND,
        contenders=contenders,
        targets=_targets(slow_check),
        figures=[
            Figure("throughput_rps", "Throughput", "requests/s"),
            Figure("p99_ms", "p99 latency", "ms", log_y=True),
        ],
        throughput_unit="requests/s",
        limit=limit,
        limit_description="the three members alone in process, loaded as the service loads "
        "them, each request's three calls at once on threads (one per member per client), "
        f"no HTTP, no batching, no aggregation; requests/s at concurrency {TARGET_CONCURRENCY}, "
        "its latency at concurrency 1 in the targets",
        notes=[
            "triton-ensemble and ours-triton run Triton 2.51 as PyTriton bundles it: the C++ "
            "server and its ensemble scheduler, with only the Python backend, so every member "
            "call goes from Triton to a Python process holding the member's file and back "
            "(triton_peer.py). A full Triton would run the same files in its libtorch and "
            "onnxruntime backends, without that hop: these figures are Triton's scheduling "
            "and HTTP on this machine, not its backends.",
            "Members: the project's demo ensemble from `train-demo` (scikit-learn's digits, "
            "nothing downloaded): cnn (TorchScript, required, weight 2), mlp (ONNX Runtime "
            f"{'int8' if report.get('int8_member') else 'fp32'}, optional, weight 1, hedged "
            "after 100 ms), linear (TorchScript, optional, weight 1); deadlines 1000 ms.",
            f"Accuracy on the 450 held-out test digits (train-demo's report): {figures}.",
            f"Requests: one digit each (64 values), {REQUESTS} rows of the test split in "
            f"rotation, `aggregation: {AGGREGATION}`; client i starts at row i.",
            f"ours-slow-member: the same members file with `linear` replaced by the stand-in "
            f"`{SLOW_MEMBER}` (python runtime, deadline {SLOW_DEADLINE_MS:g} ms, optional) and "
            "no stacker (the demo's was fitted on linear's answers). Its breaker is kept "
            f"closed (breaker_failures {SLOW_BREAKER_FAILURES:.0e}), so every request waits on "
            "its deadline: at the default (5 misses in a row, then 5 s open) the breaker would "
            "leave it out at once as `circuit_open` and the deadline would hardly be tested.",
            f"Every contender runs torch with {threads} intra-op thread(s) "
            f"(OMP_NUM_THREADS={threads}) and logs at WARNING (no per-request log lines).",
        ],
        settings={
            "threads": threads,
            "requests": REQUESTS,
            "aggregation": AGGREGATION,
            "accuracy": accuracy,
            "int8_member": bool(report.get("int8_member")),
            "slow_member_deadline_ms": SLOW_DEADLINE_MS,
        },
        concurrencies=(1, 8, TARGET_CONCURRENCY),
        warmup_s=1.5,
        duration_s=8.0,
    )


def _slow_members(members_path: Path, target: Path) -> Path:
    """The demo's members file with `linear` replaced by the slow stand-in, written beside
    it so the other members' relative paths still resolve. The stacker goes: it was fitted
    on linear's answers, and the service refuses a stacker fitted on a member it lacks.
    The stand-in's breaker stays closed (SLOW_BREAKER_FAILURES)."""
    document = yaml.safe_load(members_path.read_text())
    document.pop("stacker", None)
    members = []
    for member in document["members"]:
        if member["name"] == "linear":
            members.append(
                {
                    "name": SLOW_MEMBER,
                    "runtime": "python",
                    "factory": "benchmarks.ensemble.slow_member:slow",
                    "weight": member["weight"],
                    "deadline_ms": SLOW_DEADLINE_MS,
                    "required": False,
                    "breaker_failures": SLOW_BREAKER_FAILURES,
                }
            )
        else:
            members.append(member)
    document["members"] = members
    target.write_text(yaml.safe_dump(document, sort_keys=False))
    return target


def _request(row: np.ndarray) -> RequestSpec:
    body = json.dumps({"inputs": [row.tolist()], "aggregation": AGGREGATION}).encode()
    return RequestSpec("/v1/classify", body, {"content-type": "application/json"})


def _triton_request(row: np.ndarray) -> RequestSpec:
    """One digit for the Triton ensemble, in Triton's binary tensor protocol."""
    tensor = InferInput("INPUT", [1, row.size], "FP32")
    tensor.set_data_from_numpy(row.reshape(1, -1).astype(np.float32))
    body, json_size = InferenceServerClient.generate_request_body([tensor])
    headers = {"content-type": "application/octet-stream"}
    if json_size is not None:
        headers["inference-header-content-length"] = str(json_size)
    return RequestSpec("/v2/models/ensemble/infer", body, headers)


def _triton_label(
    response: httpx.Response, weights: Mapping[str, float], labels: list[str]
) -> tuple[str, float]:
    """The weighted mean of the members' probabilities, from the logits Triton answers:
    what the service's `weighted` computes, so the labels and scores must agree."""
    length = response.headers.get("inference-header-content-length")
    result = InferResult.from_response_body(
        response.content, header_length=int(length) if length is not None else None
    )
    total = np.zeros(0)
    for name, weight in weights.items():
        logits = result.as_numpy(name)[0].astype(np.float64)
        probabilities = np.exp(logits - logits.max())
        probabilities /= probabilities.sum()
        total = weight * probabilities if total.size == 0 else total + weight * probabilities
    total /= sum(weights.values())
    best = int(total.argmax())
    return labels[best], round(float(total[best]), 4)


def _combined_label(response: httpx.Response) -> tuple[str, float]:
    """The combined prediction's label and score (every member's answer is beside it)."""
    best = response.json()["predictions"][0]
    return str(best["label"]), round(float(best["score"]), 4)


def _degraded_label(response: httpx.Response) -> tuple[str, float]:
    """The combined label, after checking that the slow member was left out: an answer
    with it would mean the stand-in is not slow and the contender measures nothing."""
    body = response.json()
    left_out = [entry["member"] for entry in body["left_out"]]
    if not body["degraded"] or SLOW_MEMBER not in left_out:
        raise RuntimeError(f"ours-slow-member answered without leaving {SLOW_MEMBER} out: {body}")
    return _combined_label(response)


class DegradedCheck:
    """The exchange of ours-slow-member: every answer must be a 200 that says `degraded`;
    any other counts as an error of its cell (`http_<status>` or `not_degraded`). Also
    counts, over every answer (warm-up included), why each member was left out."""

    def __init__(self) -> None:
        self.answers = 0
        self.reasons: collections.Counter[str] = collections.Counter()

    async def __call__(self, client: aiohttp.ClientSession, spec: RequestSpec) -> Mapping[str, Any]:
        async with client.request(
            spec.method, spec.path, data=spec.content, headers=spec.headers
        ) as response:
            content = await response.read()
            if response.status != 200:
                raise RequestFailed(f"http_{response.status}")
        try:
            body = json.loads(content)
        except ValueError:
            raise RequestFailed("not_json") from None
        self.answers += 1
        for entry in body.get("left_out", []):
            self.reasons[f"{entry['member']} {entry['reason']}"] += 1
        if body.get("degraded") is not True:
            raise RequestFailed("not_degraded")
        return {}


def _cell(results: Mapping[str, Any], name: str, c: int, metric: str) -> dict[str, float] | None:
    try:
        cell = results["summary"][name][str(c)][metric]
    except KeyError:
        return None
    return cell if cell.get("n") else None


def _text(cell: Mapping[str, float], unit: str) -> str:
    return f"{cell['median']:.1f} ({cell['min']:.1f}-{cell['max']:.1f}) {unit}"


def _limit_cell(results: Mapping[str, Any], c: int, metric: str) -> dict[str, float] | None:
    """A limit figure at concurrency `c`, median and min-max over the repetitions."""
    values = [
        float(run["by_concurrency"][str(c)][metric])
        for run in results.get("limit_runs") or []
        if str(c) in run.get("by_concurrency", {})
    ]
    cell = stats.spread(values)
    return cell if cell["n"] else None


def _targets(slow_check: DegradedCheck) -> list[Target]:
    c = TARGET_CONCURRENCY

    def overhead(metric: str, bound_ms: float) -> Target:
        def check(results: Mapping[str, Any]) -> Outcome:
            ours = _cell(results, "ours", 1, metric)
            limit = _limit_cell(results, 1, metric)
            if ours is None:
                return Outcome(None, "not measured")
            if limit is None:
                return Outcome(None, "limit not measured")
            added = ours["median"] - limit["median"]
            text = (
                f"{added:+.2f} ms: ours {ours['median']:.2f} ({ours['min']:.2f}-"
                f"{ours['max']:.2f}) ms vs limit {limit['median']:.2f} ({limit['min']:.2f}-"
                f"{limit['max']:.2f}) ms"
            )
            if floor := _cell(results, "http-floor", 1, metric):
                text += (
                    f"; HTTP alone (http-floor) {floor['median']:.2f} ms, so the ensemble adds "
                    f"{ours['median'] - limit['median'] - floor['median']:+.2f} ms beyond it"
                )
            return Outcome(added <= bound_ms, text)

        label = metric.removesuffix("_ms")
        return Target(f"ours adds <= {bound_ms:g} ms to the limit's {label} (c=1)", check)

    def versus_limit(results: Mapping[str, Any]) -> Outcome:
        ours = _cell(results, "ours", c, "throughput_rps")
        limit = _limit_cell(results, c, "throughput_rps")
        if ours is None:
            return Outcome(None, "not measured")
        if limit is None:
            return Outcome(None, "limit not measured")
        share = ours["median"] / limit["median"]
        text = f"{share:.0%}: ours {_text(ours, 'req/s')} vs limit {_text(limit, 'req/s')}"
        if floor := _cell(results, "http-floor", c, "throughput_rps"):
            text += f"; HTTP alone (http-floor) {_text(floor, 'req/s')}"
        return Outcome(share >= LIMIT_SHARE, text)

    def versus_sequential(metric: str, level: int) -> Target:
        def check(results: Mapping[str, Any]) -> Outcome:
            ours = _cell(results, "ours", level, metric)
            peer = _cell(results, "sequential-fastapi", level, metric)
            if ours is None or peer is None:
                return Outcome(None, "not measured")
            text = (
                f"{ours['median'] / peer['median']:.2f}x: ours {_text(ours, 'ms')} vs "
                f"sequential-fastapi {_text(peer, 'ms')}"
            )
            return Outcome(ours["median"] < peer["median"], text)

        label = metric.removesuffix("_ms")
        return Target(f"ours {label} < sequential FastAPI {label} (c={level})", check)

    def versus_triton(results: Mapping[str, Any]) -> Outcome:
        ours = _cell(results, "ours", c, "throughput_rps")
        peer = _cell(results, "triton-ensemble", c, "throughput_rps")
        if ours is None or peer is None:
            return Outcome(None, "not measured")
        text = (
            f"{ours['median'] / peer['median']:.2f}x: ours {_text(ours, 'req/s')} vs "
            f"triton-ensemble {_text(peer, 'req/s')}"
        )
        if on_triton := _cell(results, "ours-triton", c, "throughput_rps"):
            text += f"; ours-triton (members on Triton) {_text(on_triton, 'req/s')}"
        return Outcome(ours["median"] >= peer["median"], text)

    def accuracy(results: Mapping[str, Any]) -> Outcome:
        figures = results["settings"].get("accuracy") or {}
        members = {name: figures[name] for name in MEMBERS if name in figures}
        combined = {name: figures[name] for name in AGGREGATIONS if name in figures}
        if not members or not combined:
            return Outcome(None, "no accuracy report")
        best_member = max(members, key=lambda name: members[name])
        best = max(combined, key=lambda name: combined[name])
        text = (
            f"{best} {combined[best]:.4f} vs {best_member} {members[best_member]:.4f}; "
            + ", ".join(f"{name} {value:.4f}" for name, value in {**members, **combined}.items())
        )
        return Outcome(combined[best] >= members[best_member], text)

    def slow_p99(results: Mapping[str, Any]) -> Outcome:
        p99 = _cell(results, "ours-slow-member", 1, "p99_ms")
        if p99 is None:
            return Outcome(None, "not measured")
        others = [
            f"c={level} {cell['median']:.1f} ms"
            for level in results["settings"]["concurrencies"]
            if level != 1 and (cell := _cell(results, "ours-slow-member", level, "p99_ms"))
        ]
        text = _text(p99, "ms") + (f"; not in the target: {', '.join(others)}" if others else "")
        return Outcome(p99["median"] <= SLOW_DEADLINE_MS + SLOW_MARGIN_MS, text)

    def slow_degraded(results: Mapping[str, Any]) -> Outcome:
        cells = [cell for cell in results["cells"] if cell["contender"] == "ours-slow-member"]
        if not cells:
            return Outcome(None, "not measured")
        completed = sum(int(cell["completed"]) for cell in cells)
        errors = sum(int(cell["errors"]) for cell in cells)
        kinds: collections.Counter[str] = collections.Counter()
        for cell in cells:
            kinds.update(cell["error_kinds"])
        reasons = ", ".join(f"{why} {n}" for why, n in slow_check.reasons.most_common())
        text = (
            f"{completed} answers in the windows, {errors} errors"
            + (f" ({', '.join(f'{k} {n}' for k, n in kinds.items())})" if errors else "")
            + f"; left out, over all {slow_check.answers} answers: {reasons or 'none'}"
        )
        return Outcome(completed > 0 and errors == 0, text)

    return [
        overhead("p50_ms", P50_OVERHEAD_MS),
        overhead("p99_ms", P99_OVERHEAD_MS),
        Target(f"ours >= {LIMIT_SHARE:.0%} of the limit's throughput (c={c})", versus_limit),
        Target(f"ours >= the Triton ensemble's throughput (c={c})", versus_triton),
        versus_sequential("p50_ms", 1),
        versus_sequential("p99_ms", c),
        Target("best aggregation >= best member, accuracy on held-out digits", accuracy),
        Target(
            f"slow optional member: p99 <= its {SLOW_DEADLINE_MS:g} ms deadline + "
            f"{SLOW_MARGIN_MS:g} ms (c=1)",
            slow_p99,
        ),
        Target("slow optional member: every answer 200 and degraded", slow_degraded),
    ]
