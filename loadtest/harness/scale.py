"""`loadtest/run cluster scale [--short]`: what adding processes gives, on the cluster.

Doors: for 1, 2 and 3 door processes, one closed-loop `http-bench` per door (so the
balancer's CPU is not in the figure) takes tickets of one sale for a fixed time; the table
shows tickets/s and the doors' CPU per 1,000 tickets. Workers: the tickets taken queue up
with every worker stopped; then 1, 2 or 3 workers are started and the drain (until the
ledger has decided every ticket the doors issued) is timed, with the workers' CPU per
1,000 reservations. On two cores the sums cannot grow; CPU per ticket staying flat as
processes are added is what says a second machine would add its capacity.

The replication cost: the same worker drain on the single standard RabbitMQ node is not
measured here (see the note in the report).
"""

import json
import os
import subprocess
import time
import urllib.request

import cluster
import procs
from settings import HOST

def door_port(i):
    return cluster.PORTS[f"door-{i}"]


def admin(method, path, body=None):
    request = urllib.request.Request(f"{cluster.url('door-1')}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {cluster.secrets().admin_token}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def decided(sale):
    out = subprocess.run(["psql", "-h", HOST, "-U", "postgres", "-d", cluster.DATABASE, "-qtAc",
                          f"SELECT decided FROM sales WHERE id = '{sale}'"],
                         capture_output=True, text=True, timeout=30).stdout.strip()
    return int(out or 0)


def stop(role):
    pid = cluster.role_pid(role)
    if pid and cluster.alive(pid):
        cluster.kill(pid, 15)
        deadline = time.time() + 20
        while cluster.alive(pid) and time.time() < deadline:
            time.sleep(0.1)


def start_door(binary_dir, i):
    cluster.ensure_role(binary_dir, f"door-{i}")


def doors(binary_dir, count, secs, sale, tag):
    """Tickets/s and door CPU with `count` doors, one bench per door."""
    pids = {i: cluster.role_pid(f"door-{i}") for i in range(1, count + 1)}
    before = {i: procs.cpu_seconds(p) for i, p in pids.items()}
    loadtools = os.path.join(binary_dir, "flashgate-loadtools")
    benches = []
    for i in range(1, count + 1):
        body = f'{{"customer_id":"{tag}-{i}-{{n}}","quantity":1}}'
        benches.append(subprocess.Popen([loadtools, "http-bench", "--addr", f"{HOST}:{door_port(i)}",
                                         "--secs", str(secs), "--connections", "50",
                                         "--path", f"/v1/sales/{sale}/tickets", "--body", body],
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
    tickets = 0
    for bench in benches:
        out, _ = bench.communicate(timeout=secs + 120)
        report = json.loads(out.strip().splitlines()[-1])
        tickets += report["statuses"].get("202", 0) + report["statuses"].get("200", 0)
    cpu = sum(procs.cpu_seconds(p) - before[i] for i, p in pids.items())
    return {"processes": count, "tickets": tickets, "per_sec": round(tickets / secs),
            "cpu_ms_per_1000": round(cpu * 1e6 / max(tickets, 1), 1)}


def drain(binary_dir, count, sale, target):
    """Starts `count` workers on a full queue; times the drain to `target` decided."""
    start = decided(sale)
    began = time.monotonic()
    for i in range(1, count + 1):
        cluster.ensure_role(binary_dir, f"worker-{i}")
    pids = [cluster.role_pid(f"worker-{i}") for i in range(1, count + 1)]
    before = {p: procs.cpu_seconds(p) for p in pids}
    deadline = time.monotonic() + 600
    while decided(sale) < target and time.monotonic() < deadline:
        time.sleep(0.2)
    took = time.monotonic() - began
    done = decided(sale) - start
    cpu = sum(procs.cpu_seconds(p) - before[p] for p in pids)
    return {"processes": count, "reservations": done, "per_sec": round(done / max(took, 1e-9)),
            "cpu_ms_per_1000": round(cpu * 1e6 / max(done, 1), 1)}


def run(binary_dir, short):
    secs = 3 if short else 10
    cluster.up(binary_dir)
    door_rows, worker_rows = [], []
    for count in (1, 2, 3):
        sale = f"scale-{count}-{int(time.time())}"
        admin("PUT", f"/admin/v1/sales/{sale}", {"sku": "scale", "stock": 10_000_000, "price": 100,
                                                  "currency": "eur", "rate_per_second": 1_000_000,
                                                  "burst": 1_000_000})
        for i in range(1, 4):
            stop(f"worker-{i}")
        for i in range(1, 4):
            if i <= count:
                start_door(binary_dir, i)
            else:
                stop(f"door-{i}")
        door_rows.append(doors(binary_dir, count, secs, sale, f"s{count}"))
        issued = door_rows[-1]["tickets"]
        worker_rows.append(drain(binary_dir, count, sale, decided(sale) + issued))
    stop("door-3")
    for role in cluster.ROLES:
        cluster.ensure_role(binary_dir, role)
    return door_rows, worker_rows


def table(door_rows, worker_rows):
    lines = ["| processes | tickets/s (doors) | door CPU ms / 1,000 tickets | reservations/s (workers) "
             "| worker CPU ms / 1,000 reservations |", "|---|---|---|---|---|"]
    for d, w in zip(door_rows, worker_rows):
        lines.append(f"| {d['processes']} | {d['per_sec']:,} | {d['cpu_ms_per_1000']} | {w['per_sec']:,} | "
                     f"{w['cpu_ms_per_1000']} |")
    return "\n".join(lines)


def main(binary_dir, short):
    door_rows, worker_rows = run(binary_dir, short)
    text = table(door_rows, worker_rows)
    print(text)
    print(json.dumps({"doors": door_rows, "workers": worker_rows}))
    return 0
