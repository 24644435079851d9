"""Issue 18: the shoppers' first second, driven by `flashgate-loadtools crowd` (a few µs of
CPU a request, so on two cores the servers, not the driver, set the figures).

- The flash sale, same arrivals against flashgate and the textbook checkout: the shoppers'
  p99 time to a first answer, flashgate ÷ textbook.
- The same arrivals at the door with the workers paused (SIGSTOP): what the pipeline
  behind the queue costs the door (its p99 in the full sale ÷ its p99 with nothing behind).
- A spike at 5× and 20× the textbook's sustainable sales a second (measured first, closed
  loop): every shopper answered, the p99, nothing oversold; the textbook beside it, and
  Medusa when it is installed (`loadtest/medusa/install`). The floor beside them: the same
  arrivals each asking the door's `/healthz` once, the cheapest answer it has.
"""

import json
import os
import signal

import measure
import medusa
import procs
import promtext
from scenarios import addr, admin_put, baseline_settled
from settings import url


def flashgate_sale(ctx, sale, stock):
    admin_put(ctx, f"{url('catalog')}/admin/v1/products/lt-{sale}",
              {"name": "Load-test drop", "category": "sneakers", "price": 4900, "currency": "eur"})
    admin_put(ctx, f"{url('admission')}/admin/v1/sales/{sale}", {
        "sku": f"lt-{sale}", "stock": stock, "price": 4900, "currency": "eur", "hold_seconds": 120,
        "rate_per_second": 100000, "burst": 100000})
    ctx.sales[sale] = {"confirm_held": True}  # browser payers who gave up leave holds


def baseline_sale(ctx, sale, stock):
    admin_put(ctx, f"{url('baseline')}/sales/{sale}", {"stock": stock})


def run(ctx, phase, system, sale, peak, hold, ramp=0.0, deadline=60, browser_share=0.3):
    """One crowd; its measurement, shaped as the other phases' (the phases table and the
    chart read it)."""
    target = addr("baseline") if system == "baseline" else addr("admission")
    argv = [ctx.stack.binary("flashgate-loadtools"), "crowd", "--system", system, "--addr", target,
            "--stripe", addr("stripe"), "--sale", sale, "--peak", str(int(peak)), "--ramp-secs", str(ramp),
            "--hold-secs", str(hold), "--deadline-secs", str(deadline), "--browser-share", str(browser_share),
            "--prefix", f"{phase}-"]
    before = promtext.scrape(url("admission")) if system == "flashgate" else None
    meter = measure.CpuMeter(ctx, phase)
    print(f"run: crowd {phase} ({system}, {int(peak)}/s, ramp {ramp} s, hold {hold} s)", flush=True)
    code, out, driver_cpu, err = procs.run(argv, timeout=ramp + hold + deadline + 300,
                                           log=os.path.join(ctx.work, "crowd.log"))
    cpu, machine = meter.stop(driver_cpu)
    if code != 0:
        ctx.fail(f"crowd {phase} failed: {err.strip()[-400:]}")
        return None
    r = json.loads(out.strip().splitlines()[-1])
    unexpected = r["outcomes"].get("unexpected", 0)
    result = {
        "phase": phase, "system": system, "driver": "crowd", "count": r["requests"],
        "rate": r["requests"] / max(r["secs"], 1e-9), "p50": r["first_answer"]["p50_ms"],
        "p99": r["first_answer"]["p99_ms"], "max": r["first_answer"]["max_ms"],
        "series": [(t, n, p50, p99) for t, n, p50, p99 in r["series"]], "cpu": cpu, "machine_busy": machine,
        "counters": {"unexpected_status": unexpected}, "crowd": r, "offered": int(peak),
        "ok": code == 0 and unexpected == 0,
        "command": "flashgate-loadtools " + " ".join(a.replace(ctx.root + "/", "") for a in argv[1:]),
    }
    if r["requests"]:
        result["server_cpu_us_per_req"] = cpu["flashgate"] / r["requests"] * 1e6
    if before is not None:
        result["server"] = promtext.door_view(before, promtext.scrape(url("admission")))
        print(f"{phase}: as the door saw it: {result['server']}", flush=True)
    print(f"{phase}: {r['arrivals']} shoppers, {r['answered']} answered, first answer p50 "
          f"{r['first_answer']['p50_ms']:.1f} / p99 {r['first_answer']['p99_ms']:.1f} ms, outcomes {r['outcomes']}, "
          f"driver {driver_cpu / max(r['requests'], 1) * 1e6:.1f} µs/request", flush=True)
    if unexpected:
        ctx.fail(f"crowd {phase}: {unexpected} shoppers met an answer the contract does not have")
    ctx.phases.append(result)
    return result


def paused(ctx, roles):
    """SIGSTOPs the roles' processes; returns how to let them go on."""
    pids = [ctx.stack.pids[role] for role in roles]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)

    def resume():
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    return resume


def textbook_capacity(ctx):
    """The textbook's sustainable sales a second: closed loop on `POST /checkout` (saved card,
    charged inside the request) with stock to spare."""
    baseline_sale(ctx, "capacity", 10_000_000)
    body = ('{"sale_id":"capacity","customer_id":"cap-{n}","quantity":1,'
            '"payment_method":"pm_card_visa"}')
    result = measure.http_bench(ctx, "textbook-capacity", addr("baseline"),
                                ["--path", "/checkout", "--body", body], [201], ctx.mode.max_secs)
    ctx.phases.append(result)
    return result


def first_second(ctx):
    c = ctx.mode.crowd
    # LOADTEST_FIRST_SECOND=flash (or spikes, medusa; comma-separated) runs only those parts.
    parts = set((os.environ.get("LOADTEST_FIRST_SECOND") or "flash,spikes,medusa").split(","))
    out = {"spikes": []}
    if "flash" in parts:
        flash_part(ctx, c, out)
    if "spikes" in parts:
        spikes_part(ctx, c, out)
    if "medusa" in parts and c["MEDUSA"]:
        if medusa.installed():
            out["medusa"] = medusa_phase(ctx, c)
        else:
            ctx.note("Medusa is not installed (`loadtest/medusa/install`): no Medusa row")
    ctx.first_second = out


def flash_part(ctx, c, out):
    flashgate_sale(ctx, "crowd", c["STOCK"])
    baseline_sale(ctx, "crowd-bl", c["STOCK"])
    fg = run(ctx, "crowd-flashgate", "flashgate", "crowd", c["PEAK"], c["HOLD_S"], c["RAMP_S"])
    bl = run(ctx, "crowd-textbook", "baseline", "crowd-bl", c["PEAK"], c["HOLD_S"], c["RAMP_S"])
    # The same arrivals with nothing behind the door: every shopper is queued and polls
    # until the (shorter) deadline; then the workers go on and decide the queue. Nobody
    # pays in the browser (the shoppers are gone when their units are held).
    flashgate_sale(ctx, "crowd-paused", c["STOCK"])
    resume = paused(ctx, ["worker"])
    try:
        quiet = run(ctx, "crowd-workers-paused", "flashgate", "crowd-paused", c["PEAK"], c["HOLD_S"], c["RAMP_S"],
                    deadline=c["PAUSED_DEADLINE_S"], browser_share=0)
    finally:
        resume()
    out.update(flashgate=fg, baseline=bl, paused=quiet)
    if fg and bl:
        ctx.goal("flash_first_answer_p99_vs_textbook", fg["p99"] / max(bl["p99"], 1e-9),
                 "shoppers' p99 time to a first answer, flashgate ÷ textbook (crowd, same arrivals)")
    if fg and quiet:
        door_full = fg["crowd"]["answers"]["p99_ms"]
        door_quiet = quiet["crowd"]["answers"]["p99_ms"]
        ctx.goal("door_p99_full_vs_workers_paused", door_full / max(door_quiet, 1e-9),
                 "p99 of every door answer in the full sale ÷ the same arrivals with the workers paused")


def spikes_part(ctx, c, out):
    capacity = textbook_capacity(ctx)
    sales_per_sec = capacity["rate"] if capacity.get("count") else 0.0
    # For an A/B of two builds or settings: the same spike rates in both runs, whatever the
    # textbook measured (LOADTEST_SPIKE_BASE, sales/s), and only some steps (LOADTEST_SPIKES).
    if os.environ.get("LOADTEST_SPIKE_BASE"):
        sales_per_sec = float(os.environ["LOADTEST_SPIKE_BASE"])
        ctx.note(f"spikes at multiples of {sales_per_sec:g} sales/s set by LOADTEST_SPIKE_BASE, not the textbook's")
    factors = [int(f) for f in os.environ.get("LOADTEST_SPIKES", "").split(",") if f] or c["SPIKES"]
    out["textbook_sales_per_sec"] = sales_per_sec
    for factor in factors:
        rate = factor * sales_per_sec
        stock = max(1, int(sales_per_sec * c["SPIKE_S"]))
        sale = f"spike-{factor}"
        flashgate_sale(ctx, sale, stock)
        baseline_sale(ctx, f"{sale}-bl", stock)
        spike = {"factor": factor, "rate": rate, "stock": stock,
                 "flashgate": run(ctx, f"spike-{factor}x-flashgate", "flashgate", sale, rate, c["SPIKE_S"]),
                 "baseline": run(ctx, f"spike-{factor}x-textbook", "baseline", f"{sale}-bl", rate, c["SPIKE_S"]),
                 # The floor: the same arrivals, each asking the door's /healthz once.
                 "healthz": run(ctx, f"spike-{factor}x-healthz", "healthz", sale, rate, c["SPIKE_S"])}
        if factor == max(factors):
            # The door's own work at the top step, nothing behind it (last: the workers
            # decide its queue after every measured phase).
            flashgate_sale(ctx, f"{sale}-paused", stock)
            resume = paused(ctx, ["worker"])
            try:
                spike["paused"] = run(ctx, f"spike-{factor}x-workers-paused", "flashgate", f"{sale}-paused", rate,
                                      c["SPIKE_S"], deadline=c["PAUSED_DEADLINE_S"], browser_share=0)
            finally:
                resume()
        state = baseline_settled(f"{sale}-bl")
        spike["baseline_state"] = state
        ctx.invariant(f"{sale}-bl (baseline)", state["sold"] <= state["stock"],
                      {"stock": state["stock"], "sold": state["sold"], "orders": state["orders"],
                       "violations": [] if state["sold"] <= state["stock"] else ["baseline oversold"]})
        f = spike["flashgate"]
        if f:
            r = f["crowd"]
            ctx.goal(f"spike_{factor}x_answered", r["answered"] / max(r["arrivals"], 1),
                     f"share of shoppers answered in a {factor}× spike ({int(rate)}/s for {c['SPIKE_S']} s)")
            ctx.goal(f"spike_{factor}x_first_answer_p99_ms", f["p99"],
                     f"p99 time to a first answer in the {factor}× spike")
        out["spikes"].append(spike)


def medusa_phase(ctx, c):
    """Medusa v2 under the flash sale's arrivals (k6: it needs five requests a shopper and
    answers in hundreds of milliseconds, so k6's cost per request does not bind)."""
    proc = medusa.start(os.path.join(ctx.work, "medusa.log"))
    try:
        seeded = medusa.seed("crowd", c["STOCK"])
        env = dict(medusa.k6_env(seeded), MODE="spike", PEAK=c["PEAK"], RAMP_S=c["RAMP_S"], HOLD_S=c["HOLD_S"],
                   MAX_VUS=c["MEDUSA_MAX_VUS"], SHOPPER_DEADLINE_S=c["MEDUSA_DEADLINE_S"],
                   GRACE_S=c["MEDUSA_DEADLINE_S"] + 10, SALE="crowd", STOCK=c["STOCK"])
        secs = c["RAMP_S"] + c["HOLD_S"] + 2
        result = measure.k6(ctx, "crowd-medusa", "flash-sale.js", env, secs)
        result["rate"] = result["count"] / secs
        ctx.phases.append(result)
        state = medusa.sold("crowd")
        ctx.invariant("crowd (Medusa)", not state["oversold"], {
            "stock": state["stocked"], "sold": state["units"], "orders": state["orders"],
            "violations": ["Medusa oversold"] if state["oversold"] else []})
        return {"k6": result, "sold": state}
    finally:
        medusa.stop(proc)

