// Catalog reads on a hot set: every iteration reads one of HOT products
// (GET /v1/products/{sku}, skus fg-0000 … as `flashgate seed` creates them).
import http from 'k6/http';
import * as lt from './lib/common.js';

const CATALOG = lt.str('CATALOG', 'http://127.0.0.1:18081');
const HOT = lt.num('HOT', 100);

export const options = lt.options({
  main_latency: [`p(99)<${lt.num('P99_LIMIT_MS', 1000)}`],
});

export default function () {
  const sku = `fg-${String(Math.floor(Math.random() * HOT)).padStart(4, '0')}`;
  const res = http.get(`${CATALOG}/v1/products/${sku}`, { tags: { ep: 'product', name: 'product' } });
  lt.record(res);
  lt.expect(res, [200], 'product');
}

export const handleSummary = lt.handleSummary;
