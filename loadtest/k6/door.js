// The front door alone: every iteration is a new shopper taking a ticket
// (POST /v1/sales/{sale}/tickets), answered 202 once the broker confirmed it. The sale
// keeps a wait-list, so tickets past its stock are still issued (and wait-listed)
// instead of being turned away with 410: the door does its whole job every time.
import http from 'k6/http';
import exec from 'k6/execution';
import * as lt from './lib/common.js';

const DOOR = lt.str('DOOR', 'http://127.0.0.1:18080');
const SALE = lt.str('SALE', 'door');
const PHASE = lt.str('PHASE', 'door');

export const options = lt.options({
  main_latency: [`p(99)<${lt.num('P99_LIMIT_MS', 1000)}`],
});

export default function () {
  const customer = `${PHASE}-${exec.vu.idInTest}-${exec.vu.iterationInInstance}`;
  const body = JSON.stringify({ customer_id: customer, quantity: 1 });
  const res = http.post(`${DOOR}/v1/sales/${SALE}/tickets`, body,
    Object.assign({ tags: { ep: 'ticket' } }, lt.json));
  lt.record(res);
  lt.expect(res, [202], 'ticket');
}

export const handleSummary = lt.handleSummary;
