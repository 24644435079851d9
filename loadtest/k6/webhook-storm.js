// A storm of Stripe webhooks. setup() runs a small sale through the real path with the
// emulator delivering every event late, twice and out of order (its faults), waits for
// every shopper's final status and every delivery, and snapshots the sale. Then every
// iteration sends one of those real events again, as a mix of:
//   duplicate (freshly signed)        → 200, nothing changes
//   late (signed 4 minutes ago)       → 200, nothing changes
//   several v1 signatures, one valid  → 200, nothing changes
//   stale (signed 10 minutes ago)     → 400
//   wrong secret, tampered body, v0-only, garbage or missing header → 400
// teardown() checks that the sale's orders and stock terms are exactly as before.
import http from 'k6/http';
import crypto from 'k6/crypto';
import { check, sleep } from 'k6';
import * as lt from './lib/common.js';

const DOOR = lt.str('DOOR', 'http://127.0.0.1:18080');
const CATALOG = lt.str('CATALOG', 'http://127.0.0.1:18081');
const WEBHOOK = lt.str('WEBHOOK', 'http://127.0.0.1:18082');
const STRIPE = lt.str('STRIPE', 'http://127.0.0.1:18120');
const ADMIN = lt.str('ADMIN_TOKEN', '');
const SECRET = lt.str('WEBHOOK_SECRET', 'whsec_flashgate_dev');
const SALE = lt.str('SALE', 'storm');
const SHOPPERS = lt.num('SHOPPERS', 40);
const SETTLE_MS = lt.num('SETTLE_S', 90) * 1000;

export const options = lt.options({
  checks: ['rate==1'],
  main_latency: [`p(99)<${lt.num('P99_LIMIT_MS', 1000)}`],
});

const adminParams = { headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` } };

function must(res, what) {
  if (res.status >= 300) throw new Error(`${what}: ${res.status} ${res.body}`);
  return res;
}

function faults(f) {
  must(http.post(`${STRIPE}/_sim/faults`, JSON.stringify(f), lt.json), 'setting emulator faults');
}

function payer(i) {
  return ['pm_card_visa', 'pm_card_visa', 'pm_card_chargeDeclined', null][i % 4];
}

function runSale() {
  const sku = `lt-${SALE}`;
  must(http.put(`${CATALOG}/admin/v1/products/${sku}`,
    JSON.stringify({ name: 'Storm drop', price: 1500, currency: 'eur' }), adminParams), 'product');
  must(http.put(`${DOOR}/admin/v1/sales/${SALE}`, JSON.stringify({
    sku, stock: SHOPPERS, price: 1500, currency: 'eur', hold_seconds: 300, rate_per_second: 100000, burst: 100000,
  }), adminParams), 'sale');
  const requests = [];
  for (let i = 0; i < SHOPPERS; i++) {
    const body = { customer_id: `storm-${i}`, quantity: 1 };
    if (payer(i)) body.payment_method = payer(i);
    requests.push(['POST', `${DOOR}/v1/sales/${SALE}/tickets`, JSON.stringify(body), lt.json]);
  }
  const tickets = http.batch(requests).map((r) => must(r, 'ticket').json('ticket'));
  const started = Date.now();
  const open = new Set(tickets.map((_, i) => i));
  const confirmed = new Set();
  while (open.size > 0 && Date.now() - started < SETTLE_MS) {
    for (const i of Array.from(open)) {
      const t = must(http.get(`${DOOR}/v1/tickets/${tickets[i]}`), 'poll').json();
      if (['paid', 'failed', 'expired', 'sold_out', 'refunded'].indexOf(t.status) >= 0) open.delete(i);
      if (!payer(i) && t.payment && !confirmed.has(i)) {
        must(http.post(`${STRIPE}/v1/payment_intents/${t.payment.payment_intent}/confirm`,
          `client_secret=${encodeURIComponent(t.payment.client_secret)}&payment_method=pm_card_visa`,
          { headers: { authorization: 'Bearer pk_test_flashgate', 'content-type': 'application/x-www-form-urlencoded' } }),
        'browser confirm');
        confirmed.add(i);
      }
    }
    sleep(0.25);
  }
  if (open.size > 0) throw new Error(`${open.size} storm shoppers did not reach a final status`);
}

function awaitDeliveries() {
  const started = Date.now();
  while (Date.now() - started < SETTLE_MS) {
    const stats = must(http.get(`${STRIPE}/_sim/stats`), 'emulator stats').json();
    if (stats.deliveries.pending === 0) return;
    sleep(0.25);
  }
  throw new Error('the emulator still had webhook deliveries pending');
}

function saleEvents() {
  const events = [];
  let after = '';
  for (let page = 0; page < 100; page++) {
    const res = must(http.get(`${STRIPE}/v1/events?limit=100&type=payment_intent.*${after}`,
      { headers: { authorization: 'Bearer sk_test_loadtest' } }), 'events');
    const list = res.json();
    for (const e of list.data) {
      if (e.data.object.metadata && e.data.object.metadata.flashgate_sale === SALE) events.push(JSON.stringify(e));
    }
    if (!list.has_more || list.data.length === 0) break;
    after = `&starting_after=${list.data[list.data.length - 1].id}`;
  }
  if (events.length === 0) throw new Error('the emulator recorded no event for the storm sale');
  return events;
}

// The sale's orders by status and its stock terms, keys sorted so snapshots compare.
function snapshot() {
  const s = must(http.get(`${DOOR}/admin/v1/sales/${SALE}/stats`, adminParams), 'stats').json();
  const sorted = (o) => Object.keys(o).sort().map((k) => `${k}=${o[k]}`).join(',');
  return `tickets ${sorted(s.tickets)}; stock ${sorted(s.stock)}`;
}

export function setup() {
  // The emulator holds each delivery of a reordered window `webhook_delay_ms` after the
  // previous one, so a small delay already makes the last events of a window late.
  faults({ webhook_duplicate: true, webhook_reorder: true, webhook_reorder_window_ms: 200, webhook_delay_ms: 20 });
  try {
    runSale();
    awaitDeliveries();
  } finally {
    faults({});
  }
  return { events: saleEvents(), before: snapshot() };
}

function sign(body, t, secret) {
  return crypto.hmac('sha256', secret, `${t}.${body}`, 'hex');
}

// [share, expected status, build(body, now) → [body, header or null]]
const KINDS = [
  [0.30, 200, (b, n) => [b, `t=${n},v1=${sign(b, n, SECRET)}`]],
  [0.15, 200, (b, n) => [b, `t=${n - 240},v1=${sign(b, n - 240, SECRET)}`]],
  [0.05, 200, (b, n) => [b, `t=${n},v1=${'0'.repeat(64)},v1=${sign(b, n, SECRET)}`]],
  [0.10, 400, (b, n) => [b, `t=${n - 600},v1=${sign(b, n - 600, SECRET)}`]],
  [0.15, 400, (b, n) => [b, `t=${n},v1=${sign(b, n, 'whsec_not_the_secret')}`]],
  [0.10, 400, (b, n) => [b.replace('"succeeded"', '"canceled"').replace('"requires_payment_method"', '"succeeded"') + ' ',
    `t=${n},v1=${sign(b, n, SECRET)}`]],
  [0.05, 400, (b, n) => [b, `t=${n},v0=${sign(b, n, SECRET)}`]],
  [0.05, 400, (b) => [b, 'garbage']],
  [0.05, 400, (b) => [b, null]],
];

function pick() {
  let roll = Math.random();
  for (const kind of KINDS) {
    roll -= kind[0];
    if (roll < 0) return kind;
  }
  return KINDS[0];
}

export default function (data) {
  const event = data.events[Math.floor(Math.random() * data.events.length)];
  const [, expected, build] = pick();
  const [body, header] = build(event, Math.floor(Date.now() / 1000));
  const headers = { 'content-type': 'application/json' };
  if (header !== null) headers['stripe-signature'] = header;
  const res = http.post(`${WEBHOOK}/v1/stripe/webhook`, body, { headers, tags: { ep: 'webhook', name: 'webhook' } });
  lt.record(res);
  lt.expect(res, [expected], `webhook expecting ${expected}`);
  if (expected === 200 && res.status === 200) {
    check(res, { 'a replayed event is never applied twice': (r) => r.json('outcome') !== 'applied' });
  }
}

export function teardown(data) {
  const after = snapshot();
  check(after, { 'the storm changed no order and no stock term': (a) => a === data.before });
  if (after !== data.before) console.error(`before ${data.before}\nafter  ${after}`);
}

export const handleSummary = lt.handleSummary;
