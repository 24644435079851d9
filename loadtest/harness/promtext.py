"""Latency as the server saw it: Prometheus histograms scraped from a role's /metrics
before and after a phase, subtracted, and read as bucket bounds ("p99 ≤ 250 ms")."""

import re
import urllib.request

LINE = re.compile(r'^(\w+)_bucket\{(.*)\} (\S+)$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape(address):
    """`{(metric, labels without le): {le: cumulative count}}` of every histogram."""
    try:
        with urllib.request.urlopen(f"{address}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return {}
    histograms = {}
    for line in text.splitlines():
        found = LINE.match(line)
        if not found:
            continue
        labels = dict(LABEL.findall(found.group(2)))
        le = labels.pop("le")
        key = (found.group(1), tuple(sorted(labels.items())))
        histograms.setdefault(key, {})[float("inf") if le == "+Inf" else float(le)] = float(found.group(3))
    return histograms


def quantiles(before, after, metric, **match):
    """Count, p50 and p99 bounds (ms) of `metric` between two scrapes, over the label sets
    that contain `match`; None when nothing was recorded."""
    total = {}
    for (name, labels), buckets in after.items():
        if name != metric or not all(dict(labels).get(k) == v for k, v in match.items()):
            continue
        earlier = before.get((name, labels), {})
        for le, count in buckets.items():
            total[le] = total.get(le, 0.0) + count - earlier.get(le, 0.0)
    if not total or total.get(float("inf"), 0) <= 0:
        return None
    count = total[float("inf")]

    def bound(q):
        for le in sorted(total):
            if total[le] >= q * count:
                return le * 1000
        return float("inf")
    return {"count": int(count), "p50_le_ms": bound(0.5), "p99_le_ms": bound(0.99)}


def door_view(before, after):
    """The door's own latency over a phase: tickets answered 202 and 410, polls, and the
    broker's publish confirms."""
    duration = "flashgate_http_request_duration_seconds"
    tickets = "/v1/sales/{sale_id}/tickets"
    return {
        "tickets 202": quantiles(before, after, duration, route=tickets, status="202"),
        "tickets 410": quantiles(before, after, duration, route=tickets, status="410"),
        "polls": quantiles(before, after, duration, route="/v1/tickets/{ticket}"),
        "broker confirms": quantiles(before, after, "flashgate_amqp_publish_confirm_seconds"),
    }
