//! The broker's nodes as one pool: a connection is opened to the next node in turn, and a
//! node that refuses is skipped for the next, so losing any one node of a cluster costs the
//! connections that were on it and nothing else. (lapin connects to one address; the
//! failover is here.)

use std::sync::atomic::{AtomicUsize, Ordering};

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use lapin::ConnectionProperties;

/// Opens connections to a list of nodes, round-robin, skipping those that refuse.
pub struct Nodes {
    urls: Vec<String>,
    next: AtomicUsize,
}

impl Nodes {
    /// Every node's URL, tried in this order first.
    pub fn new(urls: Vec<String>) -> Self {
        assert!(!urls.is_empty(), "at least one AMQP node");
        Self {
            urls,
            next: AtomicUsize::new(0),
        }
    }
}

impl std::fmt::Debug for Nodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URLs carry credentials: name only how many there are.
        f.debug_struct("Nodes")
            .field("nodes", &self.urls.len())
            .finish_non_exhaustive()
    }
}

impl managed::Manager for Nodes {
    type Type = lapin::Connection;
    type Error = lapin::Error;

    async fn create(&self) -> Result<lapin::Connection, lapin::Error> {
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last_error = None;
        for i in 0..self.urls.len() {
            let url = &self.urls[(first + i) % self.urls.len()];
            let properties =
                ConnectionProperties::default().with_connection_name("flashgate".into());
            match lapin::Connection::connect(url, properties).await {
                Ok(connection) => return Ok(connection),
                Err(error) => {
                    tracing::warn!(node = (first + i) % self.urls.len(), %error, "AMQP node refused; trying the next");
                    last_error = Some(error);
                }
            }
        }
        Err(last_error.expect("at least one node was tried"))
    }

    async fn recycle(
        &self,
        connection: &mut lapin::Connection,
        _: &Metrics,
    ) -> RecycleResult<lapin::Error> {
        if connection.status().connected() {
            Ok(())
        } else {
            Err(RecycleError::message(format!(
                "AMQP connection is not connected: {:?}",
                connection.status()
            )))
        }
    }
}
