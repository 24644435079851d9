"""Everything a run is sized by: ports, names, and the short and full modes' numbers.

Short mode is for CI and for checking the harness: seconds per phase, small crowds,
loose latency thresholds that only catch breakage. Full mode is for people, on a
quiet machine.
"""

import os
import secrets
from dataclasses import dataclass, field

HOST = "127.0.0.1"
PORTS = {
    "admission": 18080,
    "catalog": 18081,
    "webhook": 18082,
    "workers": 18083,
    "baseline": 18090,
    "reserve_worker": 18093,
    "stripe": 18120,
    # The baseline's own Stripe account: the same emulator, another process, so neither
    # system receives the other's webhooks.
    "baseline_stripe": 18121,
}
DATABASE = "flashgate_load"
DATABASE_URL = f"postgres://postgres@{HOST}:5432/{DATABASE}"
AMQP_PREFIX = "lt."
REDIS_PREFIX = "lt:"
# The reserve bench's own database: its hundreds of thousands of orders, reserved and never
# paid, would otherwise be the stack's worker's to ask to pay (`maintenance/unasked.rs`)
# through the emulator for the rest of the run, in the scenarios after it.
RESERVE_DATABASE = "flashgate_load_reserve"
RESERVE_DATABASE_URL = f"postgres://postgres@{HOST}:5432/{RESERVE_DATABASE}"
RESERVE_AMQP_PREFIX = "ltr."
RESERVE_REDIS_PREFIX = "ltr:"
SCENARIOS = ["door", "poll", "browse", "reserve", "flash-sale", "first-second", "webhook-storm", "opening", "steer"]


def url(role):
    return f"http://{HOST}:{PORTS[role]}"


@dataclass
class Mode:
    """The numbers of one mode."""

    name: str
    concurrency: int  # closed-loop VUs, and redis-benchmark's -c
    max_secs: int  # closed-loop phases (the sustainable rate)
    rate_secs: int  # open-loop phases at 80% of it
    poll_tickets: int
    door_stock: int
    p99_limit_ms: int  # breakage thresholds of door, poll, browse, storm
    k6_rate: int = 300  # arrivals/s of the k6 door, poll and browse scenarios
    flash: dict = field(default_factory=dict)
    storm: dict = field(default_factory=dict)
    reserve_tickets: int = 0
    lock_requests: int = 0
    pgbench_secs: int = 0
    redis_requests: int = 0
    settle_secs: int = 120
    # The opening (issue 14): shoppers pre-queued, shoppers in each with/without run,
    # the proof-of-work difficulty, stock.
    opening: dict = field(default_factory=dict)
    # The admission controller (issue 16): the flash sale against a slow, failing Stripe,
    # once at a fixed rate and once steered; the emulator's faults and the bounds.
    steer: dict = field(default_factory=dict)
    # The shoppers' first second (issue 18), driven by the crowd driver: the flash sale's
    # arrivals (and the deadline of the run with the workers paused), then spikes at these
    # multiples of the textbook's sustainable sales/s, each SPIKE_S long with the stock the
    # textbook sells in that time.
    crowd: dict = field(default_factory=dict)

    @property
    def open_connections(self):
        """Connections of an open loop: four times the closed loop's (as many as the k6 open
        loops may use VUs), so each connection is busy a fifth of the time at 80% and the
        arrivals stay independent: a slow answer delays the requests scheduled behind it on
        its connection, and with 50 connections each busy 80% of the time that queue, not the
        server, would set the tail. `LOADTEST_OPEN_CONNECTIONS` overrides it."""
        return int(os.environ.get("LOADTEST_OPEN_CONNECTIONS") or self.concurrency * 4)


SHORT = Mode(
    name="short", concurrency=50, max_secs=5, rate_secs=5, poll_tickets=200, door_stock=20,
    p99_limit_ms=3000, k6_rate=300,
    flash=dict(PEAK=150, RAMP_S=2, HOLD_S=3, STOCK=100, MAX_VUS=400, SALE_RATE=2000,
               SALE_BURST=500, SHOPPER_DEADLINE_S=60, GRACE_S=70, P99_LIMIT_MS=30000),
    storm=dict(SHOPPERS=24, RATE=100, DURATION_S=5),
    reserve_tickets=2000, lock_requests=1000, pgbench_secs=3, redis_requests=20000,
    opening=dict(PREQUEUED=1000, COMPARE=500, POW_BITS=8, STOCK=100),
    # Short: a smoke run (Stripe slowed, not drowned), so the harness and the controller's
    # wiring are exercised in CI; the comparison is the full mode's.
    steer=dict(PEAK=80, RAMP_S=2, HOLD_S=10, STOCK=400, MAX_VUS=1500, SALE_RATE=200, SALE_BURST=50,
               HOLD_SECONDS=30, SHOPPER_DEADLINE_S=150, GRACE_S=160, P99_LIMIT_MS=150000, LATENCY_MS=400,
               ERROR_SHARE=0.1,
               CONTROLLER=dict(min_rate=10, max_rate=200, step=10, decrease_percent=50,
                               max_payment_backlog=20)),
    # Short: no Medusa (a smoke run of the harness; the comparison is the full mode's).
    crowd=dict(PEAK=150, RAMP_S=2, HOLD_S=3, STOCK=100, PAUSED_DEADLINE_S=5, SPIKES=(2,), SPIKE_S=2,
               MEDUSA=False),
)

FULL = Mode(
    name="full", concurrency=50, max_secs=20, rate_secs=20, poll_tickets=2000, door_stock=100,
    p99_limit_ms=1000, k6_rate=1000,
    flash=dict(PEAK=2000, RAMP_S=5, HOLD_S=10, STOCK=2000, MAX_VUS=3000, SALE_RATE=2000,
               SALE_BURST=500, SHOPPER_DEADLINE_S=60, GRACE_S=70, P99_LIMIT_MS=10000),
    storm=dict(SHOPPERS=100, RATE=500, DURATION_S=30),
    reserve_tickets=200000, lock_requests=20000, pgbench_secs=15, redis_requests=500000,
    settle_secs=240,
    opening=dict(PREQUEUED=20000, COMPARE=5000, POW_BITS=12, STOCK=2000),
    steer=dict(PEAK=300, RAMP_S=5, HOLD_S=30, STOCK=4000, MAX_VUS=6000, SALE_RATE=2000, SALE_BURST=500,
               HOLD_SECONDS=30, SHOPPER_DEADLINE_S=240, GRACE_S=250, P99_LIMIT_MS=240000, LATENCY_MS=1500,
               ERROR_SHARE=0.2,
               CONTROLLER=dict(min_rate=20, max_rate=2000, step=20, decrease_percent=50,
                               max_payment_backlog=100)),
    crowd=dict(PEAK=2000, RAMP_S=5, HOLD_S=10, STOCK=2000, PAUSED_DEADLINE_S=20, SPIKES=(5, 20), SPIKE_S=10,
               MEDUSA=True, MEDUSA_MAX_VUS=3000, MEDUSA_DEADLINE_S=60),
)

# The goals of issues 3, 4 and 6: (ratio or latency, comparison, target).
GOALS = {
    "door_p99_at_80pct_ms": ("<=", 50.0),
    "poll_p99_at_80pct_ms": ("<=", 50.0),
    "reads_vs_catalog_healthz": (">=", 0.9),
    "reads_p99_at_80pct_ms": ("<=", 5.0),
    "reserve_vs_lock_baseline": (">=", 20.0),
    "reserve_vs_pgbench_batched": (">=", 0.5),
    "reserve_packed_vs_lock_baseline": (">=", 20.0),
    "reserve_packed_vs_pgbench_batched": (">=", 0.5),
    # Issue 18's 0.7× of the database's limit, against the limit for the worker's own
    # writes (a ticket and an order row, eight index entries a unit) rather than
    # batched.sql's one order row.
    "reserve_vs_pgbench_flashgate": (">=", 0.7),
    "reserve_packed_vs_pgbench_flashgate": (">=", 0.7),
    # Issue 14: the opening of a sale with a crowd in its pre-queue.
    "opening_every_shopper_placed_ms": ("<=", 5000.0),
    "prequeue_rate_identity_vs_off": (">=", 0.8),
    "prequeue_rate_pow_vs_off": (">=", 0.8),
    # Issue 18: the door's CPU per request against a request that does nothing.
    "door_cpu_ticket_vs_healthz": ("<=", 2.0),
    "door_cpu_poll_vs_healthz": ("<=", 1.5),
    "door_cpu_refusal_vs_healthz": ("<=", 1.2),
    # Issue 18: the shoppers' first second.
    "flash_first_answer_p99_vs_textbook": ("<=", 0.5),
    "door_p99_full_vs_workers_paused": ("<=", 2.0),
    "spike_2x_answered": (">=", 1.0),  # the short mode's smoke spike
    "spike_2x_first_answer_p99_ms": ("<=", 1000.0),
    "spike_5x_answered": (">=", 1.0),
    "spike_5x_first_answer_p99_ms": ("<=", 1000.0),
    "spike_20x_answered": (">=", 1.0),
    "spike_20x_first_answer_p99_ms": ("<=", 1000.0),
    "peak_rss_admission_mb": ("<=", 100.0),
    "peak_rss_worker_mb": ("<=", 100.0),
    "peak_rss_worker_draining_mb": ("<=", 100.0),
    "peak_rss_webhook_mb": ("<=", 100.0),
    "peak_rss_catalog_mb": ("<=", 100.0),
}
# Goals dropped by issue 18 as out of reach on any HTTP stack here (the report keeps their
# ceilings as the explanation): what they asked.
DROPPED_GOALS = {"tickets_vs_healthz": 0.5, "polls_vs_healthz": 0.7, "reads_vs_redis_get": 1.0}
# Tickets a message in the reserve bench's packed run: what the door's group commit packed
# on average over the whole door scenario with the default settings (332,409 tickets in
# 41,014 messages, 8.1 a message, all-20261122-063306).
PACKED_PER_MESSAGE = 8


@dataclass
class Secrets:
    """Per-run secrets, so a load run never meets another deployment's tokens."""

    admin_token: str = field(default_factory=lambda: "lt-admin-" + secrets.token_hex(12))
    webhook_secret: str = field(default_factory=lambda: "whsec_lt_" + secrets.token_hex(12))
    ticket_secret: str = field(default_factory=lambda: secrets.token_hex(24))
