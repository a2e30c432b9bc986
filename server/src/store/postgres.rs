//! PostgreSQL as the store of record for a fleet of replicas.
//!
//! Tables (see `MIGRATIONS`): `portcullis_versions` (one row per version, bundle bytes and
//! their SHA-256), `portcullis_overlay_changes` (the append-only overlay log) and
//! `portcullis_heads` (the newest version number and overlay sequence, one row each), and
//! `portcullis_activity` (R7: each principal's latest observed authentication, stamped
//! with the number of the batch that last raised it). A
//! write moves its head with `UPDATE … WHERE value = <seen>`: the row lock serializes
//! writers, the condition is the compare-and-swap, and a rolled-back transaction leaves no
//! gap. Every commit sends `NOTIFY portcullis_changes`; a listener task turns those into
//! nudges. The schema is migrated at connect time under an advisory lock.

use super::{Corrupt, OverlayChange, OverlayState, Store, StoreError, VersionMeta, content_hash};
use portcullis_policy::Timestamp;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Row};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// The channel every commit notifies.
pub const CHANNEL: &str = "portcullis_changes";

/// Advisory lock key held while migrating ("portcull" in ASCII).
const MIGRATION_LOCK: i64 = 0x706f_7274_6375_6c6c;

/// Schema migrations, in order; the schema version is how many have been applied.
const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE portcullis_versions (
    version     bigint PRIMARY KEY,
    parent      bigint NOT NULL,
    sha256      text   NOT NULL,
    author      text   NOT NULL,
    message     text   NOT NULL,
    created_at  bigint NOT NULL,
    format      text   NOT NULL,
    rollback_of bigint,
    bundle      bytea  NOT NULL
);
CREATE TABLE portcullis_overlay_changes (
    seq        bigint PRIMARY KEY,
    change     text   NOT NULL,
    author     text   NOT NULL,
    created_at bigint NOT NULL
);
CREATE TABLE portcullis_heads (
    name  text   PRIMARY KEY,
    value bigint NOT NULL
);
INSERT INTO portcullis_heads (name, value) VALUES ('version', 0), ('overlay', 0);
",
    r"
CREATE TABLE portcullis_activity (
    principal        text   PRIMARY KEY,
    authenticated_at bigint NOT NULL,
    seq              bigint NOT NULL
);
CREATE INDEX portcullis_activity_by_seq ON portcullis_activity (seq);
INSERT INTO portcullis_heads (name, value) VALUES ('activity', 0);
",
];

/// A PostgreSQL database holding the fleet's history.
#[derive(Debug)]
pub struct PgStore {
    pool: PgPool,
    describe: String,
    nudges: Arc<Notify>,
    listener: tokio::task::JoinHandle<()>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

fn db_error(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(d) => StoreError::Incompatible(format!("PostgreSQL refused: {d}")),
        sqlx::Error::ColumnNotFound(_) | sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            StoreError::Incompatible(format!("unexpected data in PostgreSQL: {e}"))
        }
        other => StoreError::Unavailable(other.to_string()),
    }
}

fn to_i64(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::Incompatible(format!("number {n} does not fit PostgreSQL's bigint")))
}

fn to_u64(n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Incompatible(format!("negative number {n} in PostgreSQL")))
}

/// `postgres://user@host:port/db`, without the password.
fn describe(options: &PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or_default()
    )
}

impl PgStore {
    /// Connects, migrates the schema under an advisory lock, and starts listening.
    /// `Unavailable` when PostgreSQL cannot be reached; `Incompatible` when its schema is
    /// newer than this binary knows.
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Incompatible(format!("`--store` is not a PostgreSQL URL: {e}")))?;
        let describe = describe(&options);
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(options)
            .await
            .map_err(db_error)?;
        migrate(&pool).await?;
        let nudges = Arc::new(Notify::new());
        let listener = tokio::spawn(listen(pool.clone(), nudges.clone(), describe.clone()));
        Ok(PgStore {
            pool,
            describe,
            nudges,
            listener,
        })
    }
}

/// Applies the migrations this binary knows that the database lacks.
async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await.map_err(db_error)?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    let result = async {
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS portcullis_schema (
                 id int PRIMARY KEY CHECK (id = 1),
                 version int NOT NULL
             )",
        )
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
        let current: Option<i32> = sqlx::query_scalar("SELECT version FROM portcullis_schema WHERE id = 1")
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_error)?;
        let current = usize::try_from(current.unwrap_or(0)).unwrap_or(usize::MAX);
        if current > MIGRATIONS.len() {
            return Err(StoreError::Incompatible(format!(
                "the database schema is version {current}, newer than this portcullis knows ({}): upgrade portcullis before pointing it at this database",
                MIGRATIONS.len()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
            let mut tx = conn.begin().await.map_err(db_error)?;
            sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(db_error)?;
            sqlx::query(
                "INSERT INTO portcullis_schema (id, version) VALUES (1, $1)
                 ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version",
            )
            .bind(i32::try_from(i + 1).unwrap_or(i32::MAX))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            tx.commit().await.map_err(db_error)?;
            tracing::info!(schema_version = i + 1, "migrated the PostgreSQL store");
        }
        Ok(())
    }
    .await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await;
    if unlocked.is_err() {
        // The lock dies with the session; make sure this connection is not reused.
        conn.detach();
    }
    result
}

/// Turns notifications into nudges, reconnecting with backoff. A nudge is also sent after
/// every (re)connect, since notifications sent while disconnected are lost.
async fn listen(pool: PgPool, nudges: Arc<Notify>, describe: String) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match PgListener::connect_with(&pool).await {
            Ok(mut listener) => {
                if let Err(e) = listener.listen(CHANNEL).await {
                    tracing::warn!(store = %describe, "cannot LISTEN: {e}");
                } else {
                    backoff = Duration::from_millis(100);
                    nudges.notify_one();
                    loop {
                        match listener.try_recv().await {
                            Ok(Some(_)) => nudges.notify_one(),
                            // Connection lost: the next call reconnects.
                            Ok(None) => {
                                tracing::warn!(store = %describe, "LISTEN connection lost; reconnecting");
                                nudges.notify_one();
                            }
                            Err(e) => {
                                tracing::warn!(store = %describe, "LISTEN failed: {e}");
                                break;
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(store = %describe, "cannot connect to LISTEN: {e}"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

fn version_meta(row: &PgRow) -> Result<VersionMeta, StoreError> {
    let get_i64 = |name: &str| row.try_get::<i64, _>(name).map_err(db_error);
    let get_text = |name: &str| row.try_get::<String, _>(name).map_err(db_error);
    Ok(VersionMeta {
        version: to_u64(get_i64("version")?)?,
        parent: to_u64(get_i64("parent")?)?,
        author: get_text("author")?,
        pushed_at: get_i64("created_at")?,
        format: get_text("format")?,
        content_hash: get_text("sha256")?,
        message: get_text("message")?,
        rollback_of: row
            .try_get::<Option<i64>, _>("rollback_of")
            .map_err(db_error)?
            .map(to_u64)
            .transpose()?,
        length: to_u64(get_i64("length")?)?,
    })
}

fn corrupt(version: u64, why: &str) -> Corrupt {
    Corrupt {
        path: format!("portcullis_versions row {version}"),
        why: why.to_owned(),
    }
}

async fn head_of(pool: &PgPool, name: &str) -> Result<u64, StoreError> {
    let v: i64 = sqlx::query_scalar("SELECT value FROM portcullis_heads WHERE name = $1")
        .bind(name)
        .fetch_one(pool)
        .await
        .map_err(db_error)?;
    to_u64(v)
}

/// Moves a head from `seen` to `seen + 1` inside `tx`; `Conflict` when it was not at `seen`.
async fn advance(
    tx: &mut sqlx::PgConnection,
    name: &'static str,
    kind: &'static str,
    seen: u64,
) -> Result<u64, StoreError> {
    let moved: Option<i64> = sqlx::query_scalar(
        "UPDATE portcullis_heads SET value = value + 1 WHERE name = $1 AND value = $2 RETURNING value",
    )
    .bind(name)
    .bind(to_i64(seen)?)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db_error)?;
    match moved {
        Some(v) => to_u64(v),
        None => {
            let found: i64 = sqlx::query_scalar("SELECT value FROM portcullis_heads WHERE name = $1")
                .bind(name)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?;
            Err(StoreError::Conflict {
                kind,
                expected: seen,
                found: to_u64(found)?,
            })
        }
    }
}

async fn notify(tx: &mut sqlx::PgConnection, payload: String) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(payload)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

const META_COLUMNS: &str =
    "version, parent, sha256, author, message, created_at, format, rollback_of, octet_length(bundle)::bigint AS length";

#[tonic::async_trait]
impl Store for PgStore {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn shared(&self) -> bool {
        true
    }

    fn nudges(&self) -> Option<Arc<Notify>> {
        Some(self.nudges.clone())
    }

    async fn head(&self) -> Result<u64, StoreError> {
        head_of(&self.pool, "version").await
    }

    async fn read_version(&self, version: u64) -> Result<(VersionMeta, Vec<u8>), StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {META_COLUMNS}, bundle FROM portcullis_versions WHERE version = $1"
        ))
        .bind(to_i64(version)?)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .ok_or(StoreError::NotFound(version))?;
        let meta = version_meta(&row)?;
        let bundle: Vec<u8> = row.try_get("bundle").map_err(db_error)?;
        if content_hash(&bundle) != meta.content_hash {
            return Err(corrupt(version, "content hash does not match").into());
        }
        Ok((meta, bundle))
    }

    async fn list(&self) -> Result<(Vec<VersionMeta>, Vec<Corrupt>), StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {META_COLUMNS}, encode(sha256(bundle), 'hex') AS actual
             FROM portcullis_versions ORDER BY version DESC"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let mut metas = Vec::with_capacity(rows.len());
        let mut problems = Vec::new();
        for row in &rows {
            let meta = version_meta(row)?;
            let actual: String = row.try_get("actual").map_err(db_error)?;
            if actual == meta.content_hash {
                metas.push(meta);
            } else {
                problems.push(corrupt(meta.version, "content hash does not match"));
            }
        }
        Ok((metas, problems))
    }

    async fn commit_version(&self, seen_head: u64, meta: &VersionMeta, bundle: Arc<Vec<u8>>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let version = advance(&mut tx, "version", "version", seen_head).await?;
        if version != meta.version {
            return Err(StoreError::Conflict {
                kind: "version",
                expected: meta.version,
                found: version,
            });
        }
        sqlx::query(
            "INSERT INTO portcullis_versions
                 (version, parent, sha256, author, message, created_at, format, rollback_of, bundle)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(to_i64(meta.version)?)
        .bind(to_i64(meta.parent)?)
        .bind(&meta.content_hash)
        .bind(&meta.author)
        .bind(&meta.message)
        .bind(meta.pushed_at)
        .bind(&meta.format)
        .bind(meta.rollback_of.map(to_i64).transpose()?)
        .bind(bundle.as_slice())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        notify(&mut tx, format!("version:{version}")).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn overlay(&self) -> Result<OverlayState, StoreError> {
        let mut state = OverlayState::default();
        // Expired grants are pruned by the engine, which owns the clock.
        for (seq, change) in self.changes_since(0).await? {
            state.apply(seq, &change, Timestamp(i64::MIN));
        }
        Ok(state)
    }

    async fn changes_since(&self, seq: u64) -> Result<Vec<(u64, OverlayChange)>, StoreError> {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT seq, change FROM portcullis_overlay_changes WHERE seq > $1 ORDER BY seq")
                .bind(to_i64(seq)?)
                .fetch_all(&self.pool)
                .await
                .map_err(db_error)?;
        rows.into_iter()
            .map(|(seq, text)| {
                let change = serde_json::from_str(&text)
                    .map_err(|e| StoreError::Incompatible(format!("overlay change {seq} is unreadable: {e}")))?;
                Ok((to_u64(seq)?, change))
            })
            .collect()
    }

    async fn append_change(&self, seen_seq: u64, change: &OverlayChange) -> Result<u64, StoreError> {
        let text = serde_json::to_string(change).map_err(|e| StoreError::Io(std::io::Error::other(e)))?;
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let seq = advance(&mut tx, "overlay", "overlay change", seen_seq).await?;
        let who = change.provenance();
        sqlx::query("INSERT INTO portcullis_overlay_changes (seq, change, author, created_at) VALUES ($1, $2, $3, $4)")
            .bind(to_i64(seq)?)
            .bind(text)
            .bind(&who.author)
            .bind(who.at)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        notify(&mut tx, format!("overlay:{seq}")).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(seq)
    }

    async fn record_activity(&self, observed: &[(String, Timestamp)]) -> Result<(), StoreError> {
        // One row per principal: an upsert may not touch the same row twice.
        let mut latest = std::collections::BTreeMap::new();
        for (p, t) in observed {
            let e = latest.entry(p.as_str()).or_insert(t.0);
            *e = (*e).max(t.0);
        }
        if latest.is_empty() {
            return Ok(());
        }
        let (principals, times): (Vec<&str>, Vec<i64>) = latest.into_iter().unzip();
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        // The head's row lock orders batches by commit, so a reader that has seen batch n
        // has seen every batch before it.
        let batch: i64 =
            sqlx::query_scalar("UPDATE portcullis_heads SET value = value + 1 WHERE name = 'activity' RETURNING value")
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?;
        sqlx::query(
            "INSERT INTO portcullis_activity (principal, authenticated_at, seq)
             SELECT p, t, $3 FROM unnest($1::text[], $2::bigint[]) AS u(p, t)
             ON CONFLICT (principal) DO UPDATE
                 SET authenticated_at = EXCLUDED.authenticated_at, seq = EXCLUDED.seq
                 WHERE portcullis_activity.authenticated_at < EXCLUDED.authenticated_at",
        )
        .bind(principals)
        .bind(times)
        .bind(batch)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    async fn activity_since(&self, cursor: u64) -> Result<(Vec<(String, Timestamp)>, u64), StoreError> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT principal, authenticated_at, seq FROM portcullis_activity WHERE seq > $1 ORDER BY seq",
        )
        .bind(to_i64(cursor)?)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let next = rows.last().map_or(Ok(cursor), |(_, _, seq)| to_u64(*seq))?;
        Ok((rows.into_iter().map(|(p, t, _)| (p, Timestamp(t))).collect(), next))
    }
}
