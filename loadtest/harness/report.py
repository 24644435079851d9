"""The report: a markdown file (and a PNG chart of throughput and latency over the run)
in the results folder, copied to latest.md, and printed."""

import os
import platform
import shutil

from settings import DROPPED_GOALS, GOALS

# The processes whose CPU each phase measures, in the order the tables give them.
CPU_NAMES = ("admission", "worker", "catalog", "webhook", "driver", "rabbitmq", "redis", "postgres", "other")


def fmt(value, digits=1):
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def machine(ctx):
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    quiet = "yes" if not ctx.busy_at_start else f"**no**: {ctx.busy_at_start} (numbers are skewed)"
    return table(["", ""], [
        ["when", ctx.started.strftime("%Y-%m-%d %H:%M UTC")],
        ["machine", f"{os.cpu_count()} cores (`nproc`), {mem_kb / 2**20:.1f} GiB, {platform.platform()}"],
        ["quiet machine", quiet],
        ["load average at start", ctx.load_at_start],
        ["build", f"{ctx.stack.profile} profile, commit {ctx.commit}"],
        ["command", f"`{ctx.command}`"],
        ["mode", f"{ctx.mode.name}: closed loops of {ctx.mode.concurrency} VUs for {ctx.mode.max_secs} s, "
                 f"open loops at 80% for {ctx.mode.rate_secs} s ({ctx.mode.open_connections} connections)"],
    ])


def goals(ctx):
    rows = []
    for key, measured, how in ctx.goals:
        op, target = GOALS[key]
        met = measured is not None and (measured >= target if op == ">=" else measured <= target)
        unit = " ms" if key.endswith("_ms") else " MiB" if key.endswith("_mb") else "×"
        rows.append([key, f"{fmt(measured, 2)}{unit}", f"{op} {target}{unit}", "yes" if met else "**no**", how])
    return table(["goal", "measured", "target", "met", "how"], rows) if rows else ""


def phases(ctx):
    rows = []
    for p in ctx.phases:
        offered = f" (offered {p['offered']}/s)" if p.get("offered") else ""
        skewed = " (**a compiler was running**)" if p.get("cpu", {}).get("compiler_running") else ""
        rows.append([p["phase"] + skewed, p.get("driver", "–"), fmt(p.get("rate")) + offered, fmt(p.get("p50"), 2), fmt(p.get("p99"), 2),
                     fmt(p.get("count")), fmt(p.get("counters", {}).get("unexpected_status", 0)),
                     fmt(p.get("counters", {}).get("dropped_iterations", 0)),
                     fmt(p.get("server_cpu_us_per_req")), cpu_split(p.get("cpu", {})),
                     f"{p.get('machine_busy', 0) * 100:.0f}%", "ok" if p.get("ok") else "**broken**"])
    return table(["phase", "driver", "requests/s", "p50 ms", "p99 ms", "requests", "unexpected", "dropped",
                  "flashgate CPU µs/req", "CPU s: admission / worker / catalog / webhook / driver / rabbitmq / "
                  "redis / postgres / other",
                  "machine busy", "thresholds"], rows)


def memory(ctx):
    """Each role's peak resident memory in each phase, and between phases where a role
    peaked higher there than in the phases on either side (a worker resuming onto a
    backlog, a sale settling) by a MiB or more."""
    names = [f"flashgate-{role}" for role in ("admission", "worker", "webhook", "catalog")]
    names = [n for n in names if any(n in peaks for _, peaks in ctx.memory)]
    if not names:
        return ""
    rows = []
    for i, (label, peaks) in enumerate(ctx.memory):
        if label.startswith("before "):
            around = [p for _, p in ctx.memory[max(0, i - 1):i + 2] if p is not peaks]
            if not any(peaks.get(n, 0.0) >= max([p.get(n, 0.0) for p in around] or [0.0]) + 1.0 for n in names):
                continue
            label = f"between phases, {label}"
        rows.append([label] + [fmt(peaks.get(n), 1) for n in names])
    head = ("VmHWM of each flashgate process, its count started again (`/proc/<pid>/clear_refs`) at every "
            "phase's start and end.\n\n")
    return head + table(["phase"] + [f"{n.removeprefix('flashgate-')} MiB" for n in names], rows)


def cpu_split(cpu):
    return " / ".join(f"{cpu.get(n, 0):.1f}" for n in CPU_NAMES)


def ceilings(ctx):
    """What the measured CPU costs allow each throughput goal at best. A closed loop can
    go no faster than the machine's cores divided by the CPU one request costs on the
    whole machine (server, driver, Redis, RabbitMQ, PostgreSQL, the rest). Each row
    takes that cost from the phase itself, except the service's own share, which it
    replaces by what a `/healthz` of the door cost: the ratio the goal could reach if the
    service's own work per request were as cheap as answering a request that does
    nothing, every other cost as measured at the phase's own rate. An estimate, not a
    proof: Redis and RabbitMQ cost less per request when more requests share a system
    call or a message, as they would at a higher rate."""
    found = {p["phase"]: p for p in ctx.phases if p.get("count") and p.get("cpu")}
    healthz, redis = found.get("healthz-max"), ctx.limits.get("redis_get") or {}
    if not healthz:
        return ""
    cores = os.cpu_count()
    per_req = lambda p, name: p["cpu"].get(name, 0.0) / p["count"] * 1e6  # noqa: E731
    noop = per_req(healthz, "admission")
    rows = []
    for phase, role, against, rate, goal in (
            ("door-max", "admission", "door's `/healthz`", healthz["rate"], "tickets_vs_healthz"),
            ("poll-max", "admission", "door's `/healthz`", healthz["rate"], "polls_vs_healthz"),
            ("browse-max", "catalog", "redis-benchmark GET", redis.get("rate"), "reads_vs_redis_get")):
        p = found.get(phase)
        if not p or not rate:
            continue
        rest = sum(per_req(p, n) for n in CPU_NAMES if n != role)
        best = cores / ((noop + rest) * 1e-6)
        split = ", ".join(f"{n} {per_req(p, n):.1f}" for n in CPU_NAMES if n != role and per_req(p, n) >= 0.05)
        rows.append([goal, f"{per_req(p, role):.1f} µs ({role}); others {rest:.1f} µs: {split}",
                     f"{noop:.1f} µs", f"{fmt(best, 0)}/s ÷ {against} {fmt(rate, 0)}/s = {best / rate:.2f}×",
                     f"{DROPPED_GOALS[goal]}×"])
    if redis.get("rate"):
        rows.append(["reads_vs_redis_get", "the door's `/healthz` itself (same HTTP stack, a handler that does "
                     "nothing, same connections)", "–",
                     f"{fmt(healthz['rate'], 0)}/s ÷ redis-benchmark GET {fmt(redis['rate'], 0)}/s = "
                     f"{healthz['rate'] / redis['rate']:.2f}×", f"{DROPPED_GOALS['reads_vs_redis_get']}×"])
    if not rows:
        return ""
    return table(["goal", "measured CPU per request (µs, whole machine)", "service's share replaced by a "
                  "`/healthz`'s", f"best possible on {cores} cores", "former target (dropped)"], rows)


def limits(ctx):
    rows = []
    h = ctx.limits.get("healthz")
    if h:
        rows.append([f"/healthz of the door (admission process, {h['driver']}, {ctx.mode.concurrency} connections)", f"{fmt(h['rate'])} req/s",
                     f"p50 {fmt(h['p50'], 2)} / p99 {fmt(h['p99'], 2)} ms", f"`{h['command']}`"])
    r = ctx.limits.get("redis_get")
    if r and r.get("rate"):
        rows.append(["redis-benchmark GET", f"{fmt(r['rate'])} req/s",
                     f"p50 {fmt(r['p50'], 2)} / p99 {fmt(r['p99'], 2)} ms", f"`{r['command']}`"])
    for key in ("pgbench_batched", "pgbench_flashgate", "pgbench_single"):
        p = ctx.limits.get(key)
        if p and p.get("tps"):
            units = p["tps"] * p["units_per_tx"]
            rows.append([f"pgbench {p['name']}", f"{fmt(p['tps'])} tx/s = {fmt(units)} units/s",
                         f"avg {fmt(p['latency_ms'], 2)} ms", f"`{p['command']}`"])
    return table(["limit", "rate", "latency", "command"], rows) if rows else ""


def reservations(ctx):
    r = ctx.reserve
    rows = []
    for key, label in (("one", "flashgate worker, 1 hot sale"), ("hundred", "flashgate worker, 100 sales"),
                       ("packed", "flashgate worker, 1 hot sale, tickets packed as the door packs them")):
        run = r.get(key)
        if run:
            if run.get("per_message", 1) > 1:
                label += f" ({run['per_message']} a message)"
            d = run["drain"]
            rows.append([label, fmt(d["per_sec"]), f"{run['tickets']:,} tickets preloaded at "
                         f"{fmt(run['publish_per_sec'])}/s, drained in {fmt(d['secs_from_first_decision'], 2)} s "
                         f"({fmt(d['per_sec_including_start'])}/s counting start-up); worker CPU "
                         f"{fmt(d.get('worker_cpu_us_per_ticket'))} µs/ticket, peak memory "
                         f"{fmt(d.get('worker_peak_rss_mb'))} MiB", f"`{run['command']}`"])
    lock = r.get("lock")
    if lock:
        rows.append([f"textbook SELECT … FOR UPDATE, {lock['clients']} clients", fmt(lock["per_sec"]),
                     f"p50 {fmt(lock['latency']['p50_ms'], 2)} / p99 {fmt(lock['latency']['p99_ms'], 2)} ms",
                     f"`{lock['command']}`"])
    return table(["reservations", "per second", "detail", "command"], rows)


def flash(ctx):
    f = ctx.flash
    fg, bl = f["flashgate"], f["baseline"]
    c1, c2 = fg.get("counters", {}), bl.get("counters", {})
    t1, t2 = fg.get("trends", {}), bl.get("trends", {})

    def shoppers(c):
        return sum(v for k, v in c.items() if k.startswith("outcome_")) + c.get("shoppers_stuck", 0)

    def lat(t, name):
        v = t.get(name, {})
        return f"{fmt(v.get('med'), 1)} / {fmt(v.get('p(99)'), 1)}"

    peak = lambda p: max((s[1] for s in p.get("series", [])), default=0)  # noqa: E731
    s = f["baseline_state"]
    rows = [
        ["shoppers arrived", fmt(shoppers(c1)), fmt(shoppers(c2))],
        ["units sold (paid / charged in the request)", fmt(c1.get("outcome_paid", 0)),
         f"{fmt(c2.get('outcome_ordered', 0))} (stock {s['stock']}, sold {s['sold']}, paid by webhook "
         f"{fmt(s.get('paid', 0))}, pending {fmt(s.get('pending', 0))})"],
        ["declined cards (failed)", fmt(c1.get("outcome_failed", 0)), fmt(c2.get("outcome_failed", 0))],
        ["sold out at the door (410)", fmt(c1.get("outcome_sold_out_at_door", 0)), "–"],
        ["sold out after queueing / by the checkout", fmt(c1.get("outcome_sold_out", 0)),
         fmt(c2.get("outcome_sold_out", 0))],
        ["expired / refunded", f"{fmt(c1.get('outcome_expired', 0))} / {fmt(c1.get('outcome_refunded', 0))}", "–"],
        ["throttled door answers (429/503, retried)", fmt(c1.get("door_throttled", 0)), "–"],
        ["gave up / stuck / overloaded (5xx, timeouts)",
         f"{fmt(c1.get('outcome_gave_up', 0))} / {fmt(c1.get('shoppers_stuck', 0))} / –",
         f"– / – / {fmt(c2.get('outcome_overloaded', 0))}"],
        ["unexpected answers", fmt(c1.get("unexpected_status", 0)), fmt(c2.get("unexpected_status", 0))],
        ["ticket requests resent: connection closed under them, no answer",
         fmt(c1.get("resent_after_close", 0)), "–"],
        ["door / checkout answers: peak per second", fmt(peak(fg)), fmt(peak(bl))],
        ["door / checkout answer p50 / p99 ms", f"{fmt(fg.get('p50'), 1)} / {fmt(fg.get('p99'), 1)}",
         f"{fmt(bl.get('p50'), 1)} / {fmt(bl.get('p99'), 1)}"],
        ["time to a ticket p50 / p99 ms", lat(t1, "time_to_ticket"), "–"],
        ["time to the final answer p50 / p99 ms", lat(t1, "time_to_final"), lat(t2, "time_to_final")],
    ]
    for what, q in fg.get("server", {}).items():
        if q:
            rows.append([f"as the door saw it: {what} (count, p50 / p99 ≤ bucket)",
                         f"{q['count']:,}, ≤ {fmt(q['p50_le_ms'])} / ≤ {fmt(q['p99_le_ms'])} ms", "–"])
    return table(["flash sale", "flashgate", "textbook checkout"], rows)


def storm(ctx):
    s = ctx.storm
    checks = s.get("checks", {})
    return table(["webhook storm", ""], [
        ["deliveries", f"{fmt(s['count'])} at {fmt(s['rate'])}/s (offered {s['offered']}/s)"],
        ["p50 / p99 ms", f"{fmt(s.get('p50'), 2)} / {fmt(s.get('p99'), 2)}"],
        ["answers not as the contract says", fmt(s.get("counters", {}).get("unexpected_status", 0))],
        ["checks passed", f"{checks.get('passes', 0):,} of {checks.get('passes', 0) + checks.get('fails', 0):,}"],
    ])


def opening(ctx):
    o = ctx.opening
    rows = []
    for label, key in (("anonymous", "plain"), ("signed in (HS256 JWT)", "identity"),
                       (f"proof of work ({o['pow_bits']} bits)", "pow"), ("the opening's crowd", "main")):
        r = o.get(key)
        if not r:
            continue
        j = r["join"]
        rows.append([label, fmt(r["shoppers"]), f"{j['per_sec']:,.0f}", f"{j['latency']['p50_ms']:.2f}",
                     f"{j['latency']['p99_ms']:.2f}", f"{j.get('door_cpu_us_per_request') or 0:.0f}",
                     f"{j['driver_cpu_us_per_request']:.0f}", fmt(j["prequeued"])])
    text = table(["joining the pre-queue", "shoppers", "joins/s", "p50 ms", "p99 ms", "door CPU µs/join",
                  "driver CPU µs/join", "pre-queued"], rows)
    main = (o.get("main") or {}).get("opening")
    if main:
        text += "\n" + table(["the opening", ""], [
            ["every place written and the draw committed, after starts_at",
             f"{main.get('draw_committed_after_ms', 0):,.0f} ms"],
            ["every shopper saw a place (polling each until it did)",
             f"{main['every_ticket_placed_after_ms']:,.0f} ms ({main['polls']:,} polls)"],
            ["every drawn ticket confirmed by the broker", f"{main.get('every_ticket_confirmed_after_ms', 0):,.0f} ms"],
            ["tickets drawn", fmt(main.get("drawn"))],
        ])
    check = (o.get("pow") or {}).get("pow_check_us")
    if check:
        text += f"\nThe door's check of a solved challenge in memory (signature, binding, expiry, difficulty, " \
                f"hash): {check:.2f} µs (100,000 checks); the one-use mark is one Redis round trip more.\n"
    return text


def invariants(ctx):
    rows = []
    for sale, ok, v in ctx.invariants:
        orders = v.get("orders", "–")
        if isinstance(orders, dict):
            orders = ", ".join(f"{k} {n:,}" for k, n in sorted(orders.items())) or "none"
        rows.append([sale, "ok" if ok else "**BROKEN**", fmt(v.get("stock")), fmt(v.get("sold")),
                     fmt(v.get("reserved")), orders, fmt(v.get("tickets_decided", v.get("decided"))),
                     fmt(v.get("oversold")), fmt(v.get("double_charges")), fmt(v.get("finalized_twice")),
                     fmt(v.get("in_flight")), "; ".join(v.get("violations", [])) or "none"])
    return table(["sale", "I1–I4", "stock", "sold", "reserved", "orders", "tickets decided", "oversold",
                  "double charges", "finalized twice", "in flight", "violations"], rows)


def chart(ctx, path):
    """One column per kind of load (browse, healthz, door, poll, webhook, flash): requests
    a second on top, p99 (solid) and p50 (dotted) latency below, each phase from its start."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    groups = {}
    for p in ctx.phases:
        if p.get("series"):
            groups.setdefault(p["phase"].split("-")[0], []).append(p)
    if not groups:
        return False
    fig, axes = plt.subplots(2, len(groups), figsize=(4.2 * len(groups) + 1, 7), squeeze=False)
    for column, (group, members) in enumerate(groups.items()):
        top, bottom = axes[0][column], axes[1][column]
        for p in members:
            t0 = p["series"][0][0]
            t = [s[0] - t0 for s in p["series"]]
            line, = top.plot(t, [s[1] for s in p["series"]], label=p["phase"])
            bottom.plot(t, [s[3] or 0 for s in p["series"]], color=line.get_color())
            bottom.plot(t, [s[2] or 0 for s in p["series"]], color=line.get_color(), linestyle=":")
        top.set_title(group)
        top.legend(fontsize=7)
        top.set_ylim(bottom=0)
        bottom.set_yscale("log")
        bottom.set_xlabel("seconds into the phase")
        for axis in (top, bottom):
            axis.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("main requests / s")
    axes[1][0].set_ylabel("latency ms (p99 solid, p50 dotted)")
    fig.suptitle(f"flashgate {ctx.scenario} ({ctx.mode.name}, {os.cpu_count()} cores, {ctx.stack.profile} build)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return True


def first_second(ctx):
    """Issue 18: the crowd driver's flash sale (flashgate, the textbook, flashgate with its
    workers paused) and the spikes."""
    f = ctx.first_second
    runs = [(label, f[key]) for label, key in (("flashgate", "flashgate"), ("textbook checkout", "baseline"),
                                                ("flashgate, workers paused", "paused")) if f.get(key)]

    def q(r, name):
        v = r["crowd"][name]
        return f"{fmt(v['p50_ms'], 1)} / {fmt(v['p99_ms'], 1)}"

    def outcomes(r):
        return ", ".join(f"{k} {fmt(v)}" for k, v in sorted(r["crowd"]["outcomes"].items()))

    def cpu(r):
        c = r["cpu"]
        server = c["flashgate"] if r["system"] == "flashgate" else c.get("other", 0.0)
        return f"{fmt(server)} s / {fmt(c['driver'] / max(r['crowd']['requests'], 1) * 1e6, 1)} µs"

    rows = [
        ["shoppers arrived / answered"] + [f"{fmt(r['crowd']['arrivals'])} / {fmt(r['crowd']['answered'])}"
                                           for _, r in runs],
        ["time to a first answer p50 / p99 ms"] + [q(r, "first_answer") for _, r in runs],
        ["every answer p50 / p99 ms (from its request)"] + [q(r, "answers") for _, r in runs],
        ["time to a ticket p50 / p99 ms"] + [q(r, "to_ticket") if r["system"] == "flashgate" else "–"
                                              for _, r in runs],
        ["time to the final answer p50 / p99 ms"] + [q(r, "to_final") for _, r in runs],
        ["outcomes"] + [outcomes(r) for _, r in runs],
        ["requests (no answer) / connections opened"] + [
            f"{fmt(r['crowd']['requests'])} ({fmt(r['crowd']['errors'])}) / {fmt(r['crowd'].get('connections'))}"
            for _, r in runs],
        ["CPU: flashgate (textbook: outside flashgate) / driver per request"] + [cpu(r) for _, r in runs],
    ]
    for what in ("tickets 202", "tickets 410", "polls", "broker confirms"):
        cells = [(r.get("server") or {}).get(what) for _, r in runs]
        if any(cells):
            rows.append([f"as the door saw it: {what} (count, p50 / p99 ≤ bucket)"] + [
                f"{q['count']:,}, ≤ {fmt(q['p50_le_ms'])} / ≤ {fmt(q['p99_le_ms'])} ms" if q else "–" for q in cells])
    rows.append(["command"] + [f"`{r['command']}`" for _, r in runs])
    text = table(["flash sale, crowd driver"] + [label for label, _ in runs], rows)
    spikes = []
    for spike in f.get("spikes", []):
        for label, r in (("flashgate", spike["flashgate"]), ("textbook", spike["baseline"]),
                         ("flashgate, workers paused", spike.get("paused")),
                         ("the door's `/healthz` (floor)", spike.get("healthz"))):
            if not r:
                continue
            c = r["crowd"]
            spikes.append([f"{spike['factor']}× ({fmt(int(spike['rate']))}/s, stock {fmt(spike['stock'])})", label,
                           fmt(c["arrivals"]), f"{100.0 * c['answered'] / max(c['arrivals'], 1):.1f}%"
                           + (f" ({fmt(c['answered_after_5xx'])} after a 5xx)" if c.get("answered_after_5xx") else ""),
                           q(r, "first_answer") + (f" (driver late p99 {fmt(c['driver_late']['p99_ms'])})"
                                                   if c.get("driver_late") else ""),
                           q(r, "to_final"), outcomes(r),
                           f"{fmt(c['requests'])} ({fmt(c['errors'])}): "
                           + ", ".join(f"{k} {fmt(v)}" for k, v in sorted(c["statuses"].items()))
                           + f"; {fmt(c.get('connections'))}"])
    if spikes:
        text += (f"\nSpikes: a step to a multiple of the textbook's sustainable "
                 f"{fmt(f['textbook_sales_per_sec'])} sales/s (closed loop, saved card charged in the request) "
                 "for the run's spike seconds, with the stock the textbook sells in that time.\n\n")
        text += table(["spike", "system", "shoppers", "answered", "first answer p50 / p99 ms",
                       "final answer p50 / p99 ms", "outcomes",
                       "requests (no answer): by status; connections opened"], spikes)
    m = f.get("medusa")
    if m:
        k, sold = m["k6"], m["sold"]
        c, t = k.get("counters", {}), k.get("trends", {}).get("time_to_final", {})
        outcomes = ", ".join(f"{name[len('outcome_'):]} {fmt(v)}" for name, v in sorted(c.items())
                             if name.startswith("outcome_") and v)
        text += (f"\nMedusa v2 under the same arrivals (k6, five store API requests a shopper: cart, line item, "
                 f"payment collection, `pp_system_default` session, complete; {k['command']}): "
                 f"{outcomes or 'no outcome'}; 409 conflicts retried {fmt(c.get('medusa_conflicts', 0))}; "
                 f"first request p50 / p99 {fmt(k.get('p50'), 1)} / {fmt(k.get('p99'), 1)} ms; time to the final "
                 f"answer p50 / p99 {fmt(t.get('med'), 1)} / {fmt(t.get('p(99)'), 1)} ms; k6 dropped "
                 f"{fmt(c.get('dropped_iterations', 0))} arrivals; Medusa's CPU (outside flashgate) "
                 f"{fmt(k['cpu'].get('other', 0.0))} s; its database: {fmt(sold['orders'])} orders, "
                 f"{fmt(sold['units'])} units of {fmt(sold['stocked'])}, oversold: {'**yes**' if sold['oversold'] else 'no'}.\n")
    return text


def steer(ctx):
    s = ctx.steer
    runs = s["runs"]
    order = [r for r in ("fixed", "steered") if r in runs]

    def row(label, value):
        return [label] + [value(runs[r]) for r in order]

    def counter(name):
        return lambda r: fmt(r["k6"].get("counters", {}).get(name, 0))

    def trend(name):
        def cell(r):
            v = r["k6"].get("trends", {}).get(name, {})
            return f"{fmt(v.get('med'), 1)} / {fmt(v.get('p(99)'), 1)}"
        return cell

    rows = [
        row("units paid (stock)", lambda r: f"{fmt(r['paid'])} ({s['stock']})"),
        row("time to sell out: first order to last payment", lambda r: f"{r['sell_out_ms'] / 1000:,.1f} s"),
        row("refused at the door and retried (429/503)", counter("door_throttled")),
        row("resent: connection closed under the request, no answer", counter("resent_after_close")),
        row("sold out at the door (410) / after queueing", lambda r: f"{counter('outcome_sold_out_at_door')(r)} / "
                                                                     f"{counter('outcome_sold_out')(r)}"),
        row("expired holds", lambda r: fmt(r["expired"])),
        row("gave up / stuck past the deadline", lambda r: f"{counter('outcome_gave_up')(r)} / "
                                                           f"{counter('shoppers_stuck')(r)}"),
        row("time to a ticket p50 / p99 ms", trend("time_to_ticket")),
        row("time to the final answer p50 / p99 ms", trend("time_to_final")),
        row("controller decisions (rates set)", lambda r: f"{r['decisions']}" + (
            f" ({r['rate_low']}–{r['rate_high']}/s)" if r["decisions"] else "")),
    ]
    c = s["controller"]
    head = (f"Stripe answering every call {s['faults']['latency_ms']} ms late and {s['faults']['server_error_share']:.0%} "
            f"of them 500; arrivals up to {s['peak']}/s; fixed rate {s['fixed_rate']}/s against the controller "
            f"(min {c['min_rate']}, max {c['max_rate']}, step {c['step']}, decrease to {c['decrease_percent']}%, "
            f"payment backlog bound {c['max_payment_backlog']}).\n\n")
    return head + table(["slow downstream", "fixed rate", "controller"][:len(order) + 1], rows)


def write(ctx, results_dir):
    os.makedirs(results_dir, exist_ok=True)
    stem = f"{ctx.scenario}-{ctx.started.strftime('%Y%m%d-%H%M%S')}"
    png = f"{stem}.png"
    verdict = "PASS" if not ctx.failures else "FAIL"
    parts = [f"# flashgate load test: {ctx.scenario} ({ctx.mode.name})\n",
             f"**{verdict}**" + (": " + "; ".join(ctx.failures) if ctx.failures else
                                 ": every k6 threshold held and every invariant holds") + "\n",
             machine(ctx)]
    sections = [("Goals", goals(ctx)), ("Phases", phases(ctx) if ctx.phases else ""),
                ("Peak memory by phase", memory(ctx)),
                ("Limits measured in this run", limits(ctx)),
                ("Ceilings: why the dropped throughput goals were out of reach, from this run's CPU costs", ceilings(ctx)),
                ("Reservations (issue 4)", reservations(ctx) if ctx.reserve else ""),
                ("Flash sale against the textbook checkout", flash(ctx) if ctx.flash else ""),
                ("The shoppers' first second: the crowd driver (issue 18)",
                 first_second(ctx) if ctx.first_second else ""),
                ("Webhook storm", storm(ctx) if ctx.storm else ""),
                ("The opening with a pre-queue (issue 14)", opening(ctx) if ctx.opening else ""),
                ("A slow downstream: fixed rate against the controller (issue 16)", steer(ctx) if ctx.steer else ""),
                ("Invariants, checked in PostgreSQL and the emulator", invariants(ctx) if ctx.invariants else "")]
    for title, body in sections:
        if body:
            parts.append(f"## {title}\n\n{body}")
    if ctx.notes:
        parts.append("## Notes\n\n" + "\n".join(f"- {n}" for n in ctx.notes) + "\n")
    if chart(ctx, os.path.join(results_dir, png)):
        parts.append(f"## Throughput and latency over the run\n\n![throughput and latency]({png})\n")
    text = "\n".join(parts)
    path = os.path.join(results_dir, f"{stem}.md")
    with open(path, "w") as f:
        f.write(text)
    shutil.copyfile(path, os.path.join(results_dir, "latest.md"))
    return path, text
