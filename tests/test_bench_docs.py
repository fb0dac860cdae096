"""docs/benchmarks.md and its one writer (bench/docs.py): a script's --write replaces only the
text between its own markers, the markers are checked, and every contents link resolves."""

from __future__ import annotations

import argparse
import re
import shutil
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from bench import docs, harness

ROOT = Path(__file__).resolve().parent.parent
# Scripts whose generated section lives in another doc than docs/benchmarks.md.
ELSEWHERE = {
    "soak.py": ROOT / "docs" / "reliability.md",
    "demand_peers.py": ROOT / "docs" / "models.md",
}
SCRIPTS = sorted(
    path.name
    for path in (ROOT / "bench").glob("*.py")
    if '"--write"' in path.read_text() and path.name not in ELSEWHERE
)
ORIGINAL = docs.DOCS.read_bytes()


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The real docs/benchmarks.md, copied: the tests write to this, never to the original."""
    path = tmp_path / "benchmarks.md"
    shutil.copyfile(docs.DOCS, path)
    return path


def outside(data: bytes, name: str) -> tuple[bytes, bytes]:
    """The bytes before and after the section ``name``'s generated text."""
    start, stop = docs.span(data.decode("utf-8"), name)
    text = data.decode("utf-8")
    return text[:start].encode(), text[stop:].encode()


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings: lowercase, punctuation dropped, spaces to
    hyphens, repeats numbered (``command``, ``command-1``, ...); fenced code is skipped."""
    anchors: set[str] = set()
    seen: Counter[str] = Counter()
    fenced = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (heading := re.match(r"#{1,6} (.+?)\s*$", line)):
            slug = re.sub(r"[^\w\- ]", "", heading[1].lower()).replace(" ", "-")
            anchors.add(f"{slug}-{seen[slug]}" if seen[slug] else slug)
            seen[slug] += 1
    return anchors


def test_github_anchors_follow_githubs_rules() -> None:
    text = "## Serving: ours vs Ray Serve\n### Command\n```\n# not a heading\n```\n### Command\n"
    assert github_anchors(text) == {"serving-ours-vs-ray-serve", "command", "command-1"}


# --- the docs ---------------------------------------------------------------------------------


def test_every_contents_link_resolves_to_a_heading() -> None:
    text = docs.DOCS.read_text()
    contents = text.split("Sections:", 1)[1].split("\n## ", 1)[0]
    links = re.findall(r"\]\(#([^)]+)\)", contents)
    assert len(links) >= 4  # API, serving, load test, batch
    assert set(links) <= github_anchors(text)


def test_every_link_into_the_benchmarks_resolves() -> None:
    anchors = github_anchors(docs.DOCS.read_text())
    in_docs = re.findall(r"\]\(#([^)]+)\)", docs.DOCS.read_text())
    from_readme = re.findall(r"docs/benchmarks\.md#([^)\s]+)\)", (ROOT / "README.md").read_text())
    assert from_readme  # the README's link to the load test results
    assert set(in_docs + from_readme) <= anchors


@pytest.mark.parametrize("script", SCRIPTS)
def test_each_writing_script_has_its_section_once(script: str) -> None:
    name = docs.section_name(script)
    docs.check_section(name)  # raises if missing, repeated or misordered
    assert docs.section_names(docs.DOCS.read_text()).count(name) == 1


@pytest.mark.parametrize("script", sorted(ELSEWHERE))
def test_a_script_writing_another_doc_has_its_section_there_once(script: str) -> None:
    assert '"--write"' in (ROOT / "bench" / script).read_text()
    docs.check_section(docs.section_name(script), ELSEWHERE[script])
    assert docs.section_names(docs.DOCS.read_text()).count(docs.section_name(script)) == 0


def test_the_sections_are_exactly_the_scripts_that_write() -> None:
    # The glob finds the writers (a new one needs no edit here, only its section).
    assert {"api.py", "batch.py", "loadtest.py", "security.py", "serving.py"} <= set(SCRIPTS)
    names = docs.section_names(docs.DOCS.read_text())
    assert sorted(names) == [f"bench/{script}" for script in SCRIPTS]


# --- the writer -------------------------------------------------------------------------------


@pytest.mark.parametrize("script", SCRIPTS)
def test_writing_one_section_leaves_every_other_byte_identical(copy: Path, script: str) -> None:
    name = docs.section_name(script)
    before = copy.read_bytes()
    kept = docs.span(before.decode("utf-8"), name)
    old_body = before.decode("utf-8")[kept[0] : kept[1]]

    docs.write_section(name, "### Results\n\n| a | b |\n|---|---|\n| 1 | 2 |\n", copy)
    after = copy.read_bytes()
    assert outside(after, name) == outside(before, name)
    assert "\n\n### Results\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n" in after.decode("utf-8")
    for other in docs.section_names(before.decode("utf-8")):
        start, stop = docs.span(before.decode("utf-8"), other)
        if other != name:
            assert before.decode("utf-8")[start:stop] in after.decode("utf-8")

    docs.write_section(name, old_body, copy)  # and back: the file as it was
    assert copy.read_bytes() == before == ORIGINAL


def test_writing_is_idempotent(copy: Path) -> None:
    docs.write_section("bench/serving.py", "body\n\n\n", copy)
    once = copy.read_bytes()
    docs.write_section("bench/serving.py", "\nbody", copy)
    assert copy.read_bytes() == once


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("<!-- END bench/api.py -->\n", ""), "missing"),
        (lambda t: t.replace("<!-- BEGIN bench/api.py -->\n", ""), "missing"),
        (lambda t: t + "\n<!-- BEGIN bench/api.py -->\n", "there 2 times"),
        (lambda t: t + "\n<!-- END bench/api.py -->\n", "there 2 times"),
        (
            lambda t: (
                t.replace("<!-- BEGIN bench/api.py -->", "<!-- TEMP -->")
                .replace("<!-- END bench/api.py -->", "<!-- BEGIN bench/api.py -->")
                .replace("<!-- TEMP -->", "<!-- END bench/api.py -->")
            ),
            "before its BEGIN",
        ),
    ],
)
def test_a_bad_marker_fails_loudly_and_writes_nothing(copy: Path, edit: Any, message: str) -> None:
    broken = edit(copy.read_text()).encode()
    copy.write_bytes(broken)
    with pytest.raises(docs.MarkerError, match=message):
        docs.write_section("bench/api.py", "new", copy)
    with pytest.raises(docs.MarkerError):
        docs.check_section("bench/api.py", copy)
    assert copy.read_bytes() == broken


def test_only_whole_marker_lines_count() -> None:
    text = "see `<!-- BEGIN x -->` and `<!-- END x -->`\n<!-- BEGIN x -->\nold\n<!-- END x -->\n"
    assert docs.replace_section(text, "x", "new") == (
        "see `<!-- BEGIN x -->` and `<!-- END x -->`\n<!-- BEGIN x -->\n\nnew\n\n<!-- END x -->\n"
    )
    with pytest.raises(docs.MarkerError, match="missing"):
        docs.replace_section("`<!-- BEGIN y -->`\n<!-- END y -->\n", "y", "new")


# --- each script's rendering, written through the writer --------------------------------------

HOST = {
    "cpus": 2,
    "processor": "Intel(R) Xeon(R) Processor",
    "platform": "Linux-6.18-x86_64",
    "python": "3.11.7",
    "load_average_1m_at_start": 0.8,
}


def api_section() -> str:
    from bench import api

    result = api.Result("POST /v1/transactions", 5157, 0, 257.9, 117.0, 195.1, 227.1, {}, 0.3)
    report = {
        "command": ".venv/bin/python bench/api.py --write",
        "date": "2026-11-26T07:00:00+00:00",
        "machine": HOST,
        "config": {
            "duration_s": 20.0,
            "warmup_s": 2.0,
            "concurrency": 32,
            "client": "one client per worker",
            "uvicorn_workers": 2,
        },
        "results": [{"client_cpu_cores": result.client_cpu_cores}],
        "table_markdown": api.markdown_table([result]),
        "notes": ["transactions: 5655 answered 201, 5655 rows stored"],
    }
    return api.docs_section(report)


def batch_section() -> str:
    from bench import batch

    args = argparse.Namespace(repeat=3, demand_chunk=256, esg_chunk=512, farms=2000)
    rows = {"demand": {"raw": [1e6], "e2e": [4e4], "rows": [14280]}}
    rows["esg"] = {"raw": [5e5], "e2e": [5e3], "rows": [2000]}
    return batch.docs_section(batch.table(args, rows), args, HOST)


def int8_section() -> str:
    from bench import int8

    args = argparse.Namespace(repeat=3, demand_chunk=256, esg_chunk=512, farms=2000)
    raw = {
        (name, batch, precision): [1e4 * batch * (2.0 if precision == "int8" else 1.0)]
        for name in ("pamtalk-demand", "pamtalk-esg")
        for batch in int8.RAW_BATCHES
        for precision in int8.PRECISIONS
    }
    e2e = {
        (name, p): [1e4, 1.1e4]
        for name in ("pamtalk-demand", "pamtalk-esg")
        for p in ("fp32", "int8")
    }
    served = {key: key[1] for key in e2e}
    return int8.docs_section(int8.tables(args, raw, e2e, served), args, HOST)


def cpu_section() -> str:
    from bench import cpu

    numbers = (2480, 0, 248.0, 14.1, 44.9, 1.23, 0.24, 0.12, 1.0, 0.0, 9.0, 8.0, 0.1)
    window = cpu.Window("GET /v1/farms", *numbers, {"farms": 0.99}, {})
    profile = {
        "file": "bench/results/cpu/get-v1-farms.txt",
        "samples": 607,
        "sampled_cpu_ms_per_request": 2.45,
        "functions": [{"where": "f (redis/x.py)", "package": "redis", "self": 0.33}],
        "packages": {"redis": 0.44, "uvicorn": 0.11},
        "ours": {"RedisCache._call (pamtalk/cache.py)": 0.06},
        "ours_self": 0.04,
    }
    report = {
        "command": ".venv/bin/python bench/cpu.py --write",
        "date": "2026-11-30T21:00:00+00:00",
        "machine": HOST,
        "config": {
            "duration_s": 10.0,
            "warmup_s": 3.0,
            "concurrency": 4,
            "workers": 1,
            "rate": 250,
        },
        "windows": [asdict(window)],
        "profiles": {"GET /v1/farms": profile},
    }
    return cpu.docs_section(report)


def gc_pause_section() -> str:
    from bench import gc_pause

    result = {
        "tracked_objects_thawed": 346382,
        "tracked_objects_frozen": 15,
        "full_collection_ms_thawed": 541.68,
        "full_collection_ms_frozen": 0.0,
    }
    report = {
        "command": ".venv/bin/python bench/gc_pause.py --write",
        "date": "2026-11-30T20:46:00+00:00",
        "machine": HOST,
        "result": result,
    }
    return gc_pause.docs_section(report)


def loadtest_section() -> str:
    from bench import loadtest

    report = {
        "started_at": "2026-11-26T10:30:00+00:00",
        "command": ".venv/bin/python bench/loadtest.py --write",
        "machine": HOST,
        "setup": "2 cpus; server --workers 2; scaled-down durations",
        "table_markdown": loadtest.markdown([]),
    }
    return loadtest.docs_section(report)


def embedded_section() -> str:
    from bench import embedded

    steady = {"requests": 6000, "failures": 0, "error_rate": 0.0, "rps": 100.0}
    steady |= {"p50_ms": 5.0, "p99_ms": 40.0, "from_s": 30.0, "to_s": 90.0}
    report = {
        "started_at": "2026-11-30T20:43:00+00:00",
        "command": ".venv/bin/python bench/embedded.py --code HEAD~1 --code HEAD --write",
        "machine": HOST,
        "setup": "2 cpus; `pamtalk serve` defaults (SQLite, 1 worker, in-process cache)",
        "table_markdown": embedded.loadtest.markdown([]),
        "runs": [{"run": "peak (abc1234)", "steady": steady}],
    }
    return embedded.docs_section(report)


def serving_section() -> str:
    from bench.serving_load import Point, ServerRun
    from bench.serving_report import build_report, docs_section
    from bench.serving_setup import Setup

    point = Point("ours-local", 8, 10712, 0, 1339.1, 6.45, 8.09, 0.16, 0.95, 0.0, {})
    runs = [ServerRun("ours-local", points=[point]), ServerRun("mlflow", "not run", "exited")]
    args = argparse.Namespace(tiny=False, duration=8.0, warmup=2.0, concurrency=[8], slo_ms=50.0)
    setup = Setup("sqlite:///m.db", "sqlite:///b.db", "key", Path("m.onnx"), "1", "t", Path("r"))
    command = ".venv/bin/python bench/serving.py --write"
    return docs_section(build_report(args, setup, HOST, runs, (3.0, 259.0), command))


def security_section() -> str:
    from bench import security

    results = {
        "flood": {
            "logins": 80,
            "by_status": {"401 unauthorized": 1, "429 too_many_requests": 50, "503 busy": 29},
            "shed_429_share": 0.625,
            "shed_share": 0.988,
            "seconds": 0.6,
        },
        "reads": {
            "quiet": {"requests": 300, "median_ms": 6.0, "p95_ms": 13.5, "max_ms": 21.1},
            "during_flood": {"requests": 20, "median_ms": 12.5, "p95_ms": 142.0, "max_ms": 142.4},
            "errors": 0,
        },
    }
    report = {
        "command": ".venv/bin/python bench/security.py --write",
        "date": "2026-11-30T17:47:36+00:00",
        "machine": HOST,
        "config": {"read_rate": 30.0, "quiet_s": 10.0, "flood": 80},
        "passed": security.passed(results),
        "table_markdown": security.markdown_table(results),
    }
    assert report["passed"]
    return security.docs_section(report)


def tracing_section() -> str:
    from bench import tracing

    results = {
        "off": {"hit": [674.0, 339.0, 232.0], "miss": [664.0, 294.0, 208.0]},
        "on": {"hit": [477.0, 231.0, 171.0], "miss": [339.0, 226.0, 259.0]},
    }
    report = {
        "date": "2026-11-30 20:59",
        "machine": HOST,
        "command": ".venv/bin/python bench/tracing.py --write",
        "config": {"rounds": 3, "requests": 600, "concurrency": 8},
        "results": results,
    }
    return tracing.docs_section(report)


RENDER = {
    "api.py": api_section,
    "batch.py": batch_section,
    "cpu.py": cpu_section,
    "embedded.py": embedded_section,
    "gc_pause.py": gc_pause_section,
    "int8.py": int8_section,
    "loadtest.py": loadtest_section,
    "security.py": security_section,
    "serving.py": serving_section,
    "tracing.py": tracing_section,
}


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_scripts_write_changes_only_its_own_section(copy: Path, script: str) -> None:
    name, body = docs.section_name(script), RENDER[script]()
    assert f"bench/{script}" in body and "2 cores (`Intel(R) Xeon(R) Processor`)" in body
    before = copy.read_bytes()
    docs.write_section(name, body, copy)
    after = copy.read_text()
    assert outside(copy.read_bytes(), name) == outside(before, name)
    assert body.strip() in after
    assert docs.section_names(after) == docs.section_names(before.decode())
    contents = after.split("Sections:", 1)[1].split("\n## ", 1)[0]
    assert set(re.findall(r"\]\(#([^)]+)\)", contents)) <= github_anchors(after)


def test_the_harness_describes_the_machine() -> None:
    host = harness.machine()
    assert host["cpus"] >= 1 and host["python"].count(".") == 2
    assert host["packages"]["pamtalk"] is not None
    assert harness.machine_line(host).startswith(f"{host['cpus']} cores (`")
