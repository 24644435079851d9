//! `GET /v1/events`: newest first, cursors, type filter, and retrieval.

use stripe_core::event::{ListEvent, RetrieveEvent};

use crate::support::{TestApp, create_order, stripe_error};

#[tokio::test]
async fn events_list_newest_first_and_page_with_starting_after() {
    let app = TestApp::spawn().await;
    for order in ["e-1", "e-2", "e-3"] {
        create_order(100, order).send(&app.client).await.unwrap();
    }
    let oldest_first: Vec<String> = app
        .sim
        .events()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();

    let first = ListEvent::new().limit(2).send(&app.client).await.unwrap();
    assert_eq!(first.url, "/v1/events");
    assert!(first.has_more);
    let ids: Vec<String> = first.data.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(ids, vec![oldest_first[2].clone(), oldest_first[1].clone()]);

    let rest = ListEvent::new()
        .limit(2)
        .starting_after(ids[1].clone())
        .send(&app.client)
        .await
        .unwrap();
    assert!(!rest.has_more);
    assert_eq!(rest.data.len(), 1);
    assert_eq!(rest.data[0].id.as_str(), oldest_first[0]);

    let newer = ListEvent::new()
        .ending_before(oldest_first[0].clone())
        .send(&app.client)
        .await
        .unwrap();
    assert_eq!(newer.data.len(), 2);
    assert_eq!(newer.data[0].id.as_str(), oldest_first[2]);
}

#[tokio::test]
async fn events_filter_by_type_and_default_to_ten() {
    let app = TestApp::spawn().await;
    for i in 0..11 {
        create_order(100, &format!("f-{i}"))
            .payment_method("pm_card_visa")
            .confirm(i == 0)
            .send(&app.client)
            .await
            .unwrap();
    }
    let all = ListEvent::new().send(&app.client).await.unwrap();
    assert_eq!((all.data.len(), all.has_more), (10, true));

    let succeeded = ListEvent::new()
        .type_("payment_intent.succeeded")
        .send(&app.client)
        .await
        .unwrap();
    assert_eq!(succeeded.data.len(), 1);
    let wildcard = ListEvent::new()
        .type_("payment_intent.*")
        .limit(100)
        .send(&app.client)
        .await
        .unwrap();
    assert_eq!(wildcard.data.len(), 12);
}

#[tokio::test]
async fn an_event_can_be_retrieved_by_id() {
    let app = TestApp::spawn().await;
    let created = create_order(100, "e-r").send(&app.client).await.unwrap();
    let id = app.sim.events()[0]["id"].as_str().unwrap().to_owned();

    let event = RetrieveEvent::new(id.as_str())
        .send(&app.client)
        .await
        .unwrap();
    assert_eq!(event.id.as_str(), id);
    assert_eq!(event.type_.as_str(), "payment_intent.created");
    assert_eq!(
        event.api_version.as_deref(),
        Some(flashgate_stripe_sim::DEFAULT_API_VERSION)
    );
    assert_eq!(
        app.sim.events()[0]["data"]["object"]["id"],
        created.id.as_str()
    );

    let (_, status) = stripe_error(RetrieveEvent::new("evt_nope").send(&app.client).await);
    assert_eq!(status, 404);
}
