//! The agent-facing inbox: claim with a lease (`FOR UPDATE SKIP LOCKED`, so daemons never hand
//! out the same event twice nor wait on each other), ack, nack. Ack and nack check the claim's
//! fencing token in their `WHERE` clause.

use super::{PgStore, Tx, execute, from_json, i, next_token, query, query_opt, to_json, u};
use crate::store::inbox::{InboxLease, InboxRow};
use crate::store::{AckResult, ClaimRequest, ClaimedEvent, DeadLetter, InboxClaim, StoreError};

pub(super) const COLUMNS: &str =
    "id, account, correlation_id, received_at, deliveries, visible_at, lease_token, lease_consumer, lease_expires, event";

pub(super) fn row_of(r: &tokio_postgres::Row) -> Result<InboxRow, StoreError> {
    let token: Option<i64> = r.get("lease_token");
    let lease = match (token, r.get::<_, Option<String>>("lease_consumer"), r.get::<_, Option<i64>>("lease_expires")) {
        (Some(t), Some(consumer), Some(exp)) => Some(InboxLease { token: u(t), consumer, expires_at_ms: u(exp) }),
        _ => None,
    };
    Ok(InboxRow {
        id: u(r.get("id")),
        account: r.get("account"),
        correlation_id: r.get("correlation_id"),
        received_at_ms: u(r.get("received_at")),
        deliveries: r.get::<_, i32>("deliveries") as u32,
        visible_at_ms: u(r.get("visible_at")),
        lease,
        event: from_json("inbox", r.get("event"))?,
    })
}

/// Writes a new (or redriven) inbox row.
pub(super) async fn insert(tx: &Tx<'_>, row: &InboxRow) -> Result<(), StoreError> {
    execute(
        tx,
        "INSERT INTO inbox (id, account, conversation, correlation_id, received_at, deliveries, visible_at, event)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (id) DO UPDATE SET deliveries = EXCLUDED.deliveries, visible_at = EXCLUDED.visible_at,
             lease_token = NULL, lease_consumer = NULL, lease_expires = NULL",
        &[
            &i(row.id),
            &row.account,
            &row.event.conversation,
            &row.correlation_id,
            &i(row.received_at_ms),
            &(row.deliveries as i32),
            &i(row.visible_at_ms),
            &to_json(&row.event),
        ],
    )
    .await?;
    Ok(())
}

impl PgStore {
    pub async fn claim_inbox(&self, req: ClaimRequest) -> Result<InboxClaim, StoreError> {
        let now = self.now_ms();
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let out = claim_in(&tx, req, now).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Deletes events held under `lease`.
    pub async fn ack_inbox(&self, ids: Vec<String>, lease: String) -> Result<AckResult, StoreError> {
        self.settle(ids, lease, "DELETE FROM inbox WHERE id = ANY($1) AND lease_token = $2 RETURNING id", None).await
    }

    /// Returns events held under `lease` to the queue after `delay_ms`.
    pub async fn nack_inbox(&self, ids: Vec<String>, lease: String, delay_ms: u64) -> Result<AckResult, StoreError> {
        let at = self.now_ms() + delay_ms;
        self.settle(
            ids,
            lease,
            "UPDATE inbox SET visible_at = $3, lease_token = NULL, lease_consumer = NULL, lease_expires = NULL
             WHERE id = ANY($1) AND lease_token = $2 RETURNING id",
            Some(at),
        )
        .await
    }

    /// Applies `sql` (guarded by the lease token) to the ids; the rest are rejected.
    async fn settle(&self, ids: Vec<String>, lease: String, sql: &str, at: Option<u64>) -> Result<AckResult, StoreError> {
        let Ok(token) = lease.parse::<u64>() else {
            return Ok(AckResult { acked: Vec::new(), rejected: ids });
        };
        let numeric: Vec<i64> = ids.iter().filter_map(|s| s.parse::<u64>().ok()).map(i).collect();
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let rows = match at {
            Some(at) => query(&tx, sql, &[&numeric, &i(token), &i(at)]).await?,
            None => query(&tx, sql, &[&numeric, &i(token)]).await?,
        };
        tx.commit().await?;
        let mut hit: std::collections::HashSet<u64> = rows.iter().map(|r| u(r.get(0))).collect();
        let mut out = AckResult::default();
        for id in ids {
            // Each settled id counts once, in the order asked (as the redb store answers).
            match id.parse::<u64>() {
                Ok(n) if hit.remove(&n) => out.acked.push(id),
                _ => out.rejected.push(id),
            }
        }
        Ok(out)
    }

    /// Events waiting (claimable now or later, or leased).
    pub async fn inbox_len(&self) -> Result<u64, StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let row = query_opt(&tx, "SELECT count(*) FROM inbox", &[]).await?.expect("count returns a row");
        tx.commit().await?;
        Ok(u(row.get(0)))
    }
}

async fn claim_in(tx: &Tx<'_>, req: ClaimRequest, now: u64) -> Result<InboxClaim, StoreError> {
    let held = query_opt(
        tx,
        "SELECT count(*) FROM inbox WHERE lease_consumer = $1 AND lease_expires > $2",
        &[&req.consumer, &i(now)],
    )
    .await?
    .map_or(0, |r| u(r.get(0)) as usize);
    if held >= req.max_held {
        return Ok(InboxClaim { lease: String::new(), lease_expires_at_ms: 0, events: Vec::new(), expired_leases: 0, held_limit: Some(held) });
    }
    let max = req.max.min(req.max_held - held);
    let token = next_token(tx).await?;
    let expires = now + req.lease_ms;
    let mut events = Vec::new();
    let mut expired_leases = 0;
    let sql = format!(
        "SELECT {COLUMNS} FROM inbox
         WHERE visible_at <= $1 AND ($2::text IS NULL OR account = $2) AND ($3::text IS NULL OR conversation = $3)
         ORDER BY visible_at, id LIMIT $4 FOR UPDATE SKIP LOCKED"
    );
    // Events handed out `max_deliveries` times are dead-lettered as the scan meets them, so a
    // chunk may yield fewer claims than rows: scan on until `max` or the end.
    while events.len() < max {
        let want = (max - events.len()).min(10_000) as i64 + 16;
        let rows = query(tx, &sql, &[&i(now), &req.account, &req.conversation, &want]).await?;
        let exhausted = (rows.len() as i64) < want;
        for r in &rows {
            if events.len() >= max {
                break;
            }
            let mut row = row_of(r)?;
            if row.deliveries >= req.max_deliveries {
                execute(tx, "DELETE FROM inbox WHERE id = $1", &[&i(row.id)]).await?;
                super::dlq::put(tx, &DeadLetter::inbound(&row, now)).await?;
                continue;
            }
            expired_leases += usize::from(row.lease.is_some());
            row.deliveries += 1;
            execute(
                tx,
                "UPDATE inbox SET deliveries = $2, visible_at = $3, lease_token = $4, lease_consumer = $5, lease_expires = $3 WHERE id = $1",
                &[&i(row.id), &(row.deliveries as i32), &i(expires), &i(token), &req.consumer],
            )
            .await?;
            events.push(ClaimedEvent {
                id: row.id.to_string(),
                account: row.account,
                correlation_id: row.correlation_id,
                received_at_ms: row.received_at_ms,
                deliveries: row.deliveries,
                event: row.event,
            });
        }
        if exhausted {
            break;
        }
    }
    Ok(InboxClaim { lease: token.to_string(), lease_expires_at_ms: expires, events, expired_leases, held_limit: None })
}
