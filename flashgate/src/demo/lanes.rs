//! The shoppers' connections: a fixed set of HTTP clients, each keeping at most one
//! connection, lent to one request at a time. One shared client would not bound them:
//! a request that waits for a pooled connection also starts a new connect and keeps it
//! (hyper races the two), so a crowd of 100,000 at a slow door opened tens of thousands
//! of connections and ran the process out of file descriptors.

use std::ops::Deref;
use std::sync::Mutex;

use tokio::sync::{Semaphore, SemaphorePermit};

/// The set of clients.
#[derive(Debug)]
pub(super) struct Lanes {
    permits: Semaphore,
    idle: Mutex<Vec<reqwest::Client>>,
}

/// One client, lent for one request; returned when dropped.
pub(super) struct Lane<'a> {
    lanes: &'a Lanes,
    client: Option<reqwest::Client>,
    _permit: SemaphorePermit<'a>,
}

impl Lanes {
    /// `count` clients of one connection each.
    pub(super) fn new(count: usize) -> reqwest::Result<Self> {
        let clients = (0..count.max(1))
            .map(|_| reqwest::Client::builder().pool_max_idle_per_host(1).build())
            .collect::<reqwest::Result<Vec<_>>>()?;
        Ok(Self {
            permits: Semaphore::new(clients.len()),
            idle: Mutex::new(clients),
        })
    }

    /// Waits for a free client.
    pub(super) async fn take(&self) -> Lane<'_> {
        let permit = self
            .permits
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let client = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        Lane {
            lanes: self,
            client,
            _permit: permit,
        }
    }
}

impl Deref for Lane<'_> {
    type Target = reqwest::Client;

    fn deref(&self) -> &reqwest::Client {
        self.client
            .as_ref()
            .expect("a lane holds its client until dropped")
    }
}

impl Drop for Lane<'_> {
    fn drop(&mut self) {
        if let (Some(client), Ok(mut idle)) = (self.client.take(), self.lanes.idle.lock()) {
            idle.push(client);
        }
    }
}
