"""`loadtest/run cluster scale [--short]`: what adding processes gives, on the cluster.

Doors: for 1, 2 and 3 door processes, one `http-bench` per door (so the balancer's CPU
is not in the figure) takes tickets of one sale for a fixed time, first flat out (closed
loop: tickets/s and the doors' CPU per 1,000 tickets), then at one fixed total rate split
evenly over the doors (open loop at `FIXED_SHARE` of what one door took flat out): flat
out, more doors on two cores compete for the same cores and pack fewer tickets per
publish, so only the fixed rate compares like with like. Workers: the tickets taken queue up
with every worker stopped; then 1, 2 or 3 workers are started and the drain (until the
ledger has decided every ticket the doors issued) is timed, with the workers' CPU per
1,000 reservations. On two cores the sums cannot grow; CPU per ticket staying flat as
processes are added is what says a second machine would add its capacity.

The replication cost: one door and one worker, the same measurement with the broker the
cluster's three nodes (quorum queues with three members) and then the machine's standard
single RabbitMQ node (quorum queues with one member, queues under their own prefix).

Every measurement starts on an empty order book (the previous rows' tickets and orders
deleted, their parked payment tasks purged): a worker's maintenance sweeps re-ask every
order left `reserved` for a minute, so without the reset each row's CPU counted the
backlog of every row before it, and rose in the order the rows ran. Each configuration is
measured `REPEATS` times in rotation (1, 2, 3, 1, 2, 3, ...) and the table shows the
median, with the spread beside it.

A process costs CPU for being there, whatever it serves: a door's timers and readiness
probes while idle, a worker's start-up (pools, topology, Sentinel). Those grow with the
number of processes and not with the tickets, so the table also shows CPU per ticket
without them: each door's idle rate is measured for `IDLE_SECS` before its bench and
taken off, and the workers' start-up CPU is measured on an empty queue (started until
ready, then stopped) and taken off the drain's.
"""

import json
import os
import statistics
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


def sql(statement):
    return subprocess.run(["psql", "-h", HOST, "-U", "postgres", "-d", cluster.DATABASE, "-qtAc", statement],
                          capture_output=True, text=True, timeout=120, check=True).stdout.strip()


def decided(sale):
    return int(sql(f"SELECT decided FROM sales WHERE id = '{sale}'") or 0)


def empty_order_book(overrides):
    """With every worker stopped: no order or payment task of an earlier row is left."""
    sql("TRUNCATE order_events, stripe_events, orders, tickets")
    prefix = overrides.get("FLASHGATE_AMQP__PREFIX", "")
    queue = f"{prefix}checkout.payments"
    if "FLASHGATE_AMQP__PREFIX" in overrides:  # the machine's single node
        subprocess.run(["rabbitmqctl", "-q", "purge_queue", queue], capture_output=True, timeout=60)
    else:
        cluster.rabbitmqctl("fg1", "purge_queue", queue, check=False)


def stop(role):
    pid = cluster.role_pid(role)
    if pid and cluster.alive(pid):
        cluster.kill(pid, 15)
        deadline = time.time() + 20
        while cluster.alive(pid) and time.time() < deadline:
            time.sleep(0.1)
        cluster.kill(pid, 9)  # a worker draining a long queue would outlast the measurement
        while cluster.alive(pid):
            time.sleep(0.05)


def start_door(binary_dir, i):
    cluster.ensure_role(binary_dir, f"door-{i}")


IDLE_SECS = 2


# The fixed total rate of the second door phase, as a share of what one door took flat
# out in the run's first rows: below one door's capacity, so every row serves the same
# load and its CPU per ticket compares.
FIXED_SHARE = 0.4
FIXED_RATE = None  # tickets/s, set by run()


def benches(binary_dir, count, secs, sale, tag, rate=None):
    """One `http-bench` per door, together; the tickets they were given."""
    loadtools = os.path.join(binary_dir, "flashgate-loadtools")
    running = []
    for i in range(1, count + 1):
        body = f'{{"customer_id":"{tag}-{i}-{{n}}","quantity":1}}'
        argv = [loadtools, "http-bench", "--addr", f"{HOST}:{door_port(i)}", "--secs", str(secs),
                "--connections", "50", "--path", f"/v1/sales/{sale}/tickets", "--body", body]
        if rate:
            argv += ["--rate", str(rate / count)]
        running.append(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
    tickets = 0
    for bench in running:
        out, _ = bench.communicate(timeout=secs + 120)
        report = json.loads(out.strip().splitlines()[-1])
        tickets += report["statuses"].get("202", 0) + report["statuses"].get("200", 0)
    return tickets


def doors(binary_dir, count, secs, sale, tag):
    """Tickets/s and door CPU with `count` doors, one bench per door: flat out (closed
    loop), then at FIXED_RATE tickets/s in all (open loop, split evenly; set from the
    first row, which has one door)."""
    pids = {i: cluster.role_pid(f"door-{i}") for i in range(1, count + 1)}

    def cpu():
        return sum(procs.cpu_seconds(p) for p in pids.values())

    idle_from = cpu()
    time.sleep(IDLE_SECS)  # the measurement window of the doors' idle CPU
    before = cpu()
    idle_per_sec = (before - idle_from) / IDLE_SECS
    publishes = published(count)
    tickets = benches(binary_dir, count, secs, sale, tag)
    flat_out = cpu() - before
    flat_publishes = published(count)
    global FIXED_RATE
    if FIXED_RATE is None:  # the run's first row: one door
        FIXED_RATE = max(100, int(round(tickets / secs * FIXED_SHARE, -2)))
    before = cpu()
    fixed = benches(binary_dir, count, secs, sale, f"{tag}-r", FIXED_RATE)
    at_rate = cpu() - before
    rate_publishes = published(count)
    return {"processes": count, "tickets": tickets + fixed, "per_sec": round(tickets / secs),
            "cpu_ms_per_1000": round(flat_out * 1e6 / max(tickets, 1), 1),
            "net_ms_per_1000": round(max(flat_out - idle_per_sec * secs, 0) * 1e6 / max(tickets, 1), 1),
            "rate_ms_per_1000": round(at_rate * 1e6 / max(fixed, 1), 1),
            "rate_net_ms_per_1000": round(max(at_rate - idle_per_sec * secs, 0) * 1e6 / max(fixed, 1), 1),
            "per_publish": per_publish(publishes, flat_publishes),
            "rate_per_publish": per_publish(flat_publishes, rate_publishes),
            "fixed_ms": round(idle_per_sec / count * 1000, 1)}


def startup_cpu(binary_dir, count):
    """CPU seconds `count` workers spend starting, on an empty queue, until ready; and
    their CPU seconds per second once idle (maintenance sweeps, probes)."""
    for i in range(1, count + 1):
        cluster.ensure_role(binary_dir, f"worker-{i}")

    def cpu():
        return sum(procs.cpu_seconds(cluster.role_pid(f"worker-{i}")) for i in range(1, count + 1))

    started = cpu()
    time.sleep(IDLE_SECS)
    idle = (cpu() - started) / IDLE_SECS
    for i in range(1, count + 1):
        stop(f"worker-{i}")
    return started, idle


def sums(role, *metrics):
    """The values of `metrics` (unlabelled sums and counts) in `role`'s /metrics; zeros
    when it does not answer."""
    found = dict.fromkeys(metrics, 0.0)
    try:
        with urllib.request.urlopen(f"{cluster.url(role)}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return found
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in found:
            found[name] = float(value)
    return found


PUBLISHES = ("flashgate_admission_publish_batch_tickets_sum", "flashgate_admission_publish_batch_tickets_count")


def published(count):
    """(tickets, publishes) of doors 1..`count` so far."""
    totals = [sums(f"door-{i}", *PUBLISHES) for i in range(1, count + 1)]
    return tuple(sum(t[m] for t in totals) for m in PUBLISHES)


def per_publish(before, after):
    return round((after[0] - before[0]) / max(after[1] - before[1], 1), 1)


RETRIES = 'flashgate_worker_transient_retries_total{queue="tickets"}'
BATCHES = ("flashgate_reserve_batch_tickets_sum", "flashgate_reserve_batch_tickets_count", "flashgate_reserve_batch_seconds_sum")


def batch_totals(roles):
    """(tickets, batches, seconds deciding, the busiest worker's tickets) the workers
    `roles` report in /metrics."""
    each = [sums(role, *BATCHES) for role in roles]
    tickets, batches, seconds = (sum(w[m] for w in each) for m in BATCHES)
    return tickets, batches, seconds, max(w[BATCHES[0]] for w in each)


def drain(binary_dir, count, sale, target, startup, idle):
    """Starts `count` workers on a full queue; times the drain to `target` decided.
    `startup` is their start-up CPU and `idle` their CPU per second idle, measured apart."""
    start = decided(sale)
    began = time.monotonic()
    # All at once: started one after another, the first would prefetch most of the queue
    # (6,000 messages of 8 tickets) before the next was up, and do the drain alone.
    for i in range(1, count + 1):
        cluster.start_role(binary_dir, f"worker-{i}")
    for i in range(1, count + 1):
        cluster.ensure_role(binary_dir, f"worker-{i}")
    # Fresh processes (measure() stopped them): all their CPU is this drain's, counted
    # from their start, since each begins consuming the full queue before it is ready.
    pids = [cluster.role_pid(f"worker-{i}") for i in range(1, count + 1)]
    deadline = time.monotonic() + 600
    while decided(sale) < target and time.monotonic() < deadline:
        time.sleep(0.2)
    took = time.monotonic() - began
    done = decided(sale) - start
    splits = [procs.cpu_split(p) for p in pids]
    cpu, kernel = sum(u + s for u, s in splits), sum(s for _, s in splits)
    switches = [procs.context_switches(p) for p in pids]
    voluntary, involuntary = sum(v for v, _ in switches), sum(i for _, i in switches)
    threads = {}
    for pid in pids:
        for name, seconds in procs.thread_cpu(pid).items():
            threads[name] = threads.get(name, 0.0) + seconds
    tickets, batches, deciding, busiest = batch_totals([f"worker-{i}" for i in range(1, count + 1)])
    retries = sum(sums(f"worker-{i}", RETRIES)[RETRIES] for i in range(1, count + 1))
    return {"processes": count, "reservations": done, "per_sec": round(done / max(took, 1e-9)),
            "cpu_ms_per_1000": round(cpu * 1e6 / max(done, 1), 1),
            "net_ms_per_1000": round(max(cpu - startup - idle * took, 0) * 1e6 / max(done, 1), 1),
            "kernel_ms_per_1000": round(kernel * 1e6 / max(done, 1), 1),
            "fixed_ms": round(startup / count * 1000, 1),
            "idle_ms": round(idle / count * 1000, 1),
            "per_batch": round(tickets / max(batches, 1)),
            "ms_per_batch": round(deciding * 1000 / max(batches, 1), 1),
            "busiest_share": round(100 * busiest / max(tickets, 1)),
            # Work done again: tickets that went through a batch more than once (a batch
            # requeued and redelivered) and batches retried in place (deadlocks,
            # serialization failures, lost connections).
            "batched_per_reservation": round(tickets / max(done, 1), 3),
            "retries": int(retries),
            "preempted_per_1000": round(involuntary * 1000 / max(done, 1), 1),
            "wakeups_per_1000": round(voluntary * 1000 / max(done, 1), 1),
            "threads_ms_per_1000": {name: round(seconds * 1e6 / max(done, 1), 1)
                                    for name, seconds in sorted(threads.items(), key=lambda t: -t[1])}}


# All the load comes from 127.0.0.1: the per-address limit would meter the driver itself.
# The workers' payments are parked as in the reserve bench (Stripe at a closed port, one
# payment at a time): otherwise each row's CPU counts however many PaymentIntents its
# drain happened to overlap, and the emulator's backlog had every order asked again.
UNMETERED = {"FLASHGATE_ADMISSION__PER_ADDRESS__PER_SECOND": "0", "FLASHGATE_ADMISSION__PER_ADDRESS__BURST": "0",
             "FLASHGATE_STRIPE__BASE_URL": "http://127.0.0.1:9/", "FLASHGATE_WORKER__PAYMENT_CONCURRENCY": "1",
             "FLASHGATE_WORKER__PAYMENT_PREFETCH": "1"}
SINGLE_NODE = {**UNMETERED, "FLASHGATE_AMQP__URLS": "[]", "FLASHGATE_AMQP__URL": "amqp://guest:guest@127.0.0.1:5672/%2f",
               "FLASHGATE_AMQP__PREFIX": "scale-single."}


REPEATS = 3


def restart_all(binary_dir):
    for role in cluster.ROLES + ("door-3",):
        stop(role)
    for role in cluster.ROLES:
        cluster.ensure_role(binary_dir, role)


def median_row(rows):
    """The median run of one configuration (by throughput), with the spread of every
    CPU figure."""
    ranked = sorted(rows, key=lambda r: r["per_sec"])
    row = dict(ranked[len(ranked) // 2])
    row["per_sec_range"] = (ranked[0]["per_sec"], ranked[-1]["per_sec"])
    for key in ("cpu_ms_per_1000", "net_ms_per_1000", "rate_ms_per_1000", "rate_net_ms_per_1000"):
        if key in rows[0]:
            values = [r[key] for r in rows]
            row[key] = statistics.median(values)
            row[key.replace("ms_per_1000", "range")] = (min(values), max(values))
    for key in ("fixed_ms", "idle_ms", "per_publish", "rate_per_publish", "per_batch", "ms_per_batch",
                "busiest_share", "preempted_per_1000", "wakeups_per_1000", "batched_per_reservation", "retries",
                "kernel_ms_per_1000"):
        if key in rows[0]:
            row[key] = statistics.median(r[key] for r in rows)
    row["runs"] = len(rows)
    return row


def run(binary_dir, short):
    secs = 3 if short else 6
    repeats = 1 if short else REPEATS
    cluster.ROUTE_THROUGH_LINKS = False
    cluster.up(binary_dir)
    brokers = []
    for name, overrides in (("3-node cluster", UNMETERED), ("single node", SINGLE_NODE)):
        cluster.OVERRIDES = overrides
        restart_all(binary_dir)
        runs = [measure(binary_dir, 1, secs, f"repl{len(brokers)}r{r}") for r in range(repeats)]
        brokers.append((name, median_row([d for d, _ in runs]), median_row([w for _, w in runs])))
    cluster.OVERRIDES = UNMETERED
    restart_all(binary_dir)
    runs = {count: [] for count in (1, 2, 3)}
    for r in range(repeats):
        for count in runs:
            runs[count].append(measure(binary_dir, count, secs, f"s{count}r{r}"))
    door_rows = [median_row([d for d, _ in runs[count]]) for count in runs]
    worker_rows = [median_row([w for _, w in runs[count]]) for count in runs]
    cluster.OVERRIDES = {}
    restart_all(binary_dir)
    return door_rows, worker_rows, brokers


def measure(binary_dir, count, secs, tag):
    """One sale: tickets with `count` doors, then the drain with `count` workers."""
    sale = f"scale-{tag}-{int(time.time())}"
    product = {"name": "Scale sneaker", "category": "sneakers", "price": 100, "currency": "eur"}
    request = urllib.request.Request(f"{cluster.url('catalog')}/admin/v1/products/scale", method="PUT",
                                     data=json.dumps(product).encode(),
                                     headers={"Authorization": f"Bearer {cluster.secrets().admin_token}",
                                              "Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=30).read()
    admin("PUT", f"/admin/v1/sales/{sale}", {"sku": "scale", "stock": 10_000_000, "price": 100,
                                              "currency": "eur", "rate_per_second": 1_000_000,
                                              "burst": 1_000_000})
    for i in range(1, 4):
        stop(f"worker-{i}")
    empty_order_book(cluster.OVERRIDES)
    startup, idle = startup_cpu(binary_dir, count)
    for i in range(1, 4):
        if i <= count:
            start_door(binary_dir, i)
        else:
            stop(f"door-{i}")
    d = doors(binary_dir, count, secs, sale, tag)
    return d, drain(binary_dir, count, sale, decided(sale) + d["tickets"], startup, idle)


def spread(row, key, unit=""):
    low, high = row[key]
    return f"{low:,}{unit}–{high:,}{unit}" if row["runs"] > 1 else "one run"


def figure(row, key):
    """A median with its spread."""
    return f"{row[key]:,} ({spread(row, key.replace('ms_per_1000', 'range').replace('per_sec', 'per_sec_range'))})"


def doors_header():
    return ("| tickets/s flat out | door CPU ms / 1,000 tickets | without idle | tickets per publish "
            f"| at {FIXED_RATE:,} tickets/s: door CPU ms / 1,000 tickets | without idle | tickets per publish "
            "| idle ms/s per door |")


WORKERS = ("| reservations/s | worker CPU ms / 1,000 reservations | without start-up and idle "
           "| start-up ms per worker | idle ms/s per worker | tickets per batch | ms per batch decided "
           "| decided by the busiest worker | voluntary / involuntary context switches per 1,000 reservations |")


def door_cells(d):
    return (f"{figure(d, 'per_sec')} | {figure(d, 'cpu_ms_per_1000')} | {figure(d, 'net_ms_per_1000')} | "
            f"{d['per_publish']} | {figure(d, 'rate_ms_per_1000')} | {figure(d, 'rate_net_ms_per_1000')} | "
            f"{d['rate_per_publish']} | {d['fixed_ms']} |")


def worker_cells(w):
    return (f"{figure(w, 'per_sec')} | {figure(w, 'cpu_ms_per_1000')} | {figure(w, 'net_ms_per_1000')} | "
            f"{w['fixed_ms']} | {w['idle_ms']} | {w['per_batch']:,} | {w['ms_per_batch']} | {w['busiest_share']}% | "
            f"{w['wakeups_per_1000']} / {w['preempted_per_1000']} |")


def table(door_rows, worker_rows, brokers):
    runs = door_rows[0]["runs"]
    lines = [f"Median of {runs} run{'s' if runs > 1 else ''} per row (lowest–highest in brackets).", "",
             f"| doors {doors_header()}", "|---" * 9 + "|"]
    lines += [f"| {d['processes']} | {door_cells(d)}" for d in door_rows]
    lines += ["", f"| workers {WORKERS}", "|---" * 10 + "|"]
    lines += [f"| {w['processes']} | {worker_cells(w)}" for w in worker_rows]
    lines += ["", "Worker CPU by thread, ms / 1,000 reservations (the median run): "
              + "; ".join(f"{w['processes']}: " + ", ".join(f"{name} {ms}" for name, ms in
                                                             list(w["threads_ms_per_1000"].items())[:4])
                          for w in worker_rows)]
    lines += ["", "Worker CPU in the kernel (system time, start-up included), ms / 1,000 reservations (median of "
              "the runs): " + "; ".join(f"{w['processes']}: {w.get('kernel_ms_per_1000', '–')}" for w in worker_rows)]
    lines += ["", "Work done again (the median run): tickets through a batch ÷ reservations decided, and batches "
              "retried in place: " + "; ".join(f"{w['processes']}: {w.get('batched_per_reservation', '–')}, "
                                                f"{w.get('retries', '–')}" for w in worker_rows)]
    lines += ["", f"| broker (1 door) {doors_header()}", "|---" * 9 + "|"]
    lines += [f"| {name} | {door_cells(d)}" for name, d, _ in brokers]
    lines += ["", f"| broker (1 worker) {WORKERS}", "|---" * 10 + "|"]
    lines += [f"| {name} | {worker_cells(w)}" for name, _, w in brokers]
    return "\n".join(lines)


def main(binary_dir, short):
    import datetime
    # A cluster the run brought up goes down with it: left up, its processes hold most of
    # PostgreSQL's connections, and the next load run on the standard services fails.
    was_up = os.path.isdir(cluster.CLUSTER_DIR)
    try:
        door_rows, worker_rows, brokers = run(binary_dir, short)
    finally:
        if not was_up:
            cluster.down()
    text = table(door_rows, worker_rows, brokers)
    print(text)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    folder = os.path.join(root, "loadtest", "results", "short" if short else "")
    os.makedirs(folder, exist_ok=True)
    profile = os.path.basename(os.path.normpath(binary_dir))
    with open(os.path.join(folder, f"scale-{stamp}.md"), "w") as f:
        f.write(f"# Scale-out on the cluster {stamp}\n\nCommand: `loadtest/run cluster scale"
                f"{' --short' if short else ''} --profile {profile}`\n\n{text}\n")
    print(json.dumps({"doors": door_rows, "workers": worker_rows, "brokers": brokers}))
    return 0
