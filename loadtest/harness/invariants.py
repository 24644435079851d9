"""The end of every run: let each flashgate sale come to rest, then check I1–I4 in
PostgreSQL and the emulator (`flashgate verify`, plus direct queries for I3), and I1
for the reserve bench's sales. A broken invariant fails the run."""

import time
import urllib.parse
import urllib.request

from settings import RESERVE_DATABASE, url

FINAL_ORDER = "('paid', 'failed', 'expired', 'refunded')"


def confirm_held(ctx, sale, confirmed):
    """Pays the held orders of a sale whose shoppers never confirmed (the door's, the
    opening's, a crowd's who gave up), as a browser would, so the holds end and the
    wait-list closes. Called on every look while the sale settles: a hold that ran out
    before the check began gave its unit to a wait-listed ticket, whose order is paid
    in its turn. `confirmed` holds the payment intents already confirmed."""
    rows = ctx.stack.sql(f"SELECT payment_intent_id, client_secret FROM orders WHERE sale_id = '{sale}' "
                         "AND status IN ('reserved', 'payment_pending') AND client_secret IS NOT NULL")
    for intent, secret in rows:
        if not intent or intent in confirmed:
            continue
        confirmed.add(intent)
        body = urllib.parse.urlencode({"client_secret": secret, "payment_method": "pm_card_visa"}).encode()
        request = urllib.request.Request(f"{url('stripe')}/v1/payment_intents/{intent}/confirm", data=body,
                                         headers={"authorization": "Bearer pk_test_flashgate"})
        try:
            urllib.request.urlopen(request, timeout=10).close()
        except Exception as e:  # recorded; verify will show what it left behind
            ctx.note(f"confirming {intent} of {sale} failed: {e}")


def settle(ctx, sale, confirm=False):
    """Waits until nothing of `sale` is in flight (verify's count, and the tickets that
    have no final state yet, such as a wait-list about to close); returns the last look.
    With `confirm`, pays what is held at each look (`confirm_held`)."""
    deadline = time.time() + ctx.mode.settle_secs
    confirmed = set()
    while True:
        if confirm:
            confirm_held(ctx, sale, confirmed)
        ok, verdict = ctx.stack.verify(sale)
        open_count, miscounted = unfinished_tickets(ctx, sale)
        if (verdict.get("in_flight", 1) == 0 and open_count == 0) or time.time() > deadline:
            return ok, verdict, open_count, miscounted
        time.sleep(0.5)


def unfinished_tickets(ctx, sale):
    """I3 in PostgreSQL: tickets that are not sold out and whose order is not final,
    and the difference between tickets written and tickets the sale counts as decided."""
    open_count = ctx.stack.sql(
        f"SELECT count(*) FROM tickets t LEFT JOIN orders o ON o.ticket_id = t.id WHERE t.sale_id = '{sale}' "
        f"AND NOT (t.decision = 'sold_out' OR COALESCE(o.status IN {FINAL_ORDER}, false))")[0][0]
    counted = ctx.stack.sql(f"SELECT (SELECT count(*) FROM tickets WHERE sale_id = '{sale}') - decided "
                            f"FROM sales WHERE id = '{sale}'")[0][0]
    return int(open_count), int(counted)


def check_sale(ctx, sale, options):
    ok, verdict, open_count, miscounted = settle(ctx, sale, confirm=options.get("confirm_held", False))
    violations = list(verdict.get("violations", []))
    if verdict.get("in_flight", 0):
        violations.append(f"I3: {verdict['in_flight']} tickets or orders still in flight after "
                          f"{ctx.mode.settle_secs} s")
    if open_count:
        violations.append(f"I3: {open_count} tickets without a final state")
    if miscounted:
        violations.append(f"I3: tickets written and tickets decided differ by {miscounted}")
    verdict["violations"] = violations
    ctx.invariant(sale, not violations, verdict)


def check_bench_sales(ctx):
    """I1 for the reserve bench's sales: the terms equal what their orders hold."""
    bad = ctx.stack.sql(
        "SELECT s.id, s.stock, s.reserved, s.sold, COALESCE(sum(o.quantity) FILTER (WHERE o.status IN "
        "('reserved', 'payment_pending')), 0) FROM sales s LEFT JOIN orders o ON o.sale_id = s.id "
        "WHERE s.sku = 'lt-reserve' GROUP BY s.id HAVING s.reserved + s.sold > s.stock OR s.reserved <> "
        "COALESCE(sum(o.quantity) FILTER (WHERE o.status IN ('reserved', 'payment_pending')), 0)",
        RESERVE_DATABASE)
    count = ctx.stack.sql("SELECT count(*), COALESCE(sum(reserved), 0), COALESCE(sum(decided), 0) "
                          "FROM sales WHERE sku = 'lt-reserve'", RESERVE_DATABASE)[0]
    ctx.invariant("reserve bench sales (I1)", not bad, {
        "sales": int(count[0]), "reserved": int(count[1]), "decided": int(count[2]),
        "violations": [f"I1 broken on {row[0]}: {row[1:]}" for row in bad]})


def check_all(ctx):
    for sale, options in ctx.sales.items():
        check_sale(ctx, sale, options)
    if ctx.bench_sales:
        check_bench_sales(ctx)
