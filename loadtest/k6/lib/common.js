// Shared by every scenario: reading the runner's environment, the load shape (a closed
// loop at MODE=max, an open loop at MODE=rate, a spike at MODE=spike), per-bucket series
// for the report's chart, status expectations, and the JSON summary the runner reads.
//
// Every loop is bounded: by DURATION_S (plus a short graceful stop) and, for the open
// loops, by MAX_VUS.
import exec from 'k6/execution';
import { Counter, Trend } from 'k6/metrics';

export function num(name, fallback) {
  const raw = __ENV[name];
  return raw === undefined || raw === '' ? fallback : Number(raw);
}

export function str(name, fallback) {
  const raw = __ENV[name];
  return raw === undefined || raw === '' ? fallback : raw;
}

// Width of one chart bucket and how many there are (the runner sizes them to the run).
const BUCKET_MS = num('BUCKET_MS', 1000);
const BUCKETS = num('BUCKETS', 60);

// The scenario's main request: counted and timed per bucket for the chart.
export const mainReqs = new Counter('main_reqs');
export const mainLatency = new Trend('main_latency', true);
// Any answer the contract does not allow for this request (5xx, wrong 4xx, timeouts).
export const unexpected = new Counter('unexpected_status');

// Requests sent again because their connection closed under them with no answer.
export const resent = new Counter('resent_after_close');

// Sends a request (`send`), and once more if its connection closed under it with no
// answer at all: a kept-alive connection the server closed for idling
// (`connections.header_timeout_ms`) just as the request went out on it. Browsers resend a
// request in that case (a reused connection closed before any answer); Go's client, so
// k6, resends only requests it knows to be idempotent (GET, or an `Idempotency-Key`), so
// a POST the contract makes safe to repeat is resent here, and counted. A second failure
// is the answer.
export function sendResending(send) {
  const res = send();
  if (res.status === 0 && (res.error_code === 1220 || /\bEOF\b/.test(String(res.error)))) {
    resent.add(1);
    return send();
  }
  return res;
}

export function bucket() {
  return String(Math.floor(exec.instance.currentTestRunDuration / BUCKET_MS));
}

// Records the main request of an iteration.
export function record(res) {
  const tags = { b: bucket() };
  mainReqs.add(1, tags);
  mainLatency.add(res.timings.duration, tags);
}

// Counts `res` as unexpected unless its status is one of `allowed`; returns whether it was.
export function expect(res, allowed, what) {
  if (allowed.indexOf(res.status) >= 0) {
    return true;
  }
  unexpected.add(1, { ep: what, status: String(res.status) });
  if (exec.vu.iterationInInstance < 3) {
    console.warn(`${what}: unexpected ${res.status} ${String(res.body).slice(0, 200)}`);
  }
  return false;
}

function loadShape() {
  const mode = str('MODE', 'max');
  const duration = `${num('DURATION_S', 10)}s`;
  if (mode === 'max') {
    return { executor: 'constant-vus', vus: num('VUS', 50), duration, gracefulStop: '5s' };
  }
  if (mode === 'rate') {
    const rate = Math.max(1, Math.round(num('RATE', 100)));
    return {
      executor: 'constant-arrival-rate', rate, timeUnit: '1s', duration,
      preAllocatedVUs: Math.min(num('MAX_VUS', 200), Math.max(10, Math.ceil(rate / 50))),
      maxVUs: num('MAX_VUS', 200), gracefulStop: '5s',
    };
  }
  // spike: from nothing to PEAK arrivals a second in RAMP_S, held HOLD_S, then down.
  const peak = num('PEAK', 100);
  return {
    executor: 'ramping-arrival-rate', startRate: 0, timeUnit: '1s',
    // All VUs up front: starting VUs during the spike would cost k6 the CPU it needs then.
    preAllocatedVUs: num('MAX_VUS', 1000),
    maxVUs: num('MAX_VUS', 1000),
    stages: [
      { target: peak, duration: `${num('RAMP_S', 5)}s` },
      { target: peak, duration: `${num('HOLD_S', 10)}s` },
      { target: 0, duration: '2s' },
    ],
    gracefulStop: `${num('GRACE_S', 60)}s`,
  };
}

// The options of a scenario: its load shape, the chart's per-bucket sub-metrics, no
// unexpected answers, and `thresholds` on top.
export function options(thresholds) {
  const all = {
    unexpected_status: [`count<=${num('ALLOW_UNEXPECTED', 0)}`],
    main_reqs: ['count>0'],
  };
  for (let b = 0; b < BUCKETS; b++) {
    all[`main_reqs{b:${b}}`] = ['count>=0'];
    all[`main_latency{b:${b}}`] = ['p(99)>=0'];
  }
  return {
    scenarios: { load: loadShape() },
    thresholds: Object.assign(all, thresholds || {}),
    summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(99)', 'count'],
    setupTimeout: `${num('SETUP_TIMEOUT_S', 120)}s`,
    teardownTimeout: '120s',
    discardResponseBodies: false,
    noConnectionReuse: false,
    insecureSkipTLSVerify: false,
  };
}

function brief(data) {
  const m = data.metrics;
  const count = m.main_reqs ? m.main_reqs.values.count : 0;
  const lat = m.main_latency ? m.main_latency.values : {};
  const broken = Object.entries(m)
    .filter(([, v]) => v.thresholds && Object.values(v.thresholds).some((t) => !t.ok))
    .map(([k]) => k);
  const fmt = (x) => (x === undefined ? '-' : x.toFixed(2));
  return `${str('PHASE', 'k6')}: ${count} requests, p50 ${fmt(lat.med)} ms, p99 ${fmt(lat['p(99)'])} ms` +
    (broken.length ? `, THRESHOLDS BROKEN: ${broken.join(', ')}` : ', thresholds ok') + '\n';
}

// Writes the whole summary as JSON where the runner asked, and one line to stdout.
export function handleSummary(data) {
  const out = { stdout: brief(data) };
  out[str('SUMMARY', 'summary.json')] = JSON.stringify(data);
  return out;
}

export const json = { headers: { 'content-type': 'application/json' } };
