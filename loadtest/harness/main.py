"""loadtest/run: builds, brings up a private flashgate stack, runs scenarios, checks the
invariants, writes the report, and exits non-zero if a k6 threshold or an invariant
broke (or, with --strict, a goal was missed). See loadtest/README.md."""

import argparse
import datetime
import os
import signal
import subprocess
import sys
import traceback

import crowd
import invariants
import report
import scenarios
from procs import Supervisor
from settings import FULL, SCENARIOS, SHORT, Secrets
import stack
from stack import ROLES, Stack

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ORDER = ["browse", "door", "poll", "reserve", "webhook-storm", "flash-sale", "first-second", "opening", "steer"]
# Every scenario by name (the first second lives in its own module, which uses scenarios').
RUN = dict(scenarios.RUN, **{"first-second": crowd.first_second})


class Context:
    """What a run knows: its settings, its stack, and everything it measured."""

    def __init__(self, args, command):
        self.root, self.scenario, self.command = ROOT, args.scenario, command
        self.mode = SHORT if args.short else FULL
        self.strict = args.strict
        self.secrets = Secrets()
        self.started = datetime.datetime.now(datetime.timezone.utc)
        target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
        self.work = os.path.join(target, "loadtest", f"{self.scenario}-{self.started:%Y%m%d-%H%M%S}")
        os.makedirs(self.work, exist_ok=True)
        self.k6 = os.path.join(ROOT, ".venv", "bin", "k6")
        self.k6_dir = os.path.join(ROOT, "loadtest", "k6")
        self.supervisor = Supervisor(self.work)
        self.stack = Stack(ROOT, args.profile or ("debug" if args.short else "release"), self.secrets, self.work,
                           self.supervisor)
        self.phases, self.limits, self.reserve, self.flash, self.storm = [], {}, {}, None, None
        self.opening = None
        self.steer = None
        self.first_second = None
        self.peak_rss = {}  # child process name → peak RSS, MiB
        self.memory = []  # (phase, or "before <phase>", {child process name → peak RSS in it, MiB})
        self.goals, self.invariants, self.failures, self.notes = [], [], [], []
        self.sales, self.bench_sales = {}, False
        self.busy_at_start, self.load_at_start, self.commit = None, "", ""

    def fail(self, message):
        print(f"run: FAIL: {message}", flush=True)
        self.failures.append(message)

    def memory_peaks(self, label):
        """Records each process's peak resident memory since the last call as `label`'s."""
        self.memory.append((label, self.supervisor.take_peaks()))

    def note(self, message):
        self.notes.append(message)

    def goal(self, key, measured, how):
        self.goals.append((key, measured, how))

    def invariant(self, sale, ok, verdict):
        self.invariants.append((sale, ok, verdict))
        if not ok:
            self.fail(f"invariants broken on {sale}: {'; '.join(verdict.get('violations', []))}")


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="loadtest/run", description=__doc__)
    parser.add_argument("scenario", choices=SCENARIOS + ["all"])
    parser.add_argument("--short", action="store_true", help="seconds per phase, small numbers (CI)")
    parser.add_argument("--profile", choices=["release", "debug"],
                        help="cargo profile to build and run (default: release; debug with --short)")
    parser.add_argument("--strict", action="store_true", help="also fail when a goal is missed")
    parser.add_argument("--no-build", action="store_true", help="use the binaries already built")
    parser.add_argument("--results", help="report folder (default: loadtest/results, or results/short "
                                          "with --short)")
    return parser.parse_args(argv)


def describe_machine(ctx):
    rustc = subprocess.run(["pgrep", "-x", "rustc"], capture_output=True, text=True).stdout.split()
    if rustc:
        ctx.busy_at_start = f"{len(rustc)} rustc process(es) were running"
    with open("/proc/loadavg") as f:
        ctx.load_at_start = " ".join(f.read().split()[:3])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
    ctx.commit = (commit.stdout.strip() or "unknown") + (" with uncommitted changes" if dirty.strip() else "")


def run(ctx):
    ctx.stack.fresh_state()
    ctx.stack.start()
    names = ORDER if ctx.scenario == "all" else [ctx.scenario]
    for name in names:
        RUN[name](ctx)
        ctx.stack.save_metrics(name)
        dead = ctx.supervisor.check_alive()
        if dead:
            raise RuntimeError(f"{', '.join(dead)} exited during {name} (logs in {ctx.work})")
    invariants.check_all(ctx)
    ctx.memory_peaks("after the last phase (the sales settle, the invariants are checked)")
    ctx.peak_rss = ctx.supervisor.peak_rss_mb()
    for role in ROLES:
        if f"flashgate-{role}" in ctx.peak_rss:
            ctx.goal(f"peak_rss_{role}_mb", ctx.peak_rss[f"flashgate-{role}"],
                     f"peak resident memory (VmHWM) of the {role} process over the run")
    if ctx.peak_rss:
        ctx.note("peak resident memory (VmHWM, MiB) of every process the run started: " + ", ".join(
            f"{name} {mb:,.1f}" for name, mb in sorted(ctx.peak_rss.items())))


def operate(argv):
    """`cluster up|down|status` and `chaos`: their own arguments, the same binaries."""
    import chaos
    import cluster
    parser = argparse.ArgumentParser(prog=f"loadtest/run {argv[0]}")
    parser.add_argument("rest", nargs="*")
    parser.add_argument("--short", action="store_true", help="chaos: a few faults, a small sale (CI)")
    parser.add_argument("--seed", type=int, help="chaos: the nemesis schedule's seed (default: random)")
    parser.add_argument("--profile", choices=["release", "debug"],
                        help="binaries to run (default: release; debug with --short)")
    parser.add_argument("--no-build", action="store_true", help="use the binaries already built")
    args = parser.parse_args(argv[1:])
    os.chdir(ROOT)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    binaries = Stack(ROOT, args.profile or ("debug" if args.short else "release"), None, None, None)
    needs_binaries = argv[0] == "chaos" or args.rest[:1] in (["up"], ["scale"])
    if needs_binaries and not args.no_build:
        binaries.build()
    if argv[0] == "cluster":
        return cluster.main(args.rest, binaries.bin_dir, args.short)
    return chaos.main(args, binaries.bin_dir, ROOT)


def main(argv):
    if argv and argv[0] in ("cluster", "chaos"):
        return operate(argv)
    args = parse_args(argv)
    settings = " ".join(f"LOADTEST_{k}={v}" for k, v in sorted(stack.overrides().items()))
    ctx = Context(args, (settings + " " if settings else "") + "loadtest/run " + " ".join(argv))
    os.chdir(ROOT)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not args.no_build:
        ctx.stack.build()
    elif missing := ctx.stack.missing():
        sys.exit(f"run: --no-build, but not built ({ctx.stack.profile}): {', '.join(missing)} "
                 f"in {ctx.stack.bin_dir}; run without --no-build once")
    describe_machine(ctx)
    if ctx.busy_at_start:
        print(f"run: note: {ctx.busy_at_start}; numbers will be skewed", flush=True)
    try:
        run(ctx)
    except (Exception, KeyboardInterrupt, SystemExit) as e:
        with open(os.path.join(ctx.work, "error.log"), "w") as f:
            traceback.print_exc(file=f)
        ctx.fail(f"run aborted: {e!r} (logs in {ctx.work})")
    finally:
        ctx.supervisor.stop_all()
    if ctx.strict:
        for key, measured, how in ctx.goals:
            op, target = report.GOALS[key]
            if measured is None or not (measured >= target if op == ">=" else measured <= target):
                ctx.fail(f"goal missed: {key} = {measured} ({how}), target {op} {target}")
    default = os.path.join(ROOT, "loadtest", "results", "short" if args.short else "")
    path, text = report.write(ctx, os.path.abspath(args.results or default))
    print("\n" + text)
    print(f"run: report written to {os.path.relpath(path, ROOT)}; logs in {ctx.work}")
    return 1 if ctx.failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
