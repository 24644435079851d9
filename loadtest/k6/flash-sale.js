// A flash sale: arrivals climb from nothing to PEAK shoppers a second in RAMP_S seconds
// and stay there HOLD_S seconds. Each iteration is one shopper.
//
// SYSTEM=flashgate: the shopper takes a ticket (waiting out 429/503 as Retry-After says),
// polls at the interval the server suggests, confirms the payment in the "browser" when
// it pays that way, and ends in a final status: paid, failed (DECLINE_SHARE of shoppers
// use a declined card), sold_out, expired or refunded, or 410 at the door.
//
// SYSTEM=baseline: the same crowd against the textbook checkout, one POST /checkout
// each, the card charged inside it (201 ordered and charged, 402 declined, 410 sold out;
// 5xx and timeouts are the baseline's overload).
//
// SYSTEM=medusa: the same crowd against Medusa v2 (loadtest/medusa, seeded by the harness:
// MEDUSA_KEY, MEDUSA_REGION, MEDUSA_VARIANT) through its store API: create a cart, add one
// of the variant (which, like flashgate's sale, ships nothing: no address, no shipping
// method), create the payment collection and a session with the system payment provider
// (pp_system_default), complete the cart. An order is `ordered`; Medusa's 400 for missing
// stock (at add-to-cart once the stock is reserved, or at completion when carts raced for
// the last units) is `sold_out`; 5xx and timeouts are `overloaded`; a completion refused
// with 409 (the item's lock not taken in time) is retried until SHOPPER_DEADLINE_S
// (`gave_up` past it).
import http from 'k6/http';
import exec from 'k6/execution';
import { sleep } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import * as lt from './lib/common.js';

const SYSTEM = lt.str('SYSTEM', 'flashgate');
const DOOR = lt.str('DOOR', 'http://127.0.0.1:18080');
const CATALOG = lt.str('CATALOG', 'http://127.0.0.1:18081');
const STRIPE = lt.str('STRIPE', 'http://127.0.0.1:18120');
const BASELINE = lt.str('BASELINE', 'http://127.0.0.1:18090');
const MEDUSA = lt.str('MEDUSA', 'http://127.0.0.1:18130');
const ADMIN = lt.str('ADMIN_TOKEN', '');
const SALE = lt.str('SALE', 'flash');
const STOCK = lt.num('STOCK', 500);
const DECLINE_SHARE = lt.num('DECLINE_SHARE', 0.1);
const BROWSER_SHARE = lt.num('BROWSER_SHARE', 0.3);
const DEADLINE_MS = lt.num('SHOPPER_DEADLINE_S', 60) * 1000;
const MAX_DOOR_TRIES = lt.num('MAX_DOOR_TRIES', 30);
const FINAL = ['paid', 'failed', 'expired', 'sold_out', 'refunded'];

const timeToTicket = new Trend('time_to_ticket', true);
const timeToFinal = new Trend('time_to_final', true);
const throttled = new Counter('door_throttled');
const stuck = new Counter('shoppers_stuck');
const medusaConflicts = new Counter('medusa_conflicts');
const outcomes = {};
for (const o of FINAL.concat(['sold_out_at_door', 'gave_up', 'ordered', 'overloaded'])) {
  outcomes[o] = new Counter(`outcome_${o}`);
}

const thresholds = SYSTEM === 'flashgate'
  ? {
    shoppers_stuck: [`count<=${lt.num('ALLOW_STUCK', 0)}`],
    outcome_paid: ['count>0'],
    outcome_gave_up: ['count>=0'],
    outcome_sold_out_at_door: ['count>=0'],
    time_to_ticket: [`p(99)<${lt.num('P99_LIMIT_MS', 10000)}`],
  }
  : SYSTEM === 'medusa'
    // The peer may collapse under the crowd (no order answered in time): a result to
    // report, not a broken run.
    ? { outcome_ordered: ['count>=0'], outcome_overloaded: ['count>=0'], medusa_conflicts: ['count>=0'] }
    : { outcome_ordered: ['count>0'], outcome_overloaded: ['count>=0'] };
for (const o of Object.keys(outcomes)) {
  thresholds[`outcome_${o}`] = thresholds[`outcome_${o}`] || ['count>=0'];
}
thresholds.time_to_final = ['p(99)>=0'];
export const options = lt.options(thresholds);

function admin(method, url, body) {
  const params = { headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` } };
  const res = http.request(method, url, JSON.stringify(body), params);
  if (res.status >= 300) {
    throw new Error(`${method} ${url}: ${res.status} ${res.body}`);
  }
}

export function setup() {
  if (SYSTEM === 'medusa') return {}; // the harness seeds Medusa (loadtest/harness/medusa.py)
  if (SYSTEM === 'baseline') {
    admin('PUT', `${BASELINE}/sales/${SALE}`, { stock: STOCK });
    return {};
  }
  const sku = `lt-${SALE}`;
  admin('PUT', `${CATALOG}/admin/v1/products/${sku}`,
    { name: 'Load-test drop', category: 'sneakers', price: 4900, currency: 'eur' });
  admin('PUT', `${DOOR}/admin/v1/sales/${SALE}`, {
    sku, stock: STOCK, price: 4900, currency: 'eur', hold_seconds: lt.num('HOLD_SECONDS', 120),
    rate_per_second: lt.num('SALE_RATE', 2000), burst: lt.num('SALE_BURST', 500),
  });
  // CONTROLLER (JSON): the sale's admission rate steers itself within these bounds.
  const controller = lt.str('CONTROLLER', '');
  if (controller) {
    admin('PATCH', `${DOOR}/admin/v1/sales/${SALE}/admission`, { controller: JSON.parse(controller) });
  }
  return {};
}

function payer(i) {
  const slot = ((i * 7919) % 1000) / 1000;
  if (slot < DECLINE_SHARE) return 'declined';
  if (slot < DECLINE_SHARE + BROWSER_SHARE) return 'browser';
  return 'card';
}

function end(outcome, started) {
  outcomes[outcome].add(1);
  timeToFinal.add(Date.now() - started);
}

function takeTicket(customer, how, started) {
  const body = { customer_id: customer, quantity: 1 };
  if (how === 'card') body.payment_method = 'pm_card_visa';
  if (how === 'declined') body.payment_method = 'pm_card_chargeDeclined';
  for (let tries = 0; tries < MAX_DOOR_TRIES && Date.now() - started < DEADLINE_MS; tries++) {
    // Safe to resend: the same customer gets its ticket back (`200`).
    const res = lt.sendResending(() => http.post(`${DOOR}/v1/sales/${SALE}/tickets`, JSON.stringify(body),
      Object.assign({ tags: { ep: 'ticket', name: 'ticket' } }, lt.json)));
    lt.record(res);
    if (res.status === 200 || res.status === 202) {
      timeToTicket.add(Date.now() - started);
      return res.json();
    }
    if (res.status === 410) {
      end('sold_out_at_door', started);
      return null;
    }
    if (!lt.expect(res, [429, 503], 'ticket')) {
      return null;
    }
    throttled.add(1);
    const wait = Number(res.headers['Retry-After'] || 1);
    sleep(wait * (0.5 + Math.random()));
  }
  end('gave_up', started);
  return null;
}

function confirm(payment) {
  const res = http.post(`${STRIPE}/v1/payment_intents/${payment.payment_intent}/confirm`,
    `client_secret=${encodeURIComponent(payment.client_secret)}&payment_method=pm_card_visa`,
    { headers: { authorization: 'Bearer pk_test_flashgate', 'content-type': 'application/x-www-form-urlencoded' },
      tags: { ep: 'confirm', name: 'confirm' } });
  return lt.expect(res, [200], 'confirm');
}

function flashgateShopper(i, started) {
  const how = payer(i);
  let ticket = takeTicket(`${lt.str('PHASE', 'fs')}-${i}`, how, started);
  if (ticket === null) return;
  let confirmed = false;
  while (FINAL.indexOf(ticket.status) < 0) {
    if (Date.now() - started > DEADLINE_MS) {
      stuck.add(1);
      console.warn(`shopper ${i} stuck at ${ticket.status}`);
      return;
    }
    if (how === 'browser' && !confirmed && ticket.payment) {
      confirmed = confirm(ticket.payment);
    }
    // As the door says, as the waiting room does (500 ms near the front, up to 10 s deep).
    sleep(Math.min(10000, Math.max(100, ticket.poll_after_ms || 500)) / 1000);
    const res = http.get(`${DOOR}/v1/tickets/${ticket.ticket}`, { tags: { ep: 'poll', name: 'poll' } });
    if (lt.expect(res, [200], 'poll')) {
      ticket = res.json();
    }
  }
  end(ticket.status, started);
}

function baselineShopper(i, started) {
  const card = payer(i) === 'declined' ? 'pm_card_chargeDeclined' : 'pm_card_visa';
  const body = JSON.stringify({ sale_id: SALE, customer_id: `${lt.str('PHASE', 'bl')}-${i}`, quantity: 1,
    payment_method: card });
  const res = http.post(`${BASELINE}/checkout`, body,
    Object.assign({ tags: { ep: 'checkout', name: 'checkout' }, timeout: '30s' }, lt.json));
  lt.record(res);
  if (res.status === 201) return end('ordered', started);
  if (res.status === 402) return end('failed', started);
  if (res.status === 410) return end('sold_out', started);
  if (res.status === 0 || res.status >= 500) return end('overloaded', started);
  lt.expect(res, [], 'checkout');
}

// Medusa's store API: the publishable key of the sale's sales channel on every request.
const medusaParams = (name) => ({
  headers: { 'content-type': 'application/json', 'x-publishable-api-key': lt.str('MEDUSA_KEY', '') },
  tags: { ep: 'medusa', name }, timeout: '30s',
});

// Medusa refuses a unit it does not have with 400 not_allowed: "Some variant does not
// have the required inventory" (code insufficient_inventory) when adding to the cart,
// "Not enough stock available for item … at location …" when completing it.
function medusaSoldOut(res) {
  if (res.status !== 400) return false;
  let body;
  try { body = res.json(); } catch (e) { return false; }
  return body.code === 'insufficient_inventory' ||
    (body.type === 'not_allowed' && /stock|inventory/i.test(body.message || ''));
}

// One step of a Medusa checkout: true when it answered `ok`; otherwise the shopper's
// outcome is recorded (sold_out, overloaded, or an unexpected answer) and it is false.
function medusaStep(res, ok, name, started) {
  if (res.status === ok) return true;
  if (medusaSoldOut(res)) end('sold_out', started);
  else if (res.status === 0 || res.status >= 500) end('overloaded', started);
  else lt.expect(res, [], `medusa ${name}`);
  return false;
}

function medusaShopper(i, started) {
  const post = (path, body, name) => http.post(`${MEDUSA}${path}`, body === null ? null : JSON.stringify(body),
    medusaParams(name));
  let res = post('/store/carts', { region_id: lt.str('MEDUSA_REGION', ''),
    email: `${lt.str('PHASE', 'md')}-${i}@loadtest.test` }, 'cart');
  lt.record(res);
  if (!medusaStep(res, 200, 'cart', started)) return;
  const cart = res.json('cart.id');
  res = post(`/store/carts/${cart}/line-items`, { variant_id: lt.str('MEDUSA_VARIANT', ''), quantity: 1 }, 'add');
  if (!medusaStep(res, 200, 'add', started)) return;
  res = post('/store/payment-collections', { cart_id: cart }, 'payment-collection');
  if (!medusaStep(res, 200, 'payment-collection', started)) return;
  res = post(`/store/payment-collections/${res.json('payment_collection.id')}/payment-sessions`,
    { provider_id: 'pp_system_default' }, 'payment-session');
  if (!medusaStep(res, 200, 'payment-session', started)) return;
  // 409 conflict: Medusa could not take the inventory item's lock in time (5 s; every
  // reservation of the sale's one item goes through it) or the cart is still being
  // completed; its answer says to retry, as a storefront would, until the deadline.
  for (;;) {
    res = post(`/store/carts/${cart}/complete`, null, 'complete');
    if (res.status !== 409) break;
    medusaConflicts.add(1);
    if (Date.now() - started > DEADLINE_MS) return end('gave_up', started);
    sleep(0.5 + Math.random());
  }
  if (!medusaStep(res, 200, 'complete', started)) return;
  // 200 with type "cart" carries the error of a completion that did not place the order.
  if (res.json('type') === 'order') return end('ordered', started);
  const error = res.json('error') || {};
  if (/stock|inventory/i.test(error.message || '')) return end('sold_out', started);
  lt.expect(res, [], 'medusa complete');
}

export default function () {
  const i = exec.scenario.iterationInTest;
  const started = Date.now();
  if (SYSTEM === 'medusa') {
    medusaShopper(i, started);
  } else if (SYSTEM === 'baseline') {
    baselineShopper(i, started);
  } else {
    flashgateShopper(i, started);
  }
}

export const handleSummary = lt.handleSummary;
