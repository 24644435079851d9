//! Starting roles: one per process, or every role in one process (`flashgate all`, the
//! demo), with the Stripe emulator embedded and wired to the webhook receiver when no
//! Stripe key is configured. A role that fails stops the others.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use flashgate_common::{Config, db, priority};
use flashgate_stripe_sim::{Sim, SimConfig, WebhookEndpoint};
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The embedded emulator's API key: any `sk_test_` key works with it.
const EMBEDDED_KEY: &str = "sk_test_flashgate_embedded";

type RoleResult = (&'static str, flashgate_common::Result<()>);

/// Where the roles of a running stack listen.
#[derive(Debug, Clone, Copy)]
pub struct Addrs {
    /// Front door.
    pub admission: SocketAddr,
    /// Catalog.
    pub catalog: SocketAddr,
    /// Webhook receiver.
    pub webhook: SocketAddr,
    /// Workers' health and metrics.
    pub workers: SocketAddr,
    /// The embedded Stripe emulator, if any.
    pub stripe: Option<SocketAddr>,
}

/// Roles running in this process.
pub struct Running {
    /// Their addresses.
    pub addrs: Addrs,
    /// The configuration they run with (Stripe wired to the emulator if embedded).
    pub config: Arc<Config>,
    tasks: JoinSet<RoleResult>,
}

fn bind(addr: SocketAddr, role: &str) -> anyhow::Result<TcpListener> {
    flashgate_common::http::bind(addr).with_context(|| format!("{role} cannot listen on {addr}"))
}

/// Applies migrations (every role does at start; sqlx serializes concurrent runs).
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let pool = db::connect(&config.database)
        .await
        .context("cannot connect to PostgreSQL")?;
    db::migrate(&pool).await.context("migrations failed")?;
    pool.close().await;
    Ok(())
}

/// Starts every role in this process.
pub async fn start_all(config: Config, shutdown: CancellationToken) -> anyhow::Result<Running> {
    start(config, &Role::ALL, shutdown).await
}

/// Starts `roles` in this process (the others are expected to run elsewhere).
pub async fn start(
    mut config: Config,
    roles: &[Role],
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    migrate(&config).await?;
    let mut listeners = Vec::with_capacity(Role::ALL.len());
    for role in Role::ALL {
        listeners.push((role, bind(role.listen(&config), role.name())?));
    }
    let addr_of = |wanted: Role| -> anyhow::Result<SocketAddr> {
        let (_, listener) = listeners
            .iter()
            .find(|(role, _)| *role == wanted)
            .context("every role is bound")?;
        Ok(listener.local_addr()?)
    };
    let webhook = addr_of(Role::Webhook)?;
    let embedded = match config.stripe.api_key {
        Some(_) => None,
        None => Some(embed_stripe(&mut config, webhook, shutdown.clone()).await?),
    };
    let addrs = Addrs {
        admission: addr_of(Role::Admission)?,
        catalog: addr_of(Role::Catalog)?,
        webhook,
        workers: addr_of(Role::Worker)?,
        stripe: embedded.as_ref().map(|(_, addr)| *addr),
    };
    let config = Arc::new(config);
    let mut tasks = JoinSet::new();
    for (role, listener) in listeners
        .into_iter()
        .filter(|(role, _)| roles.contains(role))
    {
        tasks.spawn(named(
            role.name(),
            role.run(config.clone(), listener, shutdown.clone()),
        ));
    }
    Ok(Running {
        addrs,
        config,
        tasks,
    })
}

async fn named(
    name: &'static str,
    run: impl Future<Output = flashgate_common::Result<()>>,
) -> RoleResult {
    (name, run.await)
}

/// Starts the emulator on a free port, points Stripe at it and its webhooks at us.
async fn embed_stripe(
    config: &mut Config,
    webhook: SocketAddr,
    shutdown: CancellationToken,
) -> anyhow::Result<(Sim, SocketAddr)> {
    let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)), "stripe-sim")?;
    let addr = listener.local_addr()?;
    let secret = config.stripe_sim.webhook_secret.expose_secret().to_owned();
    let sim = Sim::new(SimConfig::default());
    sim.add_webhook_endpoint(WebhookEndpoint::new(
        format!("http://{webhook}/v1/stripe/webhook"),
        &secret,
    ));
    config.stripe.api_key = Some(SecretString::from(EMBEDDED_KEY));
    config.stripe.base_url = format!("http://{addr}/");
    config.stripe.js_url = format!("http://{addr}/js/v3/");
    config.webhook.secrets.push(SecretString::from(secret));
    tracing::info!(%addr, "no Stripe key configured: embedded Stripe emulator");
    tokio::spawn(sim.clone().serve(listener, shutdown));
    Ok((sim, addr))
}

impl Running {
    /// Waits for every role; the first failure stops the others and is returned.
    pub async fn wait(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut first_error = None;
        while let Some(joined) = self.tasks.join_next().await {
            let (name, result) = joined.context("a role panicked")?;
            if let Err(e) = result {
                tracing::error!(role = name, error = ?e, "role failed; stopping the others");
                shutdown.cancel();
                first_error.get_or_insert(anyhow!(e).context(format!("{name} failed")));
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// A role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Front door.
    Admission,
    /// Workers.
    Worker,
    /// Webhook receiver.
    Webhook,
    /// Catalog.
    Catalog,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Admission, Role::Worker, Role::Webhook, Role::Catalog];

    /// Its name in logs and errors.
    pub fn name(self) -> &'static str {
        match self {
            Role::Admission => "admission",
            Role::Worker => "worker",
            Role::Webhook => "webhook",
            Role::Catalog => "catalog",
        }
    }

    /// Where it listens.
    pub fn listen(self, config: &Config) -> SocketAddr {
        match self {
            Role::Admission => config.admission.listen,
            Role::Worker => config.worker.listen,
            Role::Webhook => config.webhook.listen,
            Role::Catalog => config.catalog.listen,
        }
    }

    /// Runs it on `listener` until `shutdown`.
    pub async fn run(
        self,
        config: Arc<Config>,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> flashgate_common::Result<()> {
        match self {
            Role::Admission => flashgate_admission::run(config, listener, shutdown).await,
            Role::Worker => flashgate_workers::run(config, listener, shutdown).await,
            Role::Webhook => flashgate_webhook::run(config, listener, shutdown).await,
            Role::Catalog => flashgate_catalog::run(config, listener, shutdown).await,
        }
    }
}

/// Runs one role until `shutdown`.
pub async fn run_role(
    role: Role,
    config: Config,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    migrate(&config).await?;
    let listener = bind(role.listen(&config), role.name())?;
    match role {
        Role::Worker => {
            priority::yield_to_the_door(role.name(), config.worker.nice);
        }
        Role::Webhook => {
            priority::yield_to_the_door(role.name(), config.webhook.nice);
        }
        Role::Admission | Role::Catalog => {}
    }
    role.run(Arc::new(config), listener, shutdown)
        .await
        .map_err(anyhow::Error::from)
}

/// Runs the Stripe emulator on its own.
pub async fn run_stripe_sim(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = bind(config.stripe_sim.listen, "stripe-sim")?;
    let sim = Sim::new(SimConfig::default());
    if let Some(url) = &config.stripe_sim.webhook_url {
        sim.add_webhook_endpoint(WebhookEndpoint::new(
            url.clone(),
            config.stripe_sim.webhook_secret.expose_secret(),
        ));
    }
    tracing::info!(addr = %listener.local_addr()?, "stripe emulator listening");
    sim.serve(listener, shutdown)
        .await
        .context("stripe emulator failed")
}
