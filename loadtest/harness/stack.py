"""The system under test: release (or debug) binaries, a fresh database, its own AMQP
and Redis prefixes, the Stripe emulator on a fixed port, each flashgate role as its own
process, and the baseline service, all on loopback."""

import json
import os
import subprocess
import urllib.request

import procs
from settings import (AMQP_PREFIX, DATABASE, DATABASE_URL, HOST, PORTS, REDIS_PREFIX,
                      RESERVE_AMQP_PREFIX, RESERVE_DATABASE, RESERVE_DATABASE_URL, RESERVE_REDIS_PREFIX, url)

ROLES = ("admission", "worker", "webhook", "catalog")
# The binaries a run uses, each built from the package of the same name.
PACKAGES = ("flashgate", "flashgate-baseline", "flashgate-loadtools")
# Quiet NOTICEs (DROP … IF EXISTS of what is not there) in every psql and pgbench run.
os.environ["PGOPTIONS"] = "-c client_min_messages=warning"
PSQL = ["psql", "-h", HOST, "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-qtA"]


OVERRIDE_PREFIX = "LOADTEST_FLASHGATE_"


def overrides():
    """Settings an experiment changes: `LOADTEST_FLASHGATE_X=v` runs flashgate with
    `FLASHGATE_X=v` (the report's command line shows them)."""
    return {k[len("LOADTEST_"):]: v for k, v in os.environ.items() if k.startswith(OVERRIDE_PREFIX)}


class Stack:
    """Binaries, environment and running processes of one run."""

    def __init__(self, root, profile, secrets, work, supervisor):
        target = os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target"))
        self.bin_dir = os.path.join(target, profile)
        self.root, self.profile, self.secrets, self.work = root, profile, secrets, work
        self.supervisor = supervisor
        self.pids = {}  # flashgate role → pid

    def binary(self, name):
        return os.path.join(self.bin_dir, name)

    def missing(self):
        """The binaries a run needs that are not built (for `--no-build`)."""
        return [name for name in PACKAGES if not os.access(self.binary(name), os.X_OK)]

    def build(self):
        argv = ["cargo", "build", "--quiet"] + [arg for name in PACKAGES for arg in ("-p", name)]
        if self.profile == "release":
            argv.insert(2, "--release")
        print(f"run: building ({self.profile}): {' '.join(argv)}", flush=True)
        subprocess.run(argv, cwd=self.root, check=True, timeout=3600)

    def env(self, amqp_prefix=AMQP_PREFIX, redis_prefix=REDIS_PREFIX, database_url=DATABASE_URL):
        """The flashgate configuration of this run, as environment variables."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHGATE_")}
        env.update({
            "NO_COLOR": "1",
            "FLASHGATE_DATABASE__URL": database_url,
            "FLASHGATE_AMQP__PREFIX": amqp_prefix,
            "FLASHGATE_REDIS__PREFIX": redis_prefix,
            "FLASHGATE_ADMIN_TOKEN": self.secrets.admin_token,
            "FLASHGATE_ADMISSION__TICKET_SECRET": self.secrets.ticket_secret,
            "FLASHGATE_ADMISSION__LISTEN": f"{HOST}:{PORTS['admission']}",
            "FLASHGATE_CATALOG__LISTEN": f"{HOST}:{PORTS['catalog']}",
            "FLASHGATE_WEBHOOK__LISTEN": f"{HOST}:{PORTS['webhook']}",
            "FLASHGATE_WORKER__LISTEN": f"{HOST}:{PORTS['workers']}",
            # All the load comes from 127.0.0.1: the per-address limit would meter k6 itself.
            "FLASHGATE_ADMISSION__PER_ADDRESS__PER_SECOND": "0",
            "FLASHGATE_ADMISSION__PER_ADDRESS__BURST": "0",
            # The same for signed-in shoppers and sales asking for proof of work.
            "FLASHGATE_ADMISSION__IDENTITY__PER_ADDRESS__PER_SECOND": "0",
            "FLASHGATE_ADMISSION__IDENTITY__PER_ADDRESS__BURST": "0",
            "FLASHGATE_WORKER__SWEEP_INTERVAL_MS": "250",
            # One access-log line per request would cost the measured roles CPU at these rates.
            "FLASHGATE_TELEMETRY__LOG_FILTER": "info,sqlx=warn,lapin=warn,hyper=warn,stripe=error,flashgate::access=off",
            "FLASHGATE_STRIPE__API_KEY": "sk_test_loadtest",
            "FLASHGATE_STRIPE__BASE_URL": f"{url('stripe')}/",
            "FLASHGATE_WEBHOOK__SECRETS": f"[{self.secrets.webhook_secret}]",
            "FLASHGATE_STRIPE_SIM__LISTEN": f"{HOST}:{PORTS['stripe']}",
            "FLASHGATE_STRIPE_SIM__WEBHOOK_URL": f"{url('webhook')}/v1/stripe/webhook",
            "FLASHGATE_STRIPE_SIM__WEBHOOK_SECRET": self.secrets.webhook_secret,
        })
        env.update(overrides())
        return env

    def reserve_env(self):
        return self.env(RESERVE_AMQP_PREFIX, RESERVE_REDIS_PREFIX, RESERVE_DATABASE_URL)

    def fresh_state(self):
        """New databases (the stack's and the reserve bench's), no keys under our Redis
        prefixes, no queues under our AMQP ones."""
        busy = [name for name, port in PORTS.items() if procs.listening(port)]
        if busy:
            raise RuntimeError(f"ports already in use ({', '.join(busy)}): is another load run going?")
        for database in (DATABASE, RESERVE_DATABASE):
            drop = f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'
            subprocess.run(PSQL + ["-d", "postgres", "-c", drop], check=True, timeout=60)
            subprocess.run(PSQL + ["-d", "postgres", "-c", f'CREATE DATABASE "{database}"'], check=True,
                           timeout=60)
        for prefix in (REDIS_PREFIX, RESERVE_REDIS_PREFIX):
            delete_redis_keys(prefix)
        for env in (self.env(), self.reserve_env()):
            subprocess.run([self.binary("flashgate-loadtools"), "reset-queues"], env=env, check=True,
                           timeout=60, stdout=subprocess.DEVNULL)
        for env in (self.env(), self.reserve_env()):
            subprocess.run([self.binary("flashgate"), "migrate"], env=env, check=True, timeout=120,
                           stdout=subprocess.DEVNULL)

    def start(self):
        """The emulator, each flashgate role in its own process (so every role's CPU is
        measured apart and the door's /healthz is the door's own), and the baseline with
        its own emulator (its own Stripe account, webhooks to it alone)."""
        env = self.env()
        sim = self.supervisor.start("stripe-sim", [self.binary("flashgate"), "stripe-sim"], env)
        procs.wait_http(f"{url('stripe')}/_sim/stats", 30, lambda: sim.poll() is None)
        for role in ROLES:
            child = self.supervisor.start(f"flashgate-{role}", [self.binary("flashgate"), role], env)
            self.pids[role] = child.pid
            port = "workers" if role == "worker" else role
            procs.wait_http(f"{url(port)}/readyz", 60, lambda: child.poll() is None)
        baseline_secret = "whsec_baseline_load"
        sim_env = dict(env, FLASHGATE_STRIPE_SIM__LISTEN=f"{HOST}:{PORTS['baseline_stripe']}",
                       FLASHGATE_STRIPE_SIM__WEBHOOK_URL=f"{url('baseline')}/webhook",
                       FLASHGATE_STRIPE_SIM__WEBHOOK_SECRET=baseline_secret)
        baseline_sim = self.supervisor.start("baseline-stripe-sim", [self.binary("flashgate"), "stripe-sim"], sim_env)
        procs.wait_http(f"{url('baseline_stripe')}/_sim/stats", 30, lambda: baseline_sim.poll() is None)
        baseline_env = dict(env, BASELINE_LISTEN=f"{HOST}:{PORTS['baseline']}",
                            BASELINE_DATABASE_URL=DATABASE_URL, BASELINE_STRIPE_URL=url("baseline_stripe"),
                            BASELINE_WEBHOOK_SECRET=baseline_secret)
        baseline = self.supervisor.start("baseline", [self.binary("flashgate-baseline")], baseline_env)
        procs.wait_http(f"{url('baseline')}/healthz", 30, lambda: baseline.poll() is None)
        subprocess.run([self.binary("flashgate"), "seed", "--sale", "lt-seed", "--stock", "10",
                        "--products", "100"], env=env, check=True, timeout=120, stdout=subprocess.DEVNULL)

    def save_metrics(self, label):
        """Each role's Prometheus /metrics, kept in the work folder for digging."""
        for role in ROLES:
            port = "workers" if role == "worker" else role
            try:
                with urllib.request.urlopen(f"{url(port)}/metrics", timeout=5) as response:
                    body = response.read()
            except OSError:
                continue
            with open(os.path.join(self.work, f"metrics-{label}-{role}.txt"), "wb") as f:
                f.write(body)

    def sql(self, query, database=DATABASE):
        """Rows of `query` in the load-test database (or `database`), as lists of strings."""
        out = subprocess.run(PSQL + ["-F", "\t", "-d", database, "-c", query], check=True, timeout=60,
                             capture_output=True, text=True).stdout
        return [line.split("\t") for line in out.splitlines() if line]

    def verify(self, sale):
        """`flashgate verify` of one sale against PostgreSQL and the emulator: (ok, verdict)."""
        out = subprocess.run([self.binary("flashgate"), "verify", sale, "--stripe-sim", url("stripe")],
                             env=self.env(), capture_output=True, text=True, timeout=120)
        try:
            verdict = json.loads(out.stdout)
        except json.JSONDecodeError:
            verdict = {"violations": [f"verify failed: {out.stderr.strip()[-500:]}"]}
        return out.returncode == 0 and not verdict.get("violations"), verdict


def delete_redis_keys(prefix):
    keys = subprocess.run(["redis-cli", "-h", HOST, "--scan", "--pattern", f"{prefix}*"], check=True,
                          capture_output=True, text=True, timeout=120).stdout.split()
    for start in range(0, len(keys), 500):
        subprocess.run(["redis-cli", "-h", HOST, "DEL"] + keys[start:start + 500], check=True,
                       stdout=subprocess.DEVNULL, timeout=60)
