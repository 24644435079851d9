"""Measurements: k6 phases (with the server's and k6's CPU and a per-bucket series for
the chart), pgbench, redis-benchmark and the Rust drivers. Each returns a dict the
report reads; a broken k6 threshold or a failed tool is recorded as a failure."""

import csv
import io
import json
import math
import os
import re
import subprocess
import time
import urllib.request

import procs
from settings import DATABASE, HOST

K6_BROKEN = 99  # k6's exit code when a threshold failed


class CpuMeter:
    """CPU seconds each party used during a phase: flashgate, the load driver, RabbitMQ,
    Redis, PostgreSQL and everything else, and how busy the machine was; and each
    process's peak resident memory in the phase, and since the phase before it."""

    def __init__(self, ctx, phase):
        self.ctx, self.phase = ctx, phase
        ctx.memory_peaks(f"before {phase}")
        self.own = dict(ctx.stack.pids)
        self.before = procs.cpu_snapshot(self.own)
        self.busy = procs.machine_busy()
        self.compiler = procs.compiler_running()

    def stop(self, driver_cpu):
        self.ctx.memory_peaks(self.phase)
        self.compiler |= procs.compiler_running()
        cpu = procs.cpu_used(self.before, procs.cpu_snapshot(self.own))
        busy = procs.machine_busy()
        busy_secs = (busy[0] - self.busy[0]) / os.sysconf("SC_CLK_TCK")
        cpu["driver"] = driver_cpu
        cpu["other"] = max(0.0, busy_secs - sum(cpu.values()))
        cpu["flashgate"] = sum(cpu.get(role, 0.0) for role in self.own)
        cpu["compiler_running"] = self.compiler
        return cpu, (busy[0] - self.busy[0]) / max(1, busy[1] - self.busy[1])


def k6(ctx, phase, script, env, secs):
    """Runs one k6 phase of about `secs` seconds; returns its measurement."""
    summary = os.path.join(ctx.work, f"{phase}.json")
    bucket_ms = max(1000, int(secs * 1000 / 40))
    env = dict(env, PHASE=phase, SUMMARY=summary, BUCKET_MS=bucket_ms,
               BUCKETS=math.ceil((secs + 90) * 1000 / bucket_ms))
    argv = [ctx.k6, "run", "--quiet", "--no-usage-report", "--no-color", "--log-output=stderr"]
    for key, value in env.items():
        argv += ["-e", f"{key}={value}"]
    argv.append(os.path.join(ctx.k6_dir, script))
    meter = CpuMeter(ctx, phase)
    print(f"run: k6 {phase} ({script}, ~{secs} s)", flush=True)
    code, out, k6_cpu, err = procs.run(argv, timeout=secs + 600, log=os.path.join(ctx.work, "k6.log"))
    print(out.strip(), flush=True)
    cpu, machine = meter.stop(k6_cpu)
    if not os.path.exists(summary):
        ctx.fail(f"k6 {phase} produced no summary (exit {code}): {err.strip()[-400:]}")
        return {"phase": phase, "ok": False, "count": 0, "rate": 0.0, "series": []}
    result = parse(json.load(open(summary)), phase, bucket_ms, None if env.get("MODE") == "spike" else secs)
    result.update(cpu=cpu, machine_busy=machine, driver="k6", command=f"k6 run loadtest/k6/{script}")
    if result["count"]:
        result["server_cpu_us_per_req"] = cpu["flashgate"] / result["count"] * 1e6
    if code == K6_BROKEN or result["broken"]:
        ctx.fail(f"k6 {phase}: thresholds broken: {', '.join(result['broken']) or '?'}")
    elif code != 0:
        ctx.fail(f"k6 {phase} exited {code}: {err.strip()[-400:]}")
    result["ok"] = code == 0 and not result["broken"]
    return result


def http_bench(ctx, phase, addr, args, expected, secs, rate=None):
    """One `flashgate-loadtools http-bench` phase (closed loop, or open at `rate`, with the
    open loop's connections)."""
    connections = ctx.mode.open_connections if rate else ctx.mode.concurrency
    argv = [ctx.stack.binary("flashgate-loadtools"), "http-bench", "--addr", addr, "--secs", str(secs),
            "--connections", str(connections)] + args
    if rate:
        argv += ["--rate", str(int(rate))]
    meter = CpuMeter(ctx, phase)
    print(f"run: http-bench {phase} ({secs} s{f', {int(rate)}/s' if rate else ''})", flush=True)
    code, out, driver_cpu, err = procs.run(argv, timeout=secs + 120, log=os.path.join(ctx.work, "http-bench.log"))
    cpu, machine = meter.stop(driver_cpu)
    if code != 0:
        ctx.fail(f"http-bench {phase} failed: {err.strip()[-400:]}")
        return {"phase": phase, "ok": False, "count": 0, "rate": 0.0, "series": []}
    r = json.loads(out.strip().splitlines()[-1])
    unexpected = r["errors"] + sum(n for status, n in r["statuses"].items() if int(status) not in expected)
    result = {
        "phase": phase, "rate": r["per_sec"], "count": r["requests"], "p50": r["latency"]["p50_ms"],
        "p99": r["latency"]["p99_ms"], "max": r["latency"]["max_ms"], "offered": int(rate) if rate else None,
        "series": [(t, n, p50, p99) for t, n, p50, p99 in r["series"]], "cpu": cpu, "machine_busy": machine,
        "counters": {"unexpected_status": unexpected}, "statuses": r["statuses"], "driver": "http-bench",
        "ok": unexpected == 0, "command": "flashgate-loadtools " + " ".join(
            a.replace(ctx.root + "/", "") for a in argv[1:]),
    }
    if result["count"]:
        result["server_cpu_us_per_req"] = cpu["flashgate"] / result["count"] * 1e6
    print(f"{phase}: {result['count']} requests, {result['rate']:.0f}/s, p50 {result['p50']:.2f} ms, "
          f"p99 {result['p99']:.2f} ms, statuses {r['statuses']}, errors {r['errors']}", flush=True)
    if unexpected:
        ctx.fail(f"http-bench {phase}: {unexpected} answers other than {expected} ({r['statuses']}, "
                 f"{r['errors']} connection errors)")
    return result


def parse(summary, phase, bucket_ms, secs=None):
    """The numbers of one k6 summary: main request count, latency, per-bucket series,
    counters, broken thresholds."""
    metrics = summary["metrics"]
    values = lambda name: metrics.get(name, {}).get("values", {})  # noqa: E731
    buckets = {}
    for name, metric in metrics.items():
        found = re.fullmatch(r"main_(reqs|latency)\{b:(\d+)\}", name)
        if found:
            slot = buckets.setdefault(int(found.group(2)), {})
            slot.update(metric["values"])
    series = [(b * bucket_ms / 1000, v.get("count", 0) / (bucket_ms / 1000), v.get("med"), v.get("p(99)"))
              for b, v in sorted(buckets.items()) if v.get("count")]
    if secs:  # the bucket of the graceful stop is partial: leave it out of the chart
        series = [s for s in series if s[0] + bucket_ms / 1000 <= secs + 0.001]
    counters = {name: m["values"].get("count", 0) for name, m in metrics.items()
                if m.get("type") == "counter" and "{" not in name}
    broken = sorted(name for name, m in metrics.items()
                    if any(not t.get("ok", True) for t in m.get("thresholds", {}).values()))
    latency = values("main_latency")
    return {
        "phase": phase, "count": values("main_reqs").get("count", 0), "p50": latency.get("med"),
        "p99": latency.get("p(99)"), "max": latency.get("max"), "series": series, "counters": counters,
        "trends": {name: m["values"] for name, m in metrics.items()
                   if m.get("type") == "trend" and "{" not in name},
        "checks": values("checks"), "broken": broken,
    }


def closed_loop(ctx, phase, script, env, secs):
    """A closed-loop phase: its rate is requests over the phase's duration."""
    result = k6(ctx, phase, script, dict(env, MODE="max", VUS=ctx.mode.concurrency, DURATION_S=secs), secs)
    result["rate"] = result["count"] / secs
    return result


def open_loop(ctx, phase, script, env, rate, secs):
    """An open-loop phase at `rate` requests a second."""
    result = k6(ctx, phase, script, dict(env, MODE="rate", RATE=max(1, int(rate)), DURATION_S=secs,
                                         MAX_VUS=max(50, ctx.mode.open_connections)), secs)
    result["rate"] = result["count"] / secs
    result["offered"] = int(rate)
    return result


def pgbench(ctx, name, script, secs, clients=8, schema="schema.sql", units=None):
    """pgbench of one of loadtest/pgbench/*.sql on the fresh tables `schema` makes; tps,
    latency and units/s. `units`, when given, is the script's units a transaction
    (pgbench's `:units`); otherwise the script reserves a fixed number, named in `name`."""
    sql = os.path.join(ctx.root, "loadtest", "pgbench")
    subprocess.run(["psql", "-h", HOST, "-U", "postgres", "-qX", "-v", "ON_ERROR_STOP=1", "-d", DATABASE,
                    "-f", os.path.join(sql, schema)], check=True, timeout=60, stdout=subprocess.DEVNULL)
    argv = ["pgbench", "-h", HOST, "-U", "postgres", "-n", "-M", "prepared", "-c", str(clients), "-j", "2",
            "-T", str(secs)] + (["-D", f"units={units}"] if units else []) + ["-f", os.path.join(sql, script), DATABASE]
    print(f"run: pgbench {name} ({secs} s)", flush=True)
    code, out, _, err = procs.run(argv, timeout=secs + 120, log=os.path.join(ctx.work, "pgbench.log"))
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    latency = re.search(r"latency average = ([\d.]+) ms", out)
    if code != 0 or not tps:
        ctx.fail(f"pgbench {name} failed: {err.strip()[-300:]}")
        return {"name": name, "tps": 0.0}
    argv[argv.index("-f") + 1] = f"loadtest/pgbench/{script}"
    return {"name": name, "tps": float(tps.group(1)), "latency_ms": float(latency.group(1)) if latency else None,
            "clients": clients, "command": " ".join(argv)}


def redis_get(ctx, value_bytes):
    """redis-benchmark GET of one value the size of a product document."""
    key = "key:__rand_int__"  # the key redis-benchmark reads without -r
    subprocess.run(["redis-cli", "-h", HOST, "SET", key, "x" * value_bytes], check=True, timeout=30,
                   stdout=subprocess.DEVNULL)
    argv = ["redis-benchmark", "-h", HOST, "-p", "6379", "-c", str(ctx.mode.concurrency),
            "-n", str(ctx.mode.redis_requests), "-t", "get", "-d", str(value_bytes), "--csv"]
    print("run: redis-benchmark GET", flush=True)
    try:
        code, out, _, err = procs.run(argv, timeout=600, log=os.path.join(ctx.work, "redis-benchmark.log"))
    finally:
        subprocess.run(["redis-cli", "-h", HOST, "DEL", key], timeout=30, stdout=subprocess.DEVNULL)
    rows = [r for r in csv.DictReader(io.StringIO(out)) if r.get("test") == "GET"]
    if code != 0 or not rows:
        ctx.fail(f"redis-benchmark failed: {err.strip()[-300:]}")
        return {"rate": 0.0}
    row = rows[0]
    return {"rate": float(row["rps"]), "p50": float(row["p50_latency_ms"]), "p99": float(row["p99_latency_ms"]),
            "command": " ".join(argv)}


def product_bytes(catalog):
    with urllib.request.urlopen(f"{catalog}/v1/products/fg-0000", timeout=5) as response:
        return len(response.read())


def loadtool(ctx, name, args, env, timeout):
    """One `flashgate-loadtools` command; its JSON report."""
    argv = [ctx.stack.binary("flashgate-loadtools")] + args
    print(f"run: {name}: flashgate-loadtools {' '.join(args)}", flush=True)
    code, out, _, err = procs.run(argv, timeout=timeout, env=env, log=os.path.join(ctx.work, "loadtools.log"))
    if code != 0:
        ctx.fail(f"{name} failed: {err.strip()[-400:]}")
        return None
    report = json.loads(out.strip().splitlines()[-1])
    report["command"] = "flashgate-loadtools " + " ".join(a.replace(ctx.root + "/", "") for a in args)
    return report
