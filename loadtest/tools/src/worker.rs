//! A `flashgate worker` child process with its payments parked.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::process::{Child, Command};

/// A running worker; stopped with [`Worker::stop`], killed if dropped.
pub(crate) struct Worker {
    child: Child,
}

impl Worker {
    /// Starts `flashgate worker` with this process's environment, listening on `listen`.
    /// Stripe points at a closed port and one payment runs at a time, so payments wait
    /// (retrying with back-off) and take no CPU from the reservations being measured.
    pub(crate) fn start(binary: &Path, listen: &str, log: &Path) -> anyhow::Result<Self> {
        let log = std::fs::File::create(log).context("creating the worker log")?;
        let child = Command::new(binary)
            .arg("worker")
            .env("FLASHGATE_WORKER__LISTEN", listen)
            .env("FLASHGATE_STRIPE__API_KEY", "sk_test_reserve_bench")
            .env("FLASHGATE_STRIPE__BASE_URL", "http://127.0.0.1:9/")
            .env("FLASHGATE_WORKER__PAYMENT_CONCURRENCY", "1")
            .env("FLASHGATE_WORKER__PAYMENT_PREFETCH", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Self { child })
    }

    /// CPU seconds (user + system) the worker has used so far, from `/proc` (whose clock
    /// ticks are 1/100 s on Linux).
    pub(crate) fn cpu_secs(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()?)).ok()?;
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(ticks as f64 / 100.0)
    }

    /// The worker's peak resident memory so far (`VmHWM`), in MiB.
    pub(crate) fn peak_rss_mb(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()?)).ok()?;
        let kib: f64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib / 1024.0)
    }

    /// SIGTERM, then SIGKILL if it has not exited within five seconds.
    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await?;
        }
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            self.child.kill().await?;
        }
        Ok(())
    }
}
