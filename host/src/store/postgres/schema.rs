//! Versioned, idempotent schema migrations, applied at connect. Each migration runs once,
//! recorded in `schema_migrations`; the pending ones run in one transaction under an advisory
//! lock, so daemons starting together migrate one after the other and the later ones
//! find nothing to do. Tables are created in the first schema of the connection's
//! `search_path` (tests give each test its own schema).
//!
//! Times are `bigint` milliseconds from the daemon's clock; nothing reads `now()`.

use crate::store::StoreError;

/// Key of the advisory lock that serialises migrations (any constant shared by all daemons).
const MIGRATION_LOCK: i64 = 0x5357_4254_4348_0001;

/// (version, SQL). Append only: never edit a released migration.
const MIGRATIONS: &[(i32, &str)] = &[(1, V1)];

const V1: &str = r#"
CREATE SEQUENCE fence_seq;
CREATE SEQUENCE event_seq;
CREATE SEQUENCE outbox_seq;
CREATE SEQUENCE history_seq;

-- Pull inbox. An event is claimable when visible_at <= now; a claim moves visible_at to the
-- lease expiry, so an expired lease makes it claimable again without a sweeper.
CREATE TABLE inbox (
    id              bigint PRIMARY KEY,
    account         text   NOT NULL,
    conversation    text   NOT NULL,
    correlation_id  text   NOT NULL,
    received_at     bigint NOT NULL,
    deliveries      integer NOT NULL,
    visible_at      bigint NOT NULL,
    lease_token     bigint,
    lease_consumer  text,
    lease_expires   bigint,
    event           jsonb  NOT NULL
);
CREATE INDEX inbox_ready ON inbox (visible_at, id);
CREATE INDEX inbox_held ON inbox (lease_consumer, lease_expires) WHERE lease_consumer IS NOT NULL;

-- Webhook dedupe: one row per (account, provider event id) until it expires.
CREATE TABLE dedupe (
    account     text   NOT NULL,
    event_id    text   NOT NULL,
    expires_at  bigint NOT NULL,
    PRIMARY KEY (account, event_id)
);
CREATE INDEX dedupe_expiry ON dedupe (expires_at);

-- Outbound messages. `open`: unfinished (in its conversation's FIFO and the queue cap).
-- due_at: where it sits in the due order (NULL once final); in-flight rows sit at their
-- lease expiry.
CREATE TABLE outbox (
    id                   text     PRIMARY KEY,
    account              text     NOT NULL,
    recipient            text     NOT NULL,
    conversation         text     NOT NULL,
    body                 jsonb    NOT NULL,
    metadata             jsonb,
    idempotency_key      text,
    correlation_id       text     NOT NULL,
    priority             smallint NOT NULL,
    seq                  bigint   NOT NULL,
    status               text     NOT NULL,
    created_at           bigint   NOT NULL,
    updated_at           bigint   NOT NULL,
    due_at               bigint,
    attempts             jsonb    NOT NULL,
    provider_message_id  text,
    error                jsonb,
    lease_token          bigint,
    lease_expires        bigint,
    open                 boolean  NOT NULL
);
CREATE INDEX outbox_due ON outbox (priority, due_at, id) WHERE due_at IS NOT NULL;
CREATE INDEX outbox_fifo ON outbox (account, conversation, seq) WHERE open;
CREATE INDEX outbox_open ON outbox (account) WHERE open;
CREATE UNIQUE INDEX outbox_provider ON outbox (account, provider_message_id) WHERE provider_message_id IS NOT NULL;
CREATE INDEX outbox_created ON outbox (id DESC);

CREATE TABLE idempotency (
    key          text   PRIMARY KEY,
    message_id   text   NOT NULL,
    fingerprint  text   NOT NULL,
    expires_at   bigint NOT NULL
);
CREATE INDEX idempotency_expiry ON idempotency (expires_at);

-- `out:<message id>`, `in:<event id>`, `push:<event id>`.
CREATE TABLE dead_letters (
    id       text   PRIMARY KEY,
    kind     text   NOT NULL,
    account  text   NOT NULL,
    reason   text   NOT NULL,
    dead_at  bigint NOT NULL,
    tries    integer NOT NULL,
    item     jsonb  NOT NULL
);

-- Resource leases (e.g. `poll:<account>`: one poller per bot across all daemons).
CREATE TABLE leases (
    resource    text   PRIMARY KEY,
    holder      text   NOT NULL,
    token       bigint NOT NULL,
    expires_at  bigint NOT NULL
);

CREATE TABLE conversations (
    account        text   NOT NULL,
    conversation   text   NOT NULL,
    last_inbound   bigint,
    session        bigint NOT NULL DEFAULT 0,
    last_activity  bigint,
    PRIMARY KEY (account, conversation)
);
CREATE INDEX conversations_activity ON conversations (account, last_activity) WHERE last_activity IS NOT NULL;

CREATE TABLE history (
    account       text   NOT NULL,
    conversation  text   NOT NULL,
    seq           bigint NOT NULL,
    entry         jsonb  NOT NULL,
    PRIMARY KEY (account, conversation, seq)
);

CREATE TABLE plugin_kv (
    plugin  text  NOT NULL,
    key     text  NOT NULL,
    value   bytea NOT NULL,
    PRIMARY KEY (plugin, key)
);

-- Push deliveries (same ids as the inbox); in-flight rows sit at their lease expiry.
CREATE TABLE push_queue (
    id              bigint  PRIMARY KEY,
    account         text    NOT NULL,
    conversation    text    NOT NULL,
    correlation_id  text    NOT NULL,
    received_at     bigint  NOT NULL,
    attempts        integer NOT NULL,
    due_at          bigint  NOT NULL,
    lease_token     bigint,
    lease_expires   bigint,
    last_error      text,
    event           jsonb   NOT NULL
);
CREATE INDEX push_due ON push_queue (due_at, id);
CREATE INDEX push_fifo ON push_queue (account, conversation, id);

CREATE TABLE tool_calls (
    id                text   PRIMARY KEY,
    account           text,
    conversation      text,
    status            text   NOT NULL,
    approval_expires  bigint,
    -- The daemon (its connections' application_name suffix) that runs a `running` call.
    runner            text,
    call              jsonb  NOT NULL
);
CREATE INDEX tool_calls_pending ON tool_calls (account, conversation) WHERE status = 'awaiting_approval';
CREATE INDEX tool_calls_expiry ON tool_calls (approval_expires) WHERE status = 'awaiting_approval';
CREATE INDEX tool_calls_status ON tool_calls (status) WHERE status IN ('approved', 'running');

-- account -> the cursor to pass to the plugin's next poll, written with the events it covers.
CREATE TABLE poll_cursors (
    account  text PRIMARY KEY,
    cursor   text NOT NULL
);
"#;

/// Applies the migrations this build knows and the database has not seen.
pub(super) async fn migrate(c: &mut deadpool_postgres::Object) -> Result<(), StoreError> {
    let tx = c.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at_ms bigint NOT NULL)").await?;
    let done: Vec<i32> = tx.query("SELECT version FROM schema_migrations", &[]).await?.iter().map(|r| r.get(0)).collect();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    for (version, sql) in MIGRATIONS {
        if done.contains(version) {
            continue;
        }
        tx.batch_execute(sql).await?;
        tx.execute("INSERT INTO schema_migrations (version, applied_at_ms) VALUES ($1, $2)", &[version, &now]).await?;
        tracing::info!(version, "store schema migrated");
    }
    if let Some(newest) = done.iter().max()
        && *newest > MIGRATIONS.last().map_or(0, |m| m.0)
    {
        return Err(StoreError::Postgres(format!(
            "the database schema is at version {newest}, newer than this build knows; upgrade switchboard"
        )));
    }
    tx.commit().await?;
    Ok(())
}
