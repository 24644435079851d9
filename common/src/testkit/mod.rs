//! Test isolation against the real services: each test gets its own PostgreSQL database
//! (cloned from a migrated template), its own queue-name prefix and its own Redis key
//! prefix, so tests run in parallel on one machine without seeing each other. A fault
//! proxy stands in front of a real service to make it disappear, hang or lose answers.

mod proxy;
mod wait;

pub use proxy::{FaultProxy, ProxyMode};
pub use wait::{assert_problem, poll_until, wait_until};

use secrecy::SecretString;
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection, PgPool};
use uuid::Uuid;

use crate::Config;

/// Server URL (without database) of the PostgreSQL the tests use.
fn server_url() -> String {
    std::env::var("FLASHGATE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A database, prefixes and a config that belong to one test.
pub struct TestEnv {
    /// Config pointing at this test's database, queues and keys; ports are 0.
    pub config: Config,
    /// This test's database.
    pub database: String,
    /// A pool on it.
    pub pool: PgPool,
}

impl TestEnv {
    /// Creates an isolated environment.
    pub async fn new() -> Self {
        let id = Uuid::new_v4().simple().to_string()[..12].to_owned();
        let database = format!("flashgate_t_{id}");
        let template = ensure_template().await;
        let mut admin = PgConnection::connect(&format!("{}/postgres", server_url()))
            .await
            .expect("connect to PostgreSQL (is it running? scripts/setup starts it)");
        admin
            .execute(AssertSqlSafe(format!(
                r#"CREATE DATABASE "{database}" TEMPLATE "{template}""#
            )))
            .await
            .expect("create test database");
        let mut config = Config::default();
        config.database.url = SecretString::from(format!("{}/{database}", server_url()));
        config.database.max_connections = 8;
        config.redis.prefix = format!("t{id}:");
        config.amqp.prefix = format!("t{id}.");
        config.amqp.pool_size = 6;
        // A safety net for tests that panic before `cleanup`; mass expiry of many quorum
        // queues at once stalls a small broker, so teardown deletes them itself.
        config.amqp.queue_expires_ms = Some(5 * 60 * 1000);
        config.admin_token = crate::config::AdminToken::new("test-admin-token");
        config.admission.ticket_secret = SecretString::from("test-ticket-secret");
        // No load balancer watches a test's roles: stop at once.
        config.drain.not_ready_ms = 0;
        for listen in [
            &mut config.admission.listen,
            &mut config.worker.listen,
            &mut config.webhook.listen,
            &mut config.catalog.listen,
        ] {
            listen.set_port(0);
        }
        let pool = crate::db::connect(&config.database)
            .await
            .expect("connect test database");
        Self {
            config,
            database,
            pool,
        }
    }
}

impl TestEnv {
    /// Deletes this test's queues, Redis keys and database.
    pub async fn cleanup(self) {
        if let Ok(amqp) = crate::amqp::Amqp::new(&self.config.amqp) {
            let _ = amqp.delete_topology().await;
        }
        if let Ok(redis) = crate::live::Redis::connect(&self.config.redis) {
            delete_keys(&redis, &self.config.redis.prefix).await;
        }
        self.pool.close().await;
        if let Ok(mut admin) = PgConnection::connect(&format!("{}/postgres", server_url())).await {
            let drop = format!(
                r#"DROP DATABASE IF EXISTS "{}" WITH (FORCE)"#,
                self.database
            );
            let _ = admin.execute(AssertSqlSafe(drop)).await;
        }
    }
}

async fn delete_keys(redis: &crate::live::Redis, prefix: &str) {
    let mut conn = redis.conn();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    for chunk in keys.chunks(500) {
        let _: redis::RedisResult<()> = redis::cmd("DEL").arg(chunk).query_async(&mut conn).await;
    }
}

/// Creates (once per migration set, across test processes) a migrated template database.
async fn ensure_template() -> String {
    let digest: u64 = crate::db::MIGRATOR
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, m| {
            m.checksum
                .iter()
                .fold(h, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
        });
    let template = format!("flashgate_tpl_{:012x}", digest & 0xffff_ffff_ffff);
    let mut admin = PgConnection::connect(&format!("{}/postgres", server_url()))
        .await
        .expect("connect to PostgreSQL");
    // One creator at a time across every test binary running in parallel.
    admin
        .execute("SELECT pg_advisory_lock(727274)")
        .await
        .expect("lock");
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&template)
            .fetch_one(&mut admin)
            .await
            .expect("query pg_database");
    if !exists {
        create_template(&mut admin, &template).await;
    }
    admin
        .execute("SELECT pg_advisory_unlock(727274)")
        .await
        .expect("unlock");
    template
}

async fn create_template(admin: &mut PgConnection, template: &str) {
    let building = format!("{template}_building");
    admin
        .execute(AssertSqlSafe(format!(
            r#"DROP DATABASE IF EXISTS "{building}""#
        )))
        .await
        .expect("drop stale template");
    admin
        .execute(AssertSqlSafe(format!(r#"CREATE DATABASE "{building}""#)))
        .await
        .expect("create template");
    let mut conn = PgConnection::connect(&format!("{}/{building}", server_url()))
        .await
        .expect("connect template");
    crate::db::MIGRATOR
        .run(&mut conn)
        .await
        .expect("migrate template");
    conn.close().await.expect("close template connection");
    admin
        .execute(AssertSqlSafe(format!(
            r#"ALTER DATABASE "{building}" RENAME TO "{template}""#
        )))
        .await
        .expect("publish template");
}
