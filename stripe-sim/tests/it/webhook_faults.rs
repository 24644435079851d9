//! The webhook fault switches: duplicate, reorder, delay and drop.

use std::time::{Duration, Instant};

use flashgate_stripe_sim::Faults;
use stripe_core::event::RetrieveEvent;

use crate::support::{PATIENCE, TestApp, create_order};

#[tokio::test]
async fn the_duplicate_switch_delivers_every_event_twice() {
    let mut app = TestApp::spawn().await;
    app.sim.set_faults(Faults {
        webhook_duplicate: true,
        ..Faults::default()
    });
    create_order(100, "wf-1").send(&app.client).await.unwrap();

    let (first, second) = (app.sink.next().await, app.sink.next().await);
    assert_eq!(first.event().id, second.event().id);
    assert_eq!(first.body, second.body);
    assert!(app.sink.quiet_for(Duration::from_millis(200)).await);
}

#[tokio::test]
async fn the_reorder_switch_delivers_newest_first_within_the_window() {
    let mut app = TestApp::spawn().await;
    let faults = Faults {
        webhook_reorder: true,
        webhook_reorder_window_ms: 300,
        ..Faults::default()
    };
    app.sim.set_faults(faults);
    create_order(100, "wf-2")
        .payment_method("pm_card_visa")
        .confirm(true)
        .send(&app.client)
        .await
        .unwrap();

    let order: Vec<String> = app
        .sink
        .events(2)
        .await
        .iter()
        .map(|e| e.type_.to_string())
        .collect();
    assert_eq!(
        order,
        vec!["payment_intent.succeeded", "payment_intent.created"]
    );
}

#[tokio::test]
async fn the_delay_switch_holds_each_delivery() {
    // Long enough that a delivery that is not held arrives well before it.
    const HELD: Duration = Duration::from_millis(2_000);
    let mut app = TestApp::spawn().await;
    app.sim.set_faults(Faults {
        webhook_delay_ms: HELD.as_millis() as u64,
        ..Faults::default()
    });
    let sent = Instant::now();
    create_order(100, "wf-3").send(&app.client).await.unwrap();
    // Turned off at once: the event was queued while the switch was on, so it is held.
    app.sim.set_faults(Faults::default());
    let received = app.sink.next().await;
    assert!(received.at.duration_since(sent) >= HELD);
    // Events queued after the switch went off are not held.
    let again = Instant::now();
    create_order(100, "wf-3b").send(&app.client).await.unwrap();
    let received = app.sink.next().await;
    assert!(received.at.duration_since(again) < HELD);
}

#[tokio::test]
async fn the_drop_switch_never_delivers_and_a_resend_delivers_later() {
    let mut app = TestApp::spawn().await;
    app.sim.set_faults(Faults {
        webhook_drop: true,
        ..Faults::default()
    });
    create_order(100, "wf-4").send(&app.client).await.unwrap();
    assert!(app.sink.quiet_for(Duration::from_millis(300)).await);

    let id = app.sim.events()[0]["id"].as_str().unwrap().to_owned();
    let event = RetrieveEvent::new(id.as_str())
        .send(&app.client)
        .await
        .unwrap();
    assert_eq!(event.pending_webhooks, 1);

    app.sim.set_faults(Faults::default());
    let resent = reqwest::Client::new()
        .post(app.url(&format!("/_sim/events/{id}/resend")))
        .send()
        .await
        .unwrap();
    assert_eq!(resent.status(), 200);
    assert_eq!(app.sink.next().await.event().id.as_str(), id);
    assert!(app.sim.wait_for_delivery(&id, PATIENCE).await);
    assert!(!app.sim.resend_event("evt_nope"));
}

#[tokio::test]
async fn reordered_deliveries_are_held_once_for_the_batch_not_once_each() {
    let mut app = TestApp::spawn().await;
    let delay = Duration::from_millis(1_500);
    app.sim.set_faults(Faults {
        webhook_reorder: true,
        webhook_reorder_window_ms: 300,
        webhook_delay_ms: delay.as_millis() as u64,
        ..Faults::default()
    });
    let sent = Instant::now();
    create_order(100, "wf-5")
        .payment_method("pm_card_visa")
        .confirm(true)
        .send(&app.client)
        .await
        .unwrap();

    let (newest, oldest) = (app.sink.next().await, app.sink.next().await);
    assert_eq!(newest.event().type_.to_string(), "payment_intent.succeeded");
    assert_eq!(oldest.event().type_.to_string(), "payment_intent.created");
    assert!(newest.at.duration_since(sent) >= delay);
    // Held per delivery, the second would come a whole `delay` after the first.
    assert!(oldest.at.duration_since(newest.at) < delay);
}
