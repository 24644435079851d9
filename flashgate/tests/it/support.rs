//! The shared test kit (`flashgate-testkit`), and what only this crate's tests can do:
//! start the `flashgate` binary itself as another process.

use secrecy::ExposeSecret;

pub(crate) use flashgate_testkit::*;

/// `flashgate` processes beside a test's in-process stack, to kill and restart.
pub(crate) trait Processes {
    /// A `flashgate worker` process on this test's database, keys, queues and emulator.
    fn spawn_worker(&self) -> tokio::process::Child {
        self.spawn_worker_with(&[])
    }

    /// A `flashgate worker` process with `settings` (`FLASHGATE_…` variables) on top.
    fn spawn_worker_with(&self, settings: &[(&str, &str)]) -> tokio::process::Child;
}

impl Processes for Stack {
    fn spawn_worker_with(&self, settings: &[(&str, &str)]) -> tokio::process::Child {
        let c = &self.config;
        tokio::process::Command::new(env!("CARGO_BIN_EXE_flashgate"))
            .envs(settings.iter().copied())
            .arg("worker")
            .env("FLASHGATE_DATABASE__URL", c.database.url.expose_secret())
            .env("FLASHGATE_REDIS__PREFIX", &c.redis.prefix)
            .env("FLASHGATE_AMQP__PREFIX", &c.amqp.prefix)
            .env("FLASHGATE_AMQP__QUEUE_EXPIRES_MS", "300000")
            .env(
                "FLASHGATE_STRIPE__API_KEY",
                c.stripe.api_key.as_ref().unwrap().expose_secret(),
            )
            .env("FLASHGATE_STRIPE__BASE_URL", &c.stripe.base_url)
            .env("FLASHGATE_WORKER__LISTEN", "127.0.0.1:0")
            .env("FLASHGATE_WORKER__SWEEP_INTERVAL_MS", "100")
            .env("FLASHGATE_DRAIN__NOT_READY_MS", "0")
            .env("FLASHGATE_TELEMETRY__LOG_FILTER", "error")
            .kill_on_drop(true)
            .spawn()
            .expect("a worker process starts")
    }
}
