// The whole crowd polling: setup() takes TICKETS tickets, then every iteration polls one
// of them (GET /v1/tickets/{ticket}), which reads one Redis key.
import http from 'k6/http';
import * as lt from './lib/common.js';

const DOOR = lt.str('DOOR', 'http://127.0.0.1:18080');
const SALE = lt.str('SALE', 'door');
const PHASE = lt.str('PHASE', 'poll');
const TICKETS = lt.num('TICKETS', 1000);

export const options = lt.options({
  main_latency: [`p(99)<${lt.num('P99_LIMIT_MS', 1000)}`],
});

export function setup() {
  const tokens = [];
  for (let start = 0; start < TICKETS; start += 50) {
    const batch = [];
    for (let i = start; i < Math.min(start + 50, TICKETS); i++) {
      const body = JSON.stringify({ customer_id: `${PHASE}-crowd-${i}`, quantity: 1 });
      batch.push(['POST', `${DOOR}/v1/sales/${SALE}/tickets`, body, lt.json]);
    }
    for (const res of http.batch(batch)) {
      if (lt.expect(res, [200, 202], 'ticket')) {
        tokens.push(res.json('ticket'));
      }
    }
  }
  if (tokens.length === 0) {
    throw new Error('no ticket could be taken for the poll crowd');
  }
  return { tokens };
}

export default function (data) {
  const token = data.tokens[Math.floor(Math.random() * data.tokens.length)];
  const res = http.get(`${DOOR}/v1/tickets/${token}`, { tags: { ep: 'poll', name: 'poll' } });
  lt.record(res);
  lt.expect(res, [200], 'poll');
}

export const handleSummary = lt.handleSummary;
