//! The demo's printed summary.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::{DemoArgs, Summary};

/// Sorted latencies, for percentiles.
struct Latencies(Vec<Duration>);

impl Latencies {
    fn of(values: impl Iterator<Item = Duration>) -> Self {
        let mut all: Vec<Duration> = values.collect();
        all.sort();
        Self(all)
    }

    fn ms(&self, p: f64) -> u128 {
        if self.0.is_empty() {
            return 0;
        }
        self.0[((self.0.len() - 1) as f64 * p).round() as usize].as_millis()
    }
}

fn counts(summary: &Summary) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for outcome in &summary.outcomes {
        *counts.entry(outcome.status.clone()).or_default() += 1;
    }
    counts
}

fn to_ticket(summary: &Summary) -> Latencies {
    Latencies::of(summary.outcomes.iter().filter_map(|o| o.to_ticket))
}

fn to_final(summary: &Summary) -> Latencies {
    Latencies::of(summary.outcomes.iter().map(|o| o.to_final))
}

fn throttled(summary: &Summary) -> u64 {
    summary
        .outcomes
        .iter()
        .map(|o| u64::from(o.throttled))
        .sum()
}

/// The summary as JSON (for `--json`).
pub(super) fn json(summary: &Summary, args: &DemoArgs) -> Value {
    let (tickets, finals) = (to_ticket(summary), to_final(summary));
    json!({
        "sale": summary.sale,
        "units": args.units,
        "shoppers": args.shoppers,
        "outcomes": counts(summary),
        "tickets_issued": tickets.0.len(),
        "throttled_answers": throttled(summary),
        "ticket_latency_ms": { "p50": tickets.ms(0.5), "p99": tickets.ms(0.99) },
        "final_latency_ms": { "p50": finals.ms(0.5), "p99": finals.ms(0.99) },
        "elapsed_ms": summary.elapsed.as_millis(),
        "verdict": summary.verdict,
    })
}

/// Prints the summary.
pub(super) fn print(summary: &Summary, args: &DemoArgs) {
    println!();
    println!(
        "flashgate demo: sale {} ({} units, {} shoppers at once)",
        summary.sale, args.units, args.shoppers
    );
    print_door(summary);
    print_outcomes(summary, args);
    print_invariants(summary, args);
}

fn print_door(summary: &Summary) {
    let (tickets, finals) = (to_ticket(summary), to_final(summary));
    println!(
        "  tickets issued        {:>7}   p50 {} ms, p99 {} ms to the ticket",
        tickets.0.len(),
        tickets.ms(0.5),
        tickets.ms(0.99)
    );
    println!(
        "  throttled answers     {:>7}   (429/503 waited out as told by Retry-After)",
        throttled(summary)
    );
    println!(
        "  final answer          {:>7}   p50 {} ms, p99 {} ms to the final status",
        finals.0.len(),
        finals.ms(0.5),
        finals.ms(0.99)
    );
}

fn print_outcomes(summary: &Summary, args: &DemoArgs) {
    let counts = counts(summary);
    let get = |k: &str| counts.get(k).copied().unwrap_or(0);
    let (at_door, in_queue) = (get("sold_out_at_door"), get("sold_out"));
    println!("  paid                  {:>7}", get("paid"));
    println!(
        "  sold out              {:>7}   ({at_door} at the door, {in_queue} in the queue)",
        at_door + in_queue
    );
    println!("  failed (declined)     {:>7}", get("failed"));
    if args.waitlist {
        let waited: Vec<_> = summary.outcomes.iter().filter(|o| o.waitlisted).collect();
        let paid = waited.iter().filter(|o| o.status == "paid").count();
        println!(
            "  wait-listed           {:>7}   ({paid} of them paid when units came back)",
            waited.len()
        );
    } else {
        println!(
            "  wait-list                 off   (--no-waitlist: units that come back go to later arrivals)"
        );
    }
    println!("  expired               {:>7}", get("expired"));
    println!("  refunded              {:>7}", get("refunded"));
    let stuck: usize = counts
        .iter()
        .filter(|(k, _)| k.starts_with("stuck") || k.starts_with("http_") || *k == "gave_up")
        .map(|(_, n)| n)
        .sum();
    println!("  gave up / stuck       {stuck:>7}");
}

fn print_invariants(summary: &Summary, args: &DemoArgs) {
    let v = &summary.verdict;
    let secs = summary.elapsed.as_secs_f64().max(0.001);
    let paid = counts(summary).get("paid").copied().unwrap_or(0);
    println!(
        "  stock {} = available {} + reserved {} + sold {}",
        v.stock, v.available, v.reserved, v.sold
    );
    if v.available > 0
        && !args.waitlist
        && i64::try_from(args.shoppers).is_ok_and(|s| s > args.units)
    {
        // More shoppers than units, yet some left: without a wait-list a unit released
        // (declined card, expired hold) after the crowd was answered waits for later arrivals.
        println!(
            "  ({} unsold: released after every shopper had an answer; \
             the wait-list, on by default, hands such units to waiting tickets)",
            v.available
        );
    }
    println!("  oversold              {:>7}", v.oversold);
    println!("  double charges        {:>7}", v.double_charges);
    println!("  extra PaymentIntents  {:>7}", v.extra_intents);
    println!("  finalized twice       {:>7}", v.finalized_twice);
    println!(
        "  elapsed               {secs:>9.2} s   ({:.0} shoppers/s, {:.0} paid/s)",
        args.shoppers as f64 / secs,
        paid as f64 / secs
    );
    if v.violations.is_empty() {
        println!("  invariants I1-I4         OK");
    } else {
        println!("  INVARIANTS BROKEN: {}", v.violations.join("; "));
    }
}
