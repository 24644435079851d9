// The limit of an HTTP service on this machine: GET /healthz of the same process, at the
// same concurrency as the scenario it is compared with.
import http from 'k6/http';
import * as lt from './lib/common.js';

const TARGET = lt.str('TARGET', 'http://127.0.0.1:18080');

export const options = lt.options({});

export default function () {
  const res = http.get(`${TARGET}/healthz`, { tags: { ep: 'healthz' } });
  lt.record(res);
  lt.expect(res, [200], 'healthz');
}

export const handleSummary = lt.handleSummary;
