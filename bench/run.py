"""Load benchmark: feedsvc vs a bare WSGI app (the Python ceiling) vs nginx static (the machine's ceiling).

    python bench/run.py [--duration 5] [--connections 64] [--workers 1] [--compare-gunicorn]

The server under test is pinned to CPU 0 and wrk to CPU 1 (taskset), one server at a time. Needs wrk
and nginx (Debian: apt-get install wrk nginx). Prints requests/s and p99 for /feed.xml 200, 200 gzip
and 304, each with new connections (Connection: close, how most aggregators poll) and keep-alive,
the landing page, the ratios service/ceiling, worker memory, and the cost with 10 vs 10,000 entries.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.generate_content import generate  # noqa: E402
from feedsvc.__main__ import connection_limits  # noqa: E402
from tests.servers import free_port, wait_for  # noqa: E402

SERVER_CPU, LOAD_CPU = "0", "1"
MODES = {"new connections": {"Connection": "close"}, "keep-alive": {}}
TARGETS = {"bare": {"new connections": 0.9, "keep-alive": 0.9}, "nginx": {"new connections": 0.8, "keep-alive": 0.5}}


@dataclass
class Result:
    requests_per_second: float
    p99_ms: float
    errors: int


def run_wrk(url: str, headers: dict, duration: float, connections: int) -> Result:
    """Run wrk pinned to the load CPU and parse its report."""
    command = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", output).groups()
    p99 = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non_success = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return Result(rps, p99, errors + (int(non_success.group(1)) if non_success else 0))


@contextlib.contextmanager
def pinned(command: list[str], env: dict, url: str, log: Path):
    """Start a server pinned to the server CPU, wait until ``url`` answers, stop it afterwards."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, *command], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_for(url)
        yield process
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=20)


def service(content: Path, port: int, workers: int, log: Path, extra_env: dict | None = None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDSVC_")} | (extra_env or {})
    env["FEEDSVC_STATE_DIR"] = str(log.parent / f"state-{content.name}")  # the run's own, next to its logs
    command = [sys.executable, "-m", "feedsvc", "serve", "--port", str(port), "--workers", str(workers), "--content", str(content)]
    return pinned(command, env, f"http://127.0.0.1:{port}/healthz", log)


def bare_wsgi(body_dir: Path, port: int, workers: int, log: Path):
    env = {**os.environ, "BENCH_BODY_DIR": str(body_dir), "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        "wsgi",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--blocking-threads",
        "2",
        "--no-ws",
        *connection_limits(),  # the same limits as `serve`
        "--log-level",
        "warning",
        "bench.bare_wsgi:app",
    ]
    return pinned(command, env, f"http://127.0.0.1:{port}/feed.xml", log)


def nginx(www: Path, port: int, workers: int, work: Path):
    config = work / "nginx.conf"
    config.write_text(
        f"""
worker_processes {workers};
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {work}/tmp-body;
    proxy_temp_path {work}/tmp-proxy;
    fastcgi_temp_path {work}/tmp-fastcgi;
    uwsgi_temp_path {work}/tmp-uwsgi;
    scgi_temp_path {work}/tmp-scgi;
    types {{ application/rss+xml xml; text/html html; }}
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        root {www};
        gzip_static on;
        location = / {{ try_files /index.html =404; }}
    }}
}}
"""
    )
    return pinned(["nginx", "-c", str(config)], dict(os.environ), f"http://127.0.0.1:{port}/feed.xml", work / "nginx.log")


def fetch(url: str, headers: dict | None = None):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request) as response:
            return response.read(), response.headers  # case-insensitive
    except urllib.error.HTTPError as error:  # 304
        return b"", error.headers


def feed_scenarios(base: str) -> dict[str, dict]:
    """Request headers for the three feed scenarios; the 304 one echoes this server's own ETag."""
    _, headers = fetch(base + "/feed.xml")
    return {
        "feed 200": {},
        "feed 200 gzip": {"Accept-Encoding": "gzip"},
        "feed 304": {"If-None-Match": headers["ETag"]},
    }


def measure_interleaved(bases: dict[str, str], path: str, args, scenarios: dict[str, dict] | None = None) -> dict[str, dict]:
    """Measure every scenario on every server, ``args.rounds`` times in rotation; keep the median run."""
    per_server = {name: scenarios or feed_scenarios(base) for name, base in bases.items()}
    for base in bases.values():
        run_wrk(base + path, {}, 1, args.connections)  # warm up
    runs: dict[str, dict] = {name: {} for name in bases}
    for _ in range(args.rounds):
        for name, base in bases.items():
            for scenario, headers in per_server[name].items():
                for mode, mode_headers in MODES.items():
                    result = run_wrk(base + path, {**headers, **mode_headers}, args.duration, args.connections)
                    runs[name].setdefault((scenario, mode), []).append(result)
    return {
        name: {key: sorted(results, key=lambda r: r.requests_per_second)[len(results) // 2] for key, results in group.items()}
        for name, group in runs.items()
    }


def prepare_ceilings(base: str, work: Path) -> tuple[bytes, bytes]:
    """Copy the service's exact feed bytes and headers for the bare WSGI app and nginx."""
    body_dir, www = work / "body", work / "www"
    body_dir.mkdir()
    www.mkdir()
    identity, identity_headers = fetch(base + "/feed.xml")
    zipped, gzip_headers = fetch(base + "/feed.xml", {"Accept-Encoding": "gzip"})
    _, not_modified_headers = fetch(base + "/feed.xml", {"If-None-Match": identity_headers["ETag"]})
    (body_dir / "identity").write_bytes(identity)
    (body_dir / "gzip").write_bytes(zipped)
    drop = {"Date", "Server", "Connection", "Transfer-Encoding"}
    variants = {"identity": identity_headers, "gzip": gzip_headers, "not_modified": not_modified_headers}
    (body_dir / "meta.json").write_text(
        json.dumps({name: [(k, v) for k, v in h.items() if k.title() not in drop] for name, h in variants.items()})
    )
    (www / "feed.xml").write_bytes(identity)
    (www / "feed.xml.gz").write_bytes(zipped)
    for path in (www, www / "feed.xml", www / "feed.xml.gz"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return identity, zipped


def worker_rss_mib(pid: int) -> dict[int, float]:
    """Return resident memory (MiB) of every process in the server's process group."""
    sizes = {}
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pid:  # process group
                rss_pages = int(fields[21])
                sizes[int(status.parent.name)] = rss_pages * os.sysconf("SC_PAGE_SIZE") / 2**20
        except (OSError, IndexError, ValueError):
            continue
    return sizes


BUILD_PROBE = """
import json, resource, sys, time
from pathlib import Path
from feedsvc.source.loader import LoadMemo, load_content
from feedsvc.publication import build_publication
folder, parsed = Path(sys.argv[1]), LoadMemo()
t0 = time.perf_counter()
publication = build_publication(load_content(folder, None, parsed))
t1 = time.perf_counter()
for path in publication.paths():
    publication.document(path)
t2 = time.perf_counter()
edited = sorted((folder / "posts").glob("*.md"))[len(publication.content.entries) // 2]
original = edited.read_text()
edited.write_text(original.replace("story number", "tale number"))
t3 = time.perf_counter()
build_publication(load_content(folder, None, parsed), None, publication)
t4 = time.perf_counter()
edited.write_text(original)
print(json.dumps({"start_seconds": t1 - t0, "all_archives_seconds": t2 - t1, "reload_one_edit_seconds": t4 - t3,
                  "documents": len(publication.documents), "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def build_time(content: Path) -> dict:
    """Time, in a fresh interpreter: start (load + render), every archive page, and a reload after one edit."""
    out = subprocess.run([sys.executable, "-c", BUILD_PROBE, str(content)], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def line(label: str, result: Result) -> str:
    errors = f"  ERRORS {result.errors}" if result.errors else ""
    return f"  {label:<40} {result.requests_per_second:>10,.0f} req/s   p99 {result.p99_ms:7.2f} ms{errors}"


def main() -> int:
    parser = argparse.ArgumentParser(description="feedsvc load benchmark")
    parser.add_argument("--duration", type=float, default=5, help="seconds per measurement (default: %(default)s)")
    parser.add_argument("--connections", type=int, default=64, help="concurrent connections (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per figure, median kept (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes (default: %(default)s)")
    parser.add_argument("--entries", type=int, default=10_000, help="size of the large content folder (default: %(default)s)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--compare-gunicorn", action="store_true", help="also measure the app under gunicorn (pip install -r bench/requirements.txt)"
    )
    args = parser.parse_args()
    for tool in ("wrk", "nginx", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"bench needs {tool} (Debian: apt-get install wrk nginx)")
    work = Path(tempfile.mkdtemp(prefix="feedsvc-bench-"))
    work.chmod(0o755)  # nginx workers run as an unprivileged user
    report: dict = {"config": vars(args) | {"json": str(args.json)}}
    print(
        f"feedsvc benchmark: {args.duration:g} s per run, {args.connections} connections, {args.workers} worker(s); server on CPU {SERVER_CPU}, wrk on CPU {LOAD_CPU}\n"
    )

    results: dict[str, dict] = {}
    with contextlib.ExitStack() as stack:
        port = free_port()
        process = stack.enter_context(service(ROOT / "content", port, args.workers, work / "service.log"))
        bases = {"service": f"http://127.0.0.1:{port}"}
        identity, zipped = prepare_ceilings(bases["service"], work)
        port = free_port()
        stack.enter_context(bare_wsgi(work / "body", port, args.workers, work / "bare.log"))
        bases["bare"] = f"http://127.0.0.1:{port}"
        port = free_port()
        stack.enter_context(nginx(work / "www", port, args.workers, work))
        bases["nginx"] = f"http://127.0.0.1:{port}"
        # all three idle on CPU 0; each measurement loads one of them, rotating, so drift hits all alike
        results = measure_interleaved(bases, "/feed.xml", args)
        landing = measure_interleaved({"service": bases["service"]}, "/", args, {"landing page 200 gzip": {"Accept-Encoding": "gzip"}})[
            "service"
        ]
        memory = worker_rss_mib(process.pid)

    print(f"/feed.xml ({len(identity):,} bytes, {len(zipped):,} gzipped)")
    for (name, mode), result in results["service"].items():
        print(line(f"{name}, {mode}", result))
    for (name, mode), result in landing.items():
        print(line(f"{name}, {mode}", result))
    print("\nceilings: bare WSGI app (same bytes, same server) | nginx static file")
    for key in results["service"]:
        print(
            f"  {', '.join(key):<40} bare {results['bare'][key].requests_per_second:>9,.0f}   nginx {results['nginx'][key].requests_per_second:>9,.0f} req/s"
        )
    print("\nratios service / ceiling (target)")
    failures = 0
    for key, result in results["service"].items():
        cells = []
        for ceiling in ("bare", "nginx"):
            ratio = result.requests_per_second / results[ceiling][key].requests_per_second
            target = TARGETS[ceiling][key[1]]
            ok = ratio >= target
            failures += not ok
            cells.append(f"{ceiling} {ratio:5.2f}x (>= {target}) {'ok' if ok else 'BELOW'}")
            report.setdefault("ratios", {})[f"{', '.join(key)} / {ceiling}"] = round(ratio, 3)
        print(f"  {', '.join(key):<40} " + "   ".join(cells))
    print("\nmemory (RSS) of the service's processes after the run: " + ", ".join(f"{mib:.1f} MiB" for mib in sorted(memory.values())))

    # request cost must not grow with content: same 10 newest entries, 10 vs N entries behind them
    print(f"\ncontent size: 10 vs {args.entries:,} entries (feed limited to the same 10 newest entries, so identical bytes)")
    sizes = {}
    for count in (10, args.entries):
        folder = generate(work / f"content-{count}", count)
        timing = build_time(folder)
        port = free_port()
        with service(folder, port, args.workers, work / f"service-{count}.log", {"FEEDSVC_ITEM_LIMIT": "10"}) as process:
            base = f"http://127.0.0.1:{port}"
            sizes[count] = measure_interleaved(
                {"service": base}, "/feed.xml", args, {"feed 200": {}, "feed 304": feed_scenarios(base)["feed 304"]}
            )["service"]
            rss = max(worker_rss_mib(process.pid).values())
        print(
            f"  {count:>6,} entries: start (load + render pages and feeds) {timing['start_seconds']:5.2f} s; every archive page {timing['all_archives_seconds']:5.2f} s; "
            f"reload after one edit {timing['reload_one_edit_seconds']:5.2f} s; peak {timing['peak_mib']:6.1f} MiB with all {timing['documents']:,} documents; "
            f"server process {rss:6.1f} MiB"
        )
        report.setdefault("content_size", {})[count] = {**{k: round(v, 3) for k, v in timing.items()}, "server_rss_mib": round(rss, 1)}
    for key in sizes[10]:
        ratio = sizes[args.entries][key].requests_per_second / sizes[10][key].requests_per_second
        print(
            f"  {', '.join(key):<40} 10: {sizes[10][key].requests_per_second:>9,.0f}   {args.entries:,}: {sizes[args.entries][key].requests_per_second:>9,.0f} req/s   ratio {ratio:4.2f}"
        )
        report.setdefault("content_size_ratios", {})[", ".join(key)] = round(ratio, 3)

    if args.compare_gunicorn:
        # the evidence behind the choice of server: the same app under gunicorn's sync workers
        port = free_port()
        env = {**os.environ, "FEEDSVC_CONTENT_DIR": str(ROOT / "content"), "FEEDSVC_BASE_URL": f"http://127.0.0.1:{port}"}
        command = [sys.executable, "-m", "gunicorn", "--workers", str(args.workers), "--bind", f"127.0.0.1:{port}", "feedsvc.wsgi:app"]
        with pinned(command, env, f"http://127.0.0.1:{port}/healthz", work / "gunicorn.log"):
            gunicorn = measure_interleaved({"gunicorn": f"http://127.0.0.1:{port}"}, "/feed.xml", args, {"feed 200": {}})["gunicorn"]
        print("\nthe same app under gunicorn (sync workers), for comparison")
        for key, result in gunicorn.items():
            print(
                line(", ".join(key), result)
                + f"   granian/gunicorn {results['service'][key].requests_per_second / result.requests_per_second:4.1f}x"
            )
        report["gunicorn"] = {", ".join(k): vars(v) for k, v in gunicorn.items()}

    errors = sum(r.errors for group in (*results.values(), landing, *sizes.values()) for r in group.values())
    print(f"\nsocket errors / non-2xx-3xx responses: {errors}")
    report["results"] = {server: {", ".join(k): vars(v) for k, v in group.items()} for server, group in results.items()}
    report["memory_mib"] = sorted(memory.values())
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    shutil.rmtree(work, ignore_errors=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
