//! Inbound webhook events: dedupe by a unique key, inbox rows, conversation state, history,
//! approvals, push rows and outbound status changes, all in the caller's one (group-committed)
//! transaction.
//!
//! Dedupe across daemons: the event's key is written with `INSERT ... ON CONFLICT DO UPDATE
//! ... WHERE expired`. A second daemon writing the same key waits for the first's transaction
//! and then finds a live key: a webhook retried against another node is stored once.

use super::history;
use crate::store::{HistoryEntry, HistoryOptions};
use super::{PgStore, Tx, execute, i, query_opt, u};
use crate::model::EventKind;
use crate::store::inbox::InboxRow;
use crate::store::{IngestEffects, IngestOptions, IngestOutcome, IngestRequest, Ingested, Polled, StoreError};

impl PgStore {
    pub async fn ingest_with(&self, req: IngestRequest, opts: IngestOptions) -> Result<Ingested, StoreError> {
        let now = self.now_ms();
        self.batch.ingest(req, opts, now, self.opts.dedupe_ttl_ms).await
    }

    /// When the conversation last heard from the user (for 24-hour windows).
    pub async fn last_inbound_ms(&self, account: &str, conversation: &str) -> Result<Option<u64>, StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let row = query_opt(&tx, "SELECT last_inbound FROM conversations WHERE account = $1 AND conversation = $2", &[&account, &conversation]).await?;
        tx.commit().await?;
        Ok(row.and_then(|r| r.get::<_, Option<i64>>(0)).map(u))
    }

    /// Deletes up to `limit` dedupe keys whose TTL has passed; returns how many.
    pub async fn sweep_dedupe(&self, limit: usize) -> Result<usize, StoreError> {
        let now = self.now_ms();
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let n = execute(
            &tx,
            "DELETE FROM dedupe WHERE (account, event_id) IN (
                 SELECT account, event_id FROM dedupe WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
            &[&i(now), &(limit as i64)],
        )
        .await?;
        tx.commit().await?;
        Ok(n as usize)
    }

    /// Stores a poll's events and the new cursor in one transaction, only if `token` still
    /// holds the lease on `lease_resource`.
    pub async fn ingest_polled(
        &self,
        req: IngestRequest,
        opts: IngestOptions,
        lease_resource: &str,
        token: u64,
        cursor: Option<String>,
    ) -> Result<Polled, StoreError> {
        let now = self.now_ms();
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        if !super::leases::lease_holds(&tx, lease_resource, token, now).await? {
            return Ok(Polled::Fenced);
        }
        let account = req.account.clone();
        let ingested = ingest_in(&tx, req, opts, now, self.opts.dedupe_ttl_ms).await?;
        if let (Ingested::Stored(..), Some(c)) = (&ingested, cursor) {
            execute(
                &tx,
                "INSERT INTO poll_cursors (account, cursor) VALUES ($1, $2) ON CONFLICT (account) DO UPDATE SET cursor = EXCLUDED.cursor",
                &[&account, &c],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(Polled::Stored(ingested))
    }

    /// The cursor committed by the account's last poll, if any.
    pub async fn poll_cursor(&self, account: &str) -> Result<Option<String>, StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let row = query_opt(&tx, "SELECT cursor FROM poll_cursors WHERE account = $1", &[&account]).await?;
        tx.commit().await?;
        Ok(row.map(|r| r.get(0)))
    }
}

/// Whether the key is live (a duplicate) at `now`, without writing.
async fn is_duplicate(tx: &Tx<'_>, account: &str, event_id: &str, now: u64) -> Result<bool, StoreError> {
    let row = query_opt(tx, "SELECT 1 FROM dedupe WHERE account = $1 AND event_id = $2 AND expires_at > $3", &[&account, &event_id, &i(now)]).await?;
    Ok(row.is_some())
}

/// Conversations a batch would open new sessions in (before anything is written).
async fn check_sessions(tx: &Tx<'_>, req: &IngestRequest, h: &HistoryOptions, now: u64) -> Result<Option<usize>, StoreError> {
    let mut opening = std::collections::BTreeSet::new();
    for e in req.events.iter().filter(|e| matches!(e.kind, EventKind::Message | EventKind::Reaction)) {
        if is_duplicate(tx, &req.account, &e.provider_event_id, now).await? {
            continue;
        }
        if history::opens_session(tx, &req.account, &e.conversation, now, h).await? {
            opening.insert(e.conversation.as_str());
        }
    }
    if opening.is_empty() {
        return Ok(None);
    }
    let open = history::open_sessions(tx, &req.account, now, h, h.max_open_sessions).await?;
    Ok((open + opening.len() > h.max_open_sessions).then_some(open))
}

pub(super) async fn ingest_in(tx: &Tx<'_>, req: IngestRequest, opts: IngestOptions, now: u64, ttl: u64) -> Result<Ingested, StoreError> {
    if let Some(h) = &opts.history
        && let Some(open) = check_sessions(tx, &req, h, now).await?
    {
        return Ok(Ingested::SessionLimit { open });
    }
    let mut out = IngestOutcome::default();
    let mut effects = IngestEffects::default();
    for event in req.events {
        // New, or replacing an expired key not yet swept: a row comes back. A live key: none.
        let fresh = query_opt(
            tx,
            "INSERT INTO dedupe (account, event_id, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (account, event_id) DO UPDATE SET expires_at = EXCLUDED.expires_at WHERE dedupe.expires_at <= $4
             RETURNING 1",
            &[&req.account, &event.provider_event_id, &i(now + ttl), &i(now)],
        )
        .await?;
        if fresh.is_none() {
            out.duplicates += 1;
            continue;
        }
        if let Some(update) = &event.status
            && super::outbox::apply_status(tx, &req.account, update, now).await?
        {
            out.status_updates += 1;
        }
        if matches!(event.kind, EventKind::Message | EventKind::Reaction) {
            execute(
                tx,
                "INSERT INTO conversations (account, conversation, last_inbound) VALUES ($1, $2, $3)
                 ON CONFLICT (account, conversation) DO UPDATE
                 SET last_inbound = GREATEST(COALESCE(conversations.last_inbound, EXCLUDED.last_inbound), EXCLUDED.last_inbound)",
                &[&req.account, &event.conversation, &i(now)],
            )
            .await?;
        }
        if event.kind == EventKind::Message
            && let (Some(sender), Some(reply)) = (&event.sender, event.text.as_deref().and_then(crate::model::approval_reply))
            && opts.approvers.iter().any(|a| crate::model::same_sender(sender, a))
        {
            let (approved, resolved) = super::tools::resolve_in(tx, &req.account, &event.conversation, reply, sender, now).await?;
            effects.approved_calls.extend(approved);
            effects.approvals_resolved += resolved;
        }
        let id = u(query_opt(tx, "SELECT nextval('event_seq')", &[]).await?.expect("nextval returns a row").get(0));
        if let Some(h) = &opts.history
            && matches!(event.kind, EventKind::Message | EventKind::Reaction)
        {
            let entry = HistoryEntry::inbound(&event, id, now);
            history::record(tx, &req.account, &event.conversation, entry, now, h).await?;
        }
        let row = InboxRow::received(id, &req.account, &req.correlation_id, event, now);
        let pushed = opts.push.as_ref().is_some_and(|p| p.kinds.as_ref().is_none_or(|k| k.contains(&row.event.kind)));
        if pushed {
            super::push::enqueue_in(tx, &row, now).await?;
            effects.pushed += 1;
        }
        if !pushed || opts.push.as_ref().is_some_and(|p| p.pull_too) {
            super::inbox::insert(tx, &row).await?;
            effects.pullable += 1;
        }
        out.stored += 1;
    }
    Ok(Ingested::Stored(out, effects))
}
