"""The load benchmark runs end to end (a short run: figures are reported, never asserted)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT, require

pytestmark = pytest.mark.integration


def _run(*arguments: str) -> subprocess.CompletedProcess:
    """Run a benchmark script the way the README does; it must succeed."""
    result = subprocess.run([sys.executable, *arguments], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_benchmark_reports_every_figure_and_no_errors(tmp_path):
    for tool in ("wrk", "nginx", "taskset"):
        require(shutil.which(tool) is not None, f"{tool} is not installed (apt-get install wrk nginx)")
    report_path = tmp_path / "bench.json"
    result = _run("bench/run.py", "--duration", "1", "--rounds", "1", "--entries", "300", "--json", str(report_path))
    report = json.loads(report_path.read_text())
    scenarios = [f"{name}, {mode}" for name in ("feed 200", "feed 200 gzip", "feed 304") for mode in ("new connections", "keep-alive")]
    assert set(report["ratios"]) == {f"{s} / {ceiling}" for s in scenarios for ceiling in ("bare", "nginx")}
    assert all(ratio > 0 for ratio in report["ratios"].values())
    assert set(report["content_size"]) == {"10", "300"}
    assert set(report["content_size_ratios"]) == {
        "feed 200, new connections",
        "feed 200, keep-alive",
        "feed 304, new connections",
        "feed 304, keep-alive",
    }
    assert report["memory_mib"] and all(mib > 0 for mib in report["memory_mib"])
    for server in ("service", "bare", "nginx"):
        assert all(run["errors"] == 0 for run in report["results"][server].values())
    assert "ratios service / ceiling" in result.stdout


def test_scale_benchmark_smoke_run_reports_every_serving_figure(tmp_path):
    """A small archive through bench/scale.py: every figure of the table is measured (Hugo's only if installed)."""
    require(shutil.which("wrk") is not None, "wrk is not installed (apt-get install wrk)")
    report_path = tmp_path / "scale.json"
    result = _run("-m", "bench.scale", "--entries", "1500", "--no-build", "--idle-seconds", "2", "--json", str(report_path))
    figures = json.loads(report_path.read_text())
    for name in (
        "cold start",
        "cold start, every body rendered",
        "warm restart",
        "warm restart, every page ready",
        "edit -> served (newest)",
        "edit -> served (oldest)",
        "idle CPU",
        "memory (PSS, all processes)",
        "first request p99 (entry + archive pages)",
        "/feed.xml throughput",
    ):
        assert figures[name] > 0 or name == "idle CPU", name
    assert figures["pages not found"] == 0  # every sampled old entry page and archive document answered
    assert figures["cold start, every body rendered"] >= figures["cold start"]
    assert "cold start" in result.stdout
