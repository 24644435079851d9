"""The scenarios. Each measures what its issue asks, records its goals, and names the
flashgate sales whose invariants are checked at the end of the run. Limits (the
services' own /healthz, pgbench, redis-benchmark) are measured once per run and shared."""

import concurrent.futures
import itertools
import json
import os
import time
import urllib.error
import urllib.request

import invariants
import measure
import promtext
from settings import DATABASE_URL, PACKED_PER_MESSAGE, PORTS, HOST, url


def admin_put(ctx, address, body):
    request = urllib.request.Request(address, data=json.dumps(body).encode(), method="PUT", headers={
        "content-type": "application/json", "authorization": f"Bearer {ctx.secrets.admin_token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def ensure_door_sale(ctx):
    """The door's sale: a few units held (no card, so the holds last) and a wait-list
    with no practical cap, so every arrival past the stock still gets its ticket,
    wait-listed."""
    if "door" in ctx.sales:
        return
    admin_put(ctx, f"{url('catalog')}/admin/v1/products/lt-door",
              {"name": "Door drop", "price": 4900, "currency": "eur"})
    admin_put(ctx, f"{url('admission')}/admin/v1/sales/door", {
        "sku": "lt-door", "stock": ctx.mode.door_stock, "price": 4900, "currency": "eur", "hold_seconds": 600,
        "rate_per_second": 1000000, "burst": 1000000, "waitlist": True, "waitlist_limit": 100000000})
    ctx.sales["door"] = {"confirm_held": True}


def door_env(ctx):
    return {"DOOR": url("admission"), "SALE": "door", "P99_LIMIT_MS": ctx.mode.p99_limit_ms,
            "TICKETS": ctx.mode.poll_tickets}


def addr(role):
    return f"{HOST}:{PORTS[role]}"


def healthz(ctx):
    """The limit of the door's process: its /healthz at the same concurrency."""
    if "healthz" not in ctx.limits:
        ctx.limits["healthz"] = measure.http_bench(ctx, "healthz-max", addr("admission"), ["--path", "/healthz"],
                                                   [200], ctx.mode.max_secs)
        ctx.phases.append(ctx.limits["healthz"])
    return ctx.limits["healthz"]


# Units a transaction of flashgate-writes.sql: the worker's default reserve_prefetch, so
# the tickets of a batch of one-ticket messages.
PGBENCH_FLASHGATE_UNITS = 2000


def pgbench(ctx):
    if "pgbench_batched" not in ctx.limits:
        secs = ctx.mode.pgbench_secs
        ctx.limits["pgbench_batched"] = dict(measure.pgbench(ctx, "batched (100 units/tx)", "batched.sql", secs),
                                             units_per_tx=100)
        ctx.limits["pgbench_single"] = dict(measure.pgbench(ctx, "per-request (1 unit/tx)", "per-request.sql", secs),
                                            units_per_tx=1)
        # The database's own limit for the worker's writes: a reservation batch's
        # statements on a copy of flashgate's tables, as many units a transaction as a
        # batch of one-ticket messages holds (the worker's prefetch).
        units = PGBENCH_FLASHGATE_UNITS
        ctx.limits["pgbench_flashgate"] = dict(
            measure.pgbench(ctx, f"flashgate's batch ({units:,} units/tx)", "flashgate-writes.sql", secs,
                            schema="flashgate-schema.sql", units=units),
            units_per_tx=units)
    return ctx.limits["pgbench_batched"]


def redis_get(ctx):
    if "redis_get" not in ctx.limits:
        ctx.limits["redis_get"] = measure.redis_get(ctx, measure.product_bytes(url("catalog")))
    return ctx.limits["redis_get"]


def rates(ctx, name, role, args80, args_max, expected, script, env):
    """The sustainable rate (closed loop), an open loop at 80% of it (both with
    http-bench), then the k6 scenario at a rate k6 can drive, for its thresholds."""
    top = measure.http_bench(ctx, f"{name}-max", addr(role), args_max, expected, ctx.mode.max_secs)
    at80 = measure.http_bench(ctx, f"{name}-80pct", addr(role), args80, expected, ctx.mode.rate_secs,
                              rate=max(1, 0.8 * top["rate"]))
    scenario = measure.open_loop(ctx, f"{name}-k6", script, env, ctx.mode.k6_rate, ctx.mode.rate_secs)
    ctx.phases += [top, at80, scenario]
    return top, at80


def ticket_args(phase):
    return ["--path", "/v1/sales/door/tickets", "--body", f'{{"customer_id":"{phase}-{{n}}","quantity":1}}']


def door_cpu_us(phase):
    """The door process's CPU per request of a phase, µs."""
    return phase["cpu"].get("admission", 0.0) / max(phase["count"], 1) * 1e6 if phase.get("count") else None


def cpu_goal(ctx, key, phase, limit, what):
    mine, noop = door_cpu_us(phase), door_cpu_us(limit)
    if mine is not None and noop:
        ctx.goal(key, mine / noop, f"door CPU per {what} ({mine:.1f} µs) ÷ per `/healthz` ({noop:.1f} µs)")


def sold_out_sale(ctx):
    """A sale of one unit, sold (paid with a saved card): the door answers every new
    shopper 410 from what it knows, the refusal of a flash sale's crowd after the last
    unit. Sold, not held: while a hold could still expire the door asks Redis whether
    each refused shopper holds a ticket; once nothing can come back it keeps the sale's
    roll of holders and refuses everyone else from memory."""
    admin_put(ctx, f"{url('catalog')}/admin/v1/products/lt-gone", {"name": "Gone", "price": 4900, "currency": "eur"})
    admin_put(ctx, f"{url('admission')}/admin/v1/sales/gone", {
        "sku": "lt-gone", "stock": 1, "price": 4900, "currency": "eur", "hold_seconds": 600,
        "rate_per_second": 1000000, "burst": 1000000})
    ctx.sales["gone"] = {"confirm_held": True}
    deadline = time.monotonic() + 60
    for i in itertools.count():
        body = json.dumps({"customer_id": f"gone-{i}", "quantity": 1,
                           "payment_method": "pm_card_visa"}).encode()
        request = urllib.request.Request(f"{url('admission')}/v1/sales/gone/tickets", data=body,
                                         headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10):
                pass
        except urllib.error.HTTPError as refused:
            if refused.code == 410 and sale_status("gone") == "sold_out":
                return
        if time.monotonic() > deadline:
            raise RuntimeError("the door never answered 410 on a sale of one sold unit")
        time.sleep(0.2)


def sale_status(sale):
    """The sale's status as shoppers read it (`open`, `sold_out`, …)."""
    with urllib.request.urlopen(f"{url('admission')}/v1/sales/{sale}", timeout=10) as response:
        return json.load(response)["status"]


def door(ctx):
    ensure_door_sale(ctx)
    limit = healthz(ctx)
    top, at80 = rates(ctx, "door", "admission", ticket_args("door-80"), ticket_args("door-max"), [202],
                      "door.js", door_env(ctx))
    ctx.goal("door_p99_at_80pct_ms", at80["p99"], f"p99 of tickets at {at80['offered']}/s")
    cpu_goal(ctx, "door_cpu_ticket_vs_healthz", top, limit, "ticket")
    sold_out_sale(ctx)
    refusals = measure.http_bench(ctx, "refusal-max", addr("admission"), [
        "--path", "/v1/sales/gone/tickets", "--body", '{"customer_id":"refused-{n}","quantity":1}'], [410],
        ctx.mode.max_secs)
    ctx.phases.append(refusals)
    cpu_goal(ctx, "door_cpu_refusal_vs_healthz", refusals, limit, "refusal (410)")


def take_tickets(ctx, count):
    """`count` tickets of the door's sale, as poll paths in a file."""
    def take(i):
        body = json.dumps({"customer_id": f"crowd-{i}", "quantity": 1}).encode()
        request = urllib.request.Request(f"{url('admission')}/v1/sales/door/tickets", data=body,
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)["ticket"]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        tokens = list(pool.map(take, range(count)))
    path = os.path.join(ctx.work, "poll-paths.txt")
    with open(path, "w") as f:
        f.write("".join(f"/v1/tickets/{t}\n" for t in tokens))
    return path


def poll(ctx):
    ensure_door_sale(ctx)
    limit = healthz(ctx)
    paths = ["--paths-file", take_tickets(ctx, ctx.mode.poll_tickets)]
    top, at80 = rates(ctx, "poll", "admission", paths, paths, [200], "poll.js", door_env(ctx))
    cpu_goal(ctx, "door_cpu_poll_vs_healthz", top, limit, "poll")
    ctx.goal("poll_p99_at_80pct_ms", at80["p99"], f"p99 of polls at {at80['offered']}/s")


def browse(ctx):
    redis_get(ctx)
    path = os.path.join(ctx.work, "product-paths.txt")
    with open(path, "w") as f:
        f.write("".join(f"/v1/products/fg-{i:04d}\n" for i in range(100)))
    env = {"CATALOG": url("catalog"), "HOT": 100, "P99_LIMIT_MS": ctx.mode.p99_limit_ms}
    args = ["--paths-file", path]
    top, at80 = rates(ctx, "browse", "catalog", args, args, [200], "browse.js", env)
    own = measure.http_bench(ctx, "catalog-healthz-max", addr("catalog"), ["--path", "/healthz"], [200],
                             ctx.mode.max_secs)
    ctx.phases.append(own)
    ctx.goal("reads_vs_catalog_healthz", top["rate"] / max(own["rate"], 1e-9),
             "product reads/s ÷ the catalog's own /healthz/s")
    ctx.goal("reads_p99_at_80pct_ms", at80["p99"], f"p99 of product reads at {at80['offered']}/s")


def reserve(ctx):
    limit = pgbench(ctx)
    n = ctx.mode.reserve_tickets
    lock = measure.loadtool(ctx, "lock-bench", ["lock-bench", "--database-url", DATABASE_URL, "--requests",
                                                str(ctx.mode.lock_requests), "--clients", "32"], None, 600)
    runs = {}
    # (key, sales, tickets a message): one ticket a message is the worst case; the door's
    # group commit packs what arrives together (8 a message on average in the door scenario).
    for key, sales, per_message in (("one", 1, 1), ("hundred", 100, 1), ("packed", 1, PACKED_PER_MESSAGE)):
        args = ["reserve-bench", "--tickets", str(n), "--sales", str(sales), "--per-message", str(per_message),
                "--flashgate", ctx.stack.binary("flashgate"), "--worker-listen", f"{HOST}:{PORTS['reserve_worker']}",
                "--worker-log", f"{ctx.work}/reserve-worker-{key}.log"]
        runs[key] = measure.loadtool(ctx, f"reserve-bench ({sales} sales, {per_message} a message)", args,
                                     ctx.stack.reserve_env(), 900)
    ctx.reserve = {"lock": lock, **runs}
    drained = [run["drain"].get("worker_peak_rss_mb") for run in runs.values() if run]
    if any(drained):
        ctx.goal("peak_rss_worker_draining_mb", max(mb for mb in drained if mb),
                 f"peak resident memory (VmHWM) of a fresh worker draining {n:,} queued tickets (the most of the "
                 "reserve-bench drains)")
    own = ctx.limits.get("pgbench_flashgate") or {}
    for key, goal, what in (("one", "reserve", "1 hot sale"),
                            ("packed", "reserve_packed", f"1 hot sale, {PACKED_PER_MESSAGE} a message")):
        if not (lock and runs[key]):
            continue
        rate = runs[key]["drain"]["per_sec"]
        ctx.goal(f"{goal}_vs_lock_baseline", rate / max(lock["per_sec"], 1e-9),
                 f"reservations/s ({what}) ÷ textbook SELECT … FOR UPDATE/s")
        ctx.goal(f"{goal}_vs_pgbench_batched", rate / max(limit["tps"] * limit["units_per_tx"], 1e-9),
                 f"reservations/s ({what}) ÷ pgbench batched units/s")
        if own.get("tps"):
            ctx.goal(f"{goal}_vs_pgbench_flashgate", rate / (own["tps"] * own["units_per_tx"]),
                     f"reservations/s ({what}) ÷ pgbench units/s of a reservation batch's own writes")
    ctx.bench_sales = True


def baseline_settled(sale, secs=30):
    """The baseline sale's state once its webhooks stopped changing it (every charge's
    event delivered) or after `secs`."""
    deadline = time.monotonic() + secs
    last = None
    while True:
        with urllib.request.urlopen(f"{url('baseline')}/sales/{sale}", timeout=10) as response:
            state = json.load(response)
        if state == last or time.monotonic() > deadline:
            return state
        last = state
        time.sleep(1)


def flash_sale(ctx):
    healthz(ctx)
    pgbench(ctx)
    redis_get(ctx)
    common = dict(ctx.mode.flash, MODE="spike", DOOR=url("admission"), CATALOG=url("catalog"),
                  STRIPE=url("stripe"), BASELINE=url("baseline"), ADMIN_TOKEN=ctx.secrets.admin_token)
    secs = common["RAMP_S"] + common["HOLD_S"] + 2
    before = promtext.scrape(url("admission"))
    flashgate = measure.k6(ctx, "flash-sale", "flash-sale.js", dict(common, SYSTEM="flashgate", SALE="flash"), secs)
    after = promtext.scrape(url("admission"))
    flashgate["server"] = promtext.door_view(before, after)
    ctx.sales["flash"] = {}
    baseline = measure.k6(ctx, "flash-baseline", "flash-sale.js", dict(common, SYSTEM="baseline", SALE="flash-bl"),
                          secs)
    for result in (flashgate, baseline):
        result["rate"] = result["count"] / secs
    ctx.phases += [flashgate, baseline]
    state = baseline_settled("flash-bl")
    ctx.flash = {"flashgate": flashgate, "baseline": baseline, "baseline_state": state, "secs": secs}
    oversold = state["sold"] > state["stock"] or state["ordered_units"] != state["sold"]
    ctx.invariant("flash-bl (baseline)", not oversold,
                  {"stock": state["stock"], "sold": state["sold"], "orders": state["orders"],
                   "violations": ["baseline oversold or miscounted"] if oversold else []})


def webhook_storm(ctx):
    storm = dict(ctx.mode.storm)
    env = {"MODE": "rate", "RATE": storm["RATE"], "DURATION_S": storm["DURATION_S"], "SHOPPERS": storm["SHOPPERS"],
           "DOOR": url("admission"), "CATALOG": url("catalog"), "WEBHOOK": url("webhook"),
           "STRIPE": url("stripe"), "ADMIN_TOKEN": ctx.secrets.admin_token, "SALE": "storm",
           "WEBHOOK_SECRET": ctx.secrets.webhook_secret, "P99_LIMIT_MS": ctx.mode.p99_limit_ms,
           "MAX_VUS": 200, "SETTLE_S": ctx.mode.settle_secs,
           "SETUP_TIMEOUT_S": 2 * ctx.mode.settle_secs + 60}
    result = measure.k6(ctx, "webhook-storm", "webhook-storm.js", env, storm["DURATION_S"] + 30)
    result["rate"] = result["count"] / storm["DURATION_S"]
    result["offered"] = storm["RATE"]
    ctx.phases.append(result)
    ctx.storm = result
    ctx.sales["storm"] = {}


JWT = {"secret": "loadtest-login-secret", "issuer": "https://shop.loadtest", "audience": "flashgate"}


def opening_sale(ctx, sale, starts_at, stock, pow_bits=0):
    admin_put(ctx, f"{url('catalog')}/admin/v1/products/lt-opening",
              {"name": "Opening drop", "price": 4900, "currency": "eur"})
    admin_put(ctx, f"{url('admission')}/admin/v1/sales/{sale}", {
        "sku": "lt-opening", "stock": stock, "price": 4900, "currency": "eur", "hold_seconds": 60,
        "rate_per_second": 1000000, "burst": 1000000, "starts_at": starts_at, "pow_difficulty": pow_bits})


def opening_bench(ctx, name, sale, shoppers, extra, timeout):
    args = ["opening-bench", "--addr", addr("admission"), "--sale", sale, "--shoppers", str(shoppers),
            "--prefix", f"{sale}-", "--door-pid", str(ctx.stack.pids["admission"])] + extra
    report = measure.loadtool(ctx, name, args, ctx.stack.env(), timeout)
    if report is None:
        return None
    join = report["join"]
    print(f"{name}: {shoppers} joined at {join['per_sec']:.0f}/s, p99 {join['latency']['p99_ms']:.1f} ms, "
          f"{join['statuses']}", flush=True)
    if join["prequeued"] != shoppers:
        ctx.fail(f"{name}: {join['prequeued']} of {shoppers} shoppers pre-queued ({join['statuses']})")
    return report


def restart_door(ctx, extra_env):
    """The door again, with `extra_env` on top of the run's settings."""
    import signal
    import time
    pid = ctx.stack.pids["admission"]
    os.killpg(pid, signal.SIGTERM)
    deadline = time.time() + 20
    while os.path.exists(f"/proc/{pid}") and time.time() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                break
        except ChildProcessError:
            break
        time.sleep(0.05)
    ctx.supervisor.children = [(n, c) for n, c in ctx.supervisor.children if c.pid != pid]
    child = ctx.supervisor.start("flashgate-admission", [ctx.stack.binary("flashgate"), "admission"],
                                 dict(ctx.stack.env(), **extra_env))
    ctx.stack.pids["admission"] = child.pid
    import procs
    procs.wait_http(f"{url('admission')}/readyz", 60, lambda: child.poll() is None)


def opening(ctx):
    """Issue 14: the opening second of a sale with a crowd in its pre-queue (every shopper
    has a place how long after starts_at), and the door's pre-queue throughput with
    identity and with proof of work on, as ratios to the same run's throughput without."""
    import datetime
    o = ctx.mode.opening
    later = "2099-01-01T00:00:00Z"
    for sale, bits in (("opening-plain", 0), ("opening-pow", o["POW_BITS"])):
        opening_sale(ctx, sale, later, 10, bits)
    timeout = 600
    plain = opening_bench(ctx, "prequeue-plain", "opening-plain", o["COMPARE"], [], timeout)
    pow_run = opening_bench(ctx, "prequeue-pow", "opening-pow", o["COMPARE"], ["--pow"], timeout)
    # The opening: enough lead for the crowd to join first (the join rate measured above).
    lead = 10 + o["PREQUEUED"] / max(200.0, 0.5 * (plain or {}).get("join", {}).get("per_sec", 200.0))
    starts = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=lead)
    starts_at = starts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    opening_sale(ctx, "opening", starts_at, o["STOCK"])
    main = opening_bench(ctx, "opening", "opening", o["PREQUEUED"],
                         ["--starts-at", starts_at, "--database-url", DATABASE_URL], timeout + lead)
    ctx.sales["opening"] = {"confirm_held": True}
    restart_door(ctx, {"FLASHGATE_ADMISSION__IDENTITY__MODE": "jwt",
                       "FLASHGATE_ADMISSION__IDENTITY__HS256_SECRET": JWT["secret"],
                       "FLASHGATE_ADMISSION__IDENTITY__ISSUER": JWT["issuer"],
                       "FLASHGATE_ADMISSION__IDENTITY__AUDIENCE": JWT["audience"]})
    opening_sale(ctx, "opening-jwt", later, 10)
    jwt_run = opening_bench(ctx, "prequeue-identity", "opening-jwt", o["COMPARE"],
                            ["--jwt-secret", JWT["secret"], "--issuer", JWT["issuer"],
                             "--audience", JWT["audience"]], timeout)
    restart_door(ctx, {})
    ctx.opening = {"plain": plain, "pow": pow_run, "identity": jwt_run, "main": main, "lead_s": lead,
                   "pow_bits": o["POW_BITS"]}
    if main and "opening" in main:
        ctx.goal("opening_every_shopper_placed_ms", main["opening"]["every_ticket_placed_after_ms"],
                 f"from starts_at until each of {o['PREQUEUED']:,} pre-queued shoppers saw a place")
    if plain and pow_run and jwt_run:
        base = plain["join"]["per_sec"]
        ctx.goal("prequeue_rate_identity_vs_off", jwt_run["join"]["per_sec"] / base,
                 "pre-queue joins/s signed in (HS256 JWT) ÷ anonymous")
        ctx.goal("prequeue_rate_pow_vs_off", pow_run["join"]["per_sec"] / base,
                 f"pre-queue joins/s with proof of work ({o['POW_BITS']} bits, solved beforehand) ÷ without")


def stripe_faults(faults):
    request = urllib.request.Request(f"{url('stripe')}/_sim/faults", data=json.dumps(faults).encode(),
                                     method="POST", headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def steer(ctx):
    """Issue 16: the flash sale against a slow downstream (every Stripe call answered late,
    a share of them 500), once at a fixed admission rate and once with the closed-loop
    controller, in the same run: time to sell out, refusals at the door, expired holds and
    the time to a final answer. Every shopper pays with a saved card, so every payment goes
    through the workers and Stripe."""
    st = dict(ctx.mode.steer)
    faults = {"latency_ms": st.pop("LATENCY_MS"), "server_error_share": st.pop("ERROR_SHARE")}
    controller = st.pop("CONTROLLER")
    common = dict(st, MODE="spike", DOOR=url("admission"), CATALOG=url("catalog"), STRIPE=url("stripe"),
                  ADMIN_TOKEN=ctx.secrets.admin_token, SYSTEM="flashgate", DECLINE_SHARE=0, BROWSER_SHARE=0,
                  ALLOW_STUCK=1000000)
    secs = st["RAMP_S"] + st["HOLD_S"] + 2
    runs = {}
    stripe_faults(faults)
    try:
        for name, sale, extra in (("fixed", "steer-fixed", {}),
                                  ("steered", "steer-ctl", {"CONTROLLER": json.dumps(controller)})):
            result = measure.k6(ctx, f"steer-{name}", "flash-sale.js", dict(common, SALE=sale, **extra), secs)
            ctx.phases.append(result)
            ctx.sales[sale] = {}
            runs[name] = {"k6": result, "sale": sale}
            # The next run starts on a system at rest: the holds this one left expiring
            # are cancelled at the slow Stripe too, and would otherwise tax the next run.
            invariants.settle(ctx, sale)
    finally:
        stripe_faults({})
    for name, run in runs.items():
        sale = run["sale"]
        paid, expired, span_ms = ctx.stack.sql(
            "SELECT count(*) FILTER (WHERE status = 'paid'), count(*) FILTER (WHERE status = 'expired'), "
            "COALESCE(EXTRACT(EPOCH FROM max(paid_at) - min(created_at)) * 1000, 0) "
            f"FROM orders WHERE sale_id = '{sale}'")[0]
        decisions, low, high = ctx.stack.sql(
            "SELECT count(*), min((new->>'rate_per_second')::int), max((new->>'rate_per_second')::int) "
            f"FROM admission_audit WHERE sale_id = '{sale}' AND actor = 'controller'")[0]
        run.update(paid=int(paid), expired=int(expired), sell_out_ms=float(span_ms), decisions=int(decisions),
                   rate_low=low, rate_high=high)
        print(f"steer-{name}: {paid} paid in {float(span_ms) / 1000:.1f} s, {expired} expired, "
              f"{decisions} controller decisions", flush=True)
    ctx.steer = {"runs": runs, "faults": faults, "controller": controller, "stock": st["STOCK"],
                 "fixed_rate": st["SALE_RATE"], "peak": st["PEAK"]}


RUN = {
    "door": door,
    "poll": poll,
    "browse": browse,
    "reserve": reserve,
    "flash-sale": flash_sale,
    "webhook-storm": webhook_storm,
    "opening": opening,
    "steer": steer,
}
