//! `switchboard store import`: writes exported records (see [`ExportRecord`]) into PostgreSQL.
//! Every insert is `ON CONFLICT DO NOTHING`, so importing the same file twice (or resuming an
//! import that stopped half-way) changes nothing the first run wrote. Counters only move up.

use super::{PgStore, Tx, enum_text, execute, i, to_json};
use crate::store::transfer::outbox_open;
use crate::store::{ExportRecord, StoreError};

/// The sequence behind each exported counter.
fn sequence(counter: &str) -> Option<&'static str> {
    match counter {
        "fence" => Some("fence_seq"),
        "inbox_seq" => Some("event_seq"),
        "outbox_seq" => Some("outbox_seq"),
        "history_seq" => Some("history_seq"),
        _ => None,
    }
}

async fn import_one(tx: &Tx<'_>, record: ExportRecord) -> Result<u64, StoreError> {
    Ok(match record {
        ExportRecord::Counter { name, value } => {
            let Some(seq) = sequence(&name) else { return Ok(0) };
            let sql = format!("SELECT setval('{seq}', GREATEST((SELECT last_value FROM {seq}), $1))");
            execute(tx, &sql, &[&i(value.max(1))]).await?;
            0
        }
        ExportRecord::Inbox { row } => {
            let lease = row.lease.as_ref();
            execute(
                tx,
                "INSERT INTO inbox (id, account, conversation, correlation_id, received_at, deliveries, visible_at, lease_token, lease_consumer, lease_expires, event)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
                &[
                    &i(row.id),
                    &row.account,
                    &row.event.conversation,
                    &row.correlation_id,
                    &i(row.received_at_ms),
                    &(row.deliveries as i32),
                    &i(row.visible_at_ms),
                    &lease.map(|l| i(l.token)),
                    &lease.map(|l| l.consumer.clone()),
                    &lease.map(|l| i(l.expires_at_ms)),
                    &to_json(&row.event),
                ],
            )
            .await?
        }
        ExportRecord::Dedupe { account, event_id, expires_at_ms } => {
            execute(tx, "INSERT INTO dedupe (account, event_id, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", &[&account, &event_id, &i(expires_at_ms)]).await?
        }
        ExportRecord::Outbox { row } => {
            execute(
                tx,
                "INSERT INTO outbox (id, account, recipient, conversation, body, metadata, idempotency_key, correlation_id, priority, seq,
                     status, created_at, updated_at, due_at, attempts, provider_message_id, error, lease_token, lease_expires, open)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20) ON CONFLICT DO NOTHING",
                &[
                    &row.id,
                    &row.account,
                    &row.to,
                    &row.conversation,
                    &to_json(&row.body),
                    &row.metadata,
                    &row.idempotency_key,
                    &row.correlation_id,
                    &(row.priority.rank() as i16),
                    &i(row.seq),
                    &enum_text(&row.status),
                    &i(row.created_at_ms),
                    &i(row.updated_at_ms),
                    // A redb claim parks a message blocked behind its conversation's head out of
                    // the due order; here the claim checks the head itself, so it is due again.
                    &row.due_at_ms.or(outbox_open(&row).then_some(row.updated_at_ms)).map(i),
                    &to_json(&row.attempts),
                    &row.provider_message_id,
                    &row.error.as_ref().map(to_json),
                    &row.lease.as_ref().map(|l| i(l.token)),
                    &row.lease.as_ref().map(|l| i(l.expires_at_ms)),
                    &outbox_open(&row),
                ],
            )
            .await?
        }
        ExportRecord::Idempotency { key, message_id, fingerprint, expires_at_ms } => {
            execute(
                tx,
                "INSERT INTO idempotency (key, message_id, fingerprint, expires_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &[&key, &message_id, &fingerprint, &i(expires_at_ms)],
            )
            .await?
        }
        ExportRecord::DeadLetter { entry } => {
            execute(
                tx,
                "INSERT INTO dead_letters (id, kind, account, reason, dead_at, tries, item) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                &[&entry.id, &enum_text(&entry.kind), &entry.account, &entry.reason, &i(entry.dead_at_ms), &(entry.tries as i32), &entry.item],
            )
            .await?
        }
        ExportRecord::Conversation { account, conversation, last_inbound_ms, session, last_activity_ms } => {
            execute(
                tx,
                "INSERT INTO conversations (account, conversation, last_inbound, session, last_activity) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                &[&account, &conversation, &last_inbound_ms.map(i), &i(session), &last_activity_ms.map(i)],
            )
            .await?
        }
        ExportRecord::History { account, conversation, entry } => {
            execute(
                tx,
                "INSERT INTO history (account, conversation, seq, entry) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &[&account, &conversation, &i(entry.seq), &to_json(&entry)],
            )
            .await?
        }
        ExportRecord::PluginKv { plugin, key, value } => {
            execute(tx, "INSERT INTO plugin_kv (plugin, key, value) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", &[&plugin, &key, &value]).await?
        }
        ExportRecord::Push { row } => {
            execute(
                tx,
                "INSERT INTO push_queue (id, account, conversation, correlation_id, received_at, attempts, due_at, lease_token, lease_expires, last_error, event)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
                &[
                    &i(row.id),
                    &row.account,
                    &row.event.conversation,
                    &row.correlation_id,
                    &i(row.received_at_ms),
                    &(row.attempts as i32),
                    &i(row.due_at_ms),
                    &row.lease.as_ref().map(|l| i(l.token)),
                    &row.lease.as_ref().map(|l| i(l.expires_at_ms)),
                    &row.last_error,
                    &to_json(&row.event),
                ],
            )
            .await?
        }
        ExportRecord::ToolCall { call } => {
            execute(
                tx,
                "INSERT INTO tool_calls (id, account, conversation, status, approval_expires, call) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                &[
                    &call.id,
                    &call.account.as_deref().unwrap_or(""),
                    &call.conversation.as_deref().unwrap_or(""),
                    &enum_text(&call.status),
                    &call.approval.as_ref().map(|a| i(a.expires_at_ms)),
                    &to_json(&call),
                ],
            )
            .await?
        }
        ExportRecord::PollCursor { account, cursor } => {
            execute(tx, "INSERT INTO poll_cursors (account, cursor) VALUES ($1, $2) ON CONFLICT DO NOTHING", &[&account, &cursor]).await?
        }
    })
}

impl PgStore {
    /// Writes `records` in one transaction; returns how many rows were new.
    pub async fn import(&self, records: Vec<ExportRecord>) -> Result<u64, StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let mut written = 0;
        for r in records {
            written += import_one(&tx, r).await?;
        }
        tx.commit().await?;
        Ok(written)
    }
}
