"""`loadtest/run chaos [--short] [--seed N]`: a sale on the cluster (cluster.py) under
continuous arrivals and polling, recorded as a history of every request, its answer and
its time, while a nemesis injects faults on a seeded random schedule; then the faults stop,
the system settles, and a checker reads the history and the ledger.

Faults (one at a time, some overlapping): kill -9 of a door, a worker or a webhook receiver
(restarted after a while, as a supervisor would); kill -9 of a RabbitMQ node (the one leading
the tickets queue when it can be told) and its restart; a graceful stop and start of a node;
SIGSTOP/SIGCONT of a RabbitMQ node (a hang); kill -9 of the Redis primary (the Sentinels fail
over; it comes back as a replica) or SIGSTOP of it past the Sentinels' patience (split
brain); Redis emptied; PostgreSQL stopped with `-m immediate` and restarted; a partition
between one role and one dependency (partitions.py: worker-1, door-1 or webhook-1 and
PostgreSQL, worker-2 or door-2 and every RabbitMQ node); the emulator's webhooks dropped for
good, or a storm of 5xx, lost answers and webhooks duplicated, reordered and late.

The checker fails the run on: `flashgate verify` violations (I1-I4, charges without an order,
paid orders without a charge); a ticket answered 202/200 that never reaches a final state,
or reaches two; a final state shown and later changed; a customer holding two tickets of the
sale; a unit left unsold while a shopper was refused `sold_out`. It reports FIFO inversions,
5xx and lost answers per fault and the time to heal after each fault. A failing run keeps its
history and logs; the seed reproduces its schedule.
"""

import asyncio
import collections
import datetime
import json
import os
import random
import signal
import subprocess
import sys
import time

import aiohttp

import cluster
from settings import HOST

FINAL = {"paid", "failed", "expired", "sold_out", "refunded"}
SHORT = dict(shoppers=400, stock=150, arrive_secs=40, faults=4, fault_gap=(4, 8), hold=15,
             settle_secs=180)
FULL = dict(shoppers=3000, stock=900, arrive_secs=240, faults=24, fault_gap=(6, 14), hold=20,
            settle_secs=420)


class History:
    """Every request and its answer, appended as JSON lines (kept for a failing run)."""

    def __init__(self, file):
        self.file = open(file, "w")
        self.t0 = time.monotonic()
        self.events = []

    def now(self):
        return round(time.monotonic() - self.t0, 3)

    def add(self, **event):
        event.setdefault("t", self.now())
        self.events.append(event)
        self.file.write(json.dumps(event) + "\n")


class Shopper:
    def __init__(self, i, kind, rng):
        self.customer = f"c{i}"
        self.kind = kind  # card, declined, browser
        self.ticket = None
        self.statuses = []  # (t, status) in the order seen
        self.pay_delay = rng.uniform(0, 30) if kind == "browser" else 0
        self.confirmed = False
        self.refused = None


async def shop(s, sale, http, history, deadline):
    body = {"customer_id": s.customer, "quantity": 1}
    if s.kind == "card":
        body["payment_method"] = "pm_card_visa"
    elif s.kind == "declined":
        body["payment_method"] = "pm_card_chargeDeclined"
    door = cluster.url("balancer-doors")
    # The shopper's own address reaches the doors through the balancer's X-Forwarded-For.
    headers = {"Idempotency-Key": f"{sale}-{s.customer}",
               "X-Forwarded-For": f"10.{hash(s.customer) % 250}.{len(s.customer)}.{int(s.customer[1:]) % 250}"}
    while time.monotonic() < deadline:
        status, answer = await request(http, history, s.customer, "POST",
                                       f"{door}/v1/sales/{sale}/tickets", json=body, headers=headers)
        if status in (200, 202):
            s.ticket = answer["ticket"]
            break
        if status in (409, 410):
            s.refused = answer.get("code") if isinstance(answer, dict) else str(status)
            return
        await asyncio.sleep(retry_after(answer))
    if not s.ticket:
        return
    started_paying = None
    while time.monotonic() < deadline:
        status, answer = await request(http, history, s.customer, "GET", f"{door}/v1/tickets/{s.ticket}")
        if status == 200:
            if not s.statuses or s.statuses[-1][1] != answer["status"]:
                s.statuses.append((history.now(), answer["status"]))
            if answer["status"] in FINAL:
                return
            if s.kind == "browser" and answer.get("payment") and not s.confirmed:
                started_paying = started_paying or time.monotonic()
                if time.monotonic() - started_paying >= s.pay_delay:
                    s.confirmed = await confirm(http, history, s, answer["payment"])
            await asyncio.sleep(min(max(answer.get("poll_after_ms", 500), 200), 2000) / 1000)
        else:
            await asyncio.sleep(0.5)


async def request(http, history, who, method, target, **kwargs):
    """One request, recorded; (status or None for no answer, parsed body)."""
    sent = history.now()
    try:
        async with http.request(method, target, **kwargs) as response:
            text = await response.text()
            try:
                body = json.loads(text)
            except ValueError:
                body = {"raw": text[:200]}
            if isinstance(body, dict):
                body["_retry_after"] = response.headers.get("Retry-After")
            history.add(t=sent, took=round(history.now() - sent, 3), who=who, method=method,
                        path=target.split("/", 3)[-1], status=response.status,
                        answer={k: body.get(k) for k in ("status", "ticket", "position", "code")}
                        if isinstance(body, dict) else None)
            return response.status, body
    except (aiohttp.ClientError, asyncio.TimeoutError) as e:
        history.add(t=sent, took=round(history.now() - sent, 3), who=who, method=method,
                    path=target.split("/", 3)[-1], status=None, error=type(e).__name__)
        return None, {}


def retry_after(answer):
    try:
        seconds = float((answer or {}).get("_retry_after") or 0.5)
    except (TypeError, ValueError):
        seconds = 0.5
    return random.uniform(0.5, 1.5) * min(max(seconds, 0.2), 5)


async def confirm(http, history, s, payment):
    """What Stripe.js does in the shopper's browser."""
    form = {"client_secret": payment["client_secret"], "payment_method": "pm_card_visa"}
    status, _ = await request(http, history, s.customer, "POST",
                              f"{cluster.url('stripe')}/v1/payment_intents/{payment['payment_intent']}/confirm",
                              data=form, headers={"Authorization": "Bearer pk_test_flashgate"})
    return status == 200


# ---- the nemesis ------------------------------------------------------------------------

class Nemesis:
    def __init__(self, rng, binary_dir, history, log):
        self.rng, self.binary_dir, self.history, self.log = rng, binary_dir, history, log
        self.faults = []  # (kind, target, start, end)
        self.pending = []  # heal coroutines

    def record(self, kind, target, start):
        self.faults.append({"kind": kind, "target": target, "start": start, "end": None})
        self.log(f"fault at {start:.1f} s: {kind} {target}")
        return self.faults[-1]

    async def heal_later(self, fault, seconds, heal):
        await asyncio.sleep(seconds)
        await asyncio.to_thread(heal)
        fault["end"] = self.history.now()
        self.log(f"healed at {fault['end']:.1f} s: {fault['kind']} {fault['target']}")

    def kinds(self):
        return ["kill-door", "kill-worker", "kill-webhook", "kill-rabbit", "pause-rabbit",
                "kill-redis-primary", "redis-empty", "postgres-immediate", "webhooks-dropped", "stripe-storm",
                "stop-rabbit", "hang-redis-primary", "partition"]

    def inject(self, kind):
        now = self.history.now()
        r = self.rng
        if kind.startswith("kill-") and kind.split("-")[1] in ("door", "worker", "webhook"):
            count = {"door": 2, "worker": 3, "webhook": 2}[kind.split("-")[1]]
            role = f"{kind.split('-')[1]}-{r.randint(1, count)}"
            pid = cluster.role_pid(role)
            cluster.kill(pid, signal.SIGKILL)
            fault = self.record(kind, role, now)
            return self.heal_later(fault, r.uniform(2, 6),
                                   lambda: cluster.ensure_role(self.binary_dir, role, wait=120))
        if kind == "kill-rabbit":
            node = leader() or r.choice(list(cluster.RABBIT_NODES))
            cluster.kill(cluster.rabbit_pid(node), signal.SIGKILL)
            fault = self.record(kind, node, now)
            return self.heal_later(fault, r.uniform(4, 10), lambda: cluster.rabbit_start(node))
        if kind == "pause-rabbit":
            node = r.choice(list(cluster.RABBIT_NODES))
            pid = cluster.rabbit_pid(node)
            cluster.kill(pid, signal.SIGSTOP)
            fault = self.record(kind, node, now)
            return self.heal_later(fault, r.uniform(3, 8), lambda: cluster.kill(pid, signal.SIGCONT))
        if kind == "stop-rabbit":
            # A graceful stop (the node leaves its queues' quorums in order) and a start.
            node = r.choice(list(cluster.RABBIT_NODES))
            cluster.rabbitmqctl(node, "stop_app", timeout=60, check=False)
            fault = self.record(kind, node, now)
            return self.heal_later(fault, r.uniform(4, 10),
                                   lambda: cluster.rabbitmqctl(node, "start_app", timeout=120, check=False))
        if kind == "hang-redis-primary":
            # Longer than the Sentinels' down-after: they promote the replica while the old
            # primary still holds its clients' connections, then it wakes up (split brain).
            role, _, pid = redis_primary()
            cluster.kill(pid, signal.SIGSTOP)
            fault = self.record(kind, role, now)
            return self.heal_later(fault, r.uniform(3, 8), lambda: cluster.kill(pid, signal.SIGCONT))
        if kind == "partition":
            # One role cut off from one dependency (PostgreSQL or every RabbitMQ node) while
            # the rest of the system still reaches it.
            link = r.choice(sorted(cluster.LINKS))
            cluster.partitions(f"cut {link}")
            fault = self.record(kind, link, now)
            return self.heal_later(fault, r.uniform(3, 10), lambda: cluster.partitions(f"heal {link}"))
        if kind == "kill-redis-primary":
            role, port, pid = redis_primary()
            cluster.kill(pid, signal.SIGKILL)
            fault = self.record(kind, role, now)
            return self.heal_later(fault, r.uniform(6, 12), lambda: restart_redis(role, port))
        if kind == "redis-empty":
            port = cluster.redis_primary() or cluster.REDIS["primary"]
            subprocess.run(["redis-cli", "-h", HOST, "-p", str(port), "FLUSHALL"],
                           stdout=subprocess.DEVNULL, timeout=10)
            fault = self.record(kind, f"primary :{port}", now)
            fault["end"] = now
            return None
        if kind == "postgres-immediate":
            version = sorted(os.listdir("/etc/postgresql"))[-1]
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "stop",
                            "-m", "immediate"], capture_output=True, timeout=60)
            fault = self.record(kind, f"postgresql {version}", now)
            return self.heal_later(fault, r.uniform(2, 6), lambda: subprocess.run(
                ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
                capture_output=True, timeout=120))
        if kind == "webhooks-dropped":
            sim_faults({"webhook_drop": True})
            fault = self.record(kind, "stripe emulator", now)
            return self.heal_later(fault, r.uniform(5, 15), lambda: sim_faults({}))
        if kind == "stripe-storm":
            # 5xx storm, lost answers, webhooks duplicated, reordered and late.
            sim_faults({"server_error_share": 0.4, "drop_response_share": 0.1, "webhook_duplicate": True,
                        "webhook_reorder": True, "webhook_reorder_window_ms": 500, "webhook_delay_ms": 1500})
            fault = self.record(kind, "stripe emulator", now)
            return self.heal_later(fault, r.uniform(5, 15), lambda: sim_faults({}))
        raise ValueError(kind)

    async def run(self, count, gap):
        for _ in range(count):
            await asyncio.sleep(self.rng.uniform(*gap))
            heal = self.inject(self.rng.choice(self.kinds()))
            if heal:
                self.pending.append(asyncio.create_task(heal))
        await asyncio.gather(*self.pending)


def redis_primary():
    """The Redis node the Sentinels name primary now: its role, port and pid."""
    port = cluster.redis_primary() or cluster.REDIS["primary"]
    role = next(n for n, p in cluster.REDIS.items() if p == port)
    return role, port, cluster.read_pid(cluster.path("redis", role, "pid"))


def leader():
    """The RabbitMQ node leading a tickets queue, if rabbitmqctl can tell."""
    try:
        out = cluster.rabbitmqctl("fg1", "list_queues", "name", "leader", "--formatter", "json",
                                  timeout=10, check=False).stdout
        for q in json.loads(out or "[]"):
            if q.get("name", "").endswith("tickets") and q.get("leader"):
                return q["leader"].split("@")[0]
    except (ValueError, subprocess.TimeoutExpired):
        pass
    return None


def restart_redis(role, port):
    """Brings a killed Redis back: it rejoins as a replica of whoever is primary now."""
    primary = cluster.redis_primary()
    lines = cluster.redis_conf(role, port)
    if primary and primary != port:
        lines = [l for l in lines if not l.startswith("replicaof")] + [f"replicaof {HOST} {primary}"]
    conf = cluster.path("redis", role, "redis.conf")
    with open(conf, "w") as f:
        f.write("\n".join(lines) + "\n")
    subprocess.run(["redis-server", conf], check=True, stdout=subprocess.DEVNULL, timeout=30)
    cluster.wait_port(port, f"Redis {role}")


def heal_all(binary_dir):
    """Whatever a fault left down comes back before the check (a supervisor's job, and the
    machine's PostgreSQL must not stay down after a run)."""
    import procs
    if not procs.listening(5432):
        version = sorted(os.listdir("/etc/postgresql"))[-1]
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
                       capture_output=True, timeout=120)
        cluster.wait_port(5432, "PostgreSQL", 120)
    for node, (port, _) in cluster.RABBIT_NODES.items():
        cluster.kill(cluster.rabbit_pid(node), signal.SIGCONT)
        if not procs.listening(port):
            if cluster.alive(cluster.rabbit_pid(node)):
                cluster.rabbitmqctl(node, "start_app", timeout=120, check=False)
            else:
                cluster.rabbit_start(node)
    for role in cluster.REDIS:
        cluster.kill(cluster.read_pid(cluster.path("redis", role, "pid")), signal.SIGCONT)
    for role, port in cluster.REDIS.items():
        if not procs.listening(port):
            restart_redis(role, port)
    sim_faults({})
    if procs.listening(cluster.PARTITIONS_PORT):
        cluster.partitions("heal all")
    for role in cluster.ROLES:
        cluster.ensure_role(binary_dir, role, wait=120)


def sim_faults(settings):
    import urllib.request
    request = urllib.request.Request(f"{cluster.url('stripe')}/_sim/faults", method="POST",
                                     data=json.dumps(settings).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(request, timeout=5).read()
    except OSError:
        pass


# ---- the run ----------------------------------------------------------------------------

async def create_sale(http, sale, mode):
    token = cluster.secrets().admin_token
    auth = {"Authorization": f"Bearer {token}"}
    product = {"name": "Chaos sneaker", "category": "sneakers", "price": 9900, "currency": "eur"}
    async with http.put(f"{cluster.url('catalog')}/admin/v1/products/chaos-sneaker", json=product,
                        headers=auth) as r:
        r.raise_for_status()
    body = {"sku": "chaos-sneaker", "stock": mode["stock"], "price": 9900, "currency": "eur",
            "hold_seconds": mode["hold"], "rate_per_second": 200, "burst": 100}
    async with http.put(f"{cluster.url('balancer-doors')}/admin/v1/sales/{sale}", json=body,
                        headers=auth) as r:
        r.raise_for_status()


async def drive(mode, seed, binary_dir, work, log):
    rng = random.Random(seed)
    history = History(os.path.join(work, "history.jsonl"))
    sale = f"chaos-{seed}-{int(time.time())}"
    connector = aiohttp.TCPConnector(limit=256)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        await create_sale(http, sale, mode)
        shoppers = [Shopper(i, rng.choices(["card", "declined", "browser"], [8, 1, 1])[0], rng)
                    for i in range(mode["shoppers"])]
        deadline = time.monotonic() + mode["arrive_secs"] + mode["settle_secs"]
        nemesis = Nemesis(rng, binary_dir, history, log)

        async def arrive(s, at):
            await asyncio.sleep(at)
            await shop(s, sale, http, history, deadline)

        spacing = mode["arrive_secs"] / len(shoppers)
        tasks = [asyncio.create_task(arrive(s, i * spacing)) for i, s in enumerate(shoppers)]
        await nemesis.run(mode["faults"], mode["fault_gap"])
        log(f"faults over at {history.now():.1f} s; settling")
        await asyncio.gather(*tasks)
    history.file.close()
    return sale, shoppers, nemesis.faults, history


def check(sale, shoppers, faults, history, binary_dir):
    """(failures, figures) of one run."""
    failures, figures = [], {}
    out = subprocess.run([os.path.join(binary_dir, "flashgate"), "verify", sale, "--stripe-sim",
                          cluster.url("stripe")], env=cluster.env(binary_dir), capture_output=True,
                         text=True, timeout=300)
    try:
        verdict = json.loads(out.stdout)
    except ValueError:
        verdict = {"violations": [f"verify did not answer: {out.stderr.strip()[-300:]}"]}
    failures += [f"verify: {v}" for v in verdict.get("violations", [])]
    figures["verify"] = {k: v for k, v in verdict.items() if k != "violations"}
    tickets = [s for s in shoppers if s.ticket]
    by_status = collections.Counter(s.statuses[-1][1] if s.statuses else "none" for s in tickets)
    figures["final"] = dict(by_status)
    figures["shoppers"] = len(shoppers)
    figures["tickets"] = len(tickets)
    figures["refused"] = dict(collections.Counter(s.refused for s in shoppers if s.refused))
    not_final = [s.customer for s in tickets if not s.statuses or s.statuses[-1][1] not in FINAL]
    if not_final:
        failures.append(f"{len(not_final)} ticket(s) answered 202/200 never reached a final state "
                        f"(e.g. {not_final[:5]})")
    changed = [s.customer for s in tickets
               if len([st for _, st in s.statuses if st in FINAL]) > 1]
    if changed:
        failures.append(f"{len(changed)} shopper(s) shown a final state that later changed "
                        f"(e.g. {changed[:5]})")
    seen = collections.defaultdict(set)
    for e in history.events:
        if (e.get("method") == "POST" and e.get("path", "").endswith("/tickets")
                and e.get("status") in (200, 202) and e.get("answer")):
            seen[e["who"]].add(e["answer"].get("ticket"))
    doubled = [who for who, ids in seen.items() if len(ids) > 1]
    if doubled:
        failures.append(f"{len(doubled)} customer(s) hold two tickets of the sale (e.g. {doubled[:5]})")
    left = verdict.get("available")
    sold_out = sum(1 for s in tickets if s.statuses and s.statuses[-1][1] == "sold_out")
    sold_out += figures["refused"].get("sold_out", 0)
    if left and sold_out:
        failures.append(f"{left} unit(s) left unsold while {sold_out} shopper(s) were told sold_out")
    figures["faults"] = fault_figures(faults, history)
    def door(e):
        return not e.get("path", "").startswith("v1/payment_intents")
    figures["5xx"] = sum(1 for e in history.events if (e.get("status") or 0) >= 500 and door(e))
    figures["stripe_5xx"] = sum(1 for e in history.events if (e.get("status") or 0) >= 500 and not door(e))
    figures["no_answer"] = sum(1 for e in history.events if e.get("status") is None)
    figures["fifo_inversions"] = inversions(tickets)
    return failures, figures


def fault_figures(faults, history):
    """Per fault: answers lost (no answer or 5xx) from its start to a second after it
    ended, and the time to heal: from its start to the first 2xx after the last answer
    lost: any answer below 500 (0 when none was lost)."""
    rows = []
    for f in faults:
        end = f["end"] if f["end"] is not None else f["start"]
        during = [e for e in history.events if f["start"] <= e["t"] <= end + 1]
        bad = [e["t"] for e in during if e.get("status") is None or e["status"] >= 500]
        heal = 0.0
        if bad:
            good = [e["t"] for e in history.events
                    if e["t"] > max(bad) and e.get("status") is not None and e["status"] < 500]
            heal = round(min(good) - f["start"], 2) if good else None
        rows.append(dict(f, lost=len(bad), heal_s=heal))
    return rows


def inversions(tickets):
    """Pairs of shoppers where the later ticket was decided (left queued) first: counted on
    the order tickets were issued versus the order they first showed a decided status."""
    order = sorted((s for s in tickets if s.statuses), key=lambda s: s.statuses[0][0])
    decided = [next((t for t, st in s.statuses if st not in ("queued", "waitlisted")), None) for s in order]
    count, latest = 0, -1
    for t in decided:
        if t is None:
            continue
        if t < latest - 1:  # one poll interval of slack: polls, not the server, set the times
            count += 1
        latest = max(latest, t)
    return count


def write_report(root, short, seed, sale, failures, figures, work, profile):
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    folder = os.path.join(root, "loadtest", "results", "short" if short else "")
    os.makedirs(folder, exist_ok=True)
    file = os.path.join(folder, f"chaos-{stamp}.md")
    lines = [f"# Chaos run {stamp}", "",
             f"Command: `loadtest/run chaos{' --short' if short else ''} --seed {seed} --profile {profile}` "
             f"(sale `{sale}`)",
             f"Verdict: {'FAIL' if failures else 'PASS'}", ""]
    lines += [f"- FAIL: {f}" for f in failures]
    lines += ["", "| figure | value |", "|---|---|"]
    for key in ("shoppers", "tickets", "final", "refused", "5xx", "stripe_5xx", "no_answer", "fifo_inversions"):
        lines.append(f"| {key} | {figures.get(key)} |")
    lines += ["", "| fault | target | start s | end s | answers lost | time to heal s |",
              "|---|---|---|---|---|---|"]
    for f in figures["faults"]:
        lines.append(f"| {f['kind']} | {f['target']} | {f['start']} | {f['end']} | {f['lost']} | "
                     f"{f['heal_s']} |")
    lines += ["", f"History and logs: {work}"]
    with open(file, "w") as f:
        f.write("\n".join(lines) + "\n")
    return file, "\n".join(lines)


def main(args, binary_dir, root):
    mode = SHORT if args.short else FULL
    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target"))
    work = os.path.join(target, "loadtest", f"chaos-{stamp}-seed{seed}")
    os.makedirs(work, exist_ok=True)
    log_file = open(os.path.join(work, "nemesis.log"), "w")

    def log(message):
        print(f"chaos: {message}", flush=True)
        log_file.write(message + "\n")
        log_file.flush()

    log(f"seed {seed} ({'short' if args.short else 'full'}); history in {work}")
    cluster.up(binary_dir)
    try:
        sale, shoppers, faults, history = asyncio.run(drive(mode, seed, binary_dir, work, log))
    finally:
        heal_all(binary_dir)
    failures, figures = check(sale, shoppers, faults, history, binary_dir)
    profile = os.path.basename(os.path.normpath(binary_dir))
    file, text = write_report(root, args.short, seed, sale, failures, figures, work, profile)
    print("\n" + text)
    if failures:
        import shutil
        shutil.copytree(cluster.path("logs"), os.path.join(work, "logs"), dirs_exist_ok=True)
        print(f"chaos: FAIL (seed {seed}); history and logs kept in {work}", file=sys.stderr)
        return 1
    print(f"chaos: PASS (seed {seed}); report {os.path.relpath(file, root)}")
    return 0
