//! The dead-letter queue. Redriving puts an entry back in its queue under the same id (and so
//! the same idempotency key), in the same transaction that deletes the entry.

use super::{PgStore, Tx, execute, from_json, i, query, query_opt, text_enum, u};
use crate::store::dlq::normalise;
use crate::store::inbox::InboxRow;
use crate::store::{DeadKind, DeadLetter, PushRow, RedriveResult, StoreError};

pub(super) async fn put(tx: &Tx<'_>, dl: &DeadLetter) -> Result<(), StoreError> {
    execute(
        tx,
        "INSERT INTO dead_letters (id, kind, account, reason, dead_at, tries, item) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, account = EXCLUDED.account, reason = EXCLUDED.reason,
             dead_at = EXCLUDED.dead_at, tries = EXCLUDED.tries, item = EXCLUDED.item",
        &[&dl.id, &super::enum_text(&dl.kind), &dl.account, &dl.reason, &i(dl.dead_at_ms), &(dl.tries as i32), &dl.item],
    )
    .await?;
    Ok(())
}

fn letter(r: &tokio_postgres::Row) -> Result<DeadLetter, StoreError> {
    Ok(DeadLetter {
        id: r.get("id"),
        kind: text_enum("dead_letters", r.get("kind"))?,
        account: r.get("account"),
        reason: r.get("reason"),
        dead_at_ms: u(r.get("dead_at")),
        tries: r.get::<_, i32>("tries") as u32,
        item: r.get("item"),
    })
}

impl PgStore {
    /// Dead letters in id order (as redb lists them), at most `limit`.
    pub async fn dlq_list(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let rows = query(&tx, "SELECT * FROM dead_letters ORDER BY id LIMIT $1", &[&(limit.min(i64::MAX as usize) as i64)]).await?;
        tx.commit().await?;
        rows.iter().map(letter).collect()
    }

    pub async fn dlq_get(&self, id: &str) -> Result<Option<DeadLetter>, StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let row = query_opt(&tx, "SELECT * FROM dead_letters WHERE id = $1", &[&normalise(id)]).await?;
        tx.commit().await?;
        row.as_ref().map(letter).transpose()
    }

    pub async fn dlq_len(&self) -> Result<u64, StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let row = query_opt(&tx, "SELECT count(*) FROM dead_letters", &[]).await?.expect("count returns a row");
        tx.commit().await?;
        Ok(u(row.get(0)))
    }

    /// Puts dead letters back in their queues; `None` redrives all of them.
    pub async fn dlq_redrive(&self, ids: Option<Vec<String>>) -> Result<RedriveResult, StoreError> {
        let now = self.now_ms();
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let ids: Vec<String> = match ids {
            Some(ids) => ids.iter().map(|i| normalise(i)).collect(),
            None => query(&tx, "SELECT id FROM dead_letters ORDER BY id", &[]).await?.iter().map(|r| r.get(0)).collect(),
        };
        let mut out = RedriveResult { redriven: Vec::new(), not_found: Vec::new() };
        for id in ids {
            let Some(r) = query_opt(&tx, "DELETE FROM dead_letters WHERE id = $1 RETURNING *", &[&id]).await? else {
                out.not_found.push(id);
                continue;
            };
            let dl = letter(&r)?;
            match dl.kind {
                DeadKind::Outbound => {
                    let msg_id = id.trim_start_matches("out:");
                    if !super::outbox::requeue(&tx, msg_id, now).await? {
                        out.not_found.push(id);
                        continue;
                    }
                }
                DeadKind::Inbound => {
                    let mut row: InboxRow = from_json("dead_letters", dl.item)?;
                    row.deliveries = 0;
                    row.lease = None;
                    row.visible_at_ms = now;
                    super::inbox::insert(&tx, &row).await?;
                }
                DeadKind::Push => {
                    let mut row: PushRow = from_json("dead_letters", dl.item)?;
                    row.attempts = 0;
                    row.last_error = None;
                    super::push::requeue_in(&tx, row, now).await?;
                }
            }
            out.redriven.push(id);
        }
        tx.commit().await?;
        Ok(out)
    }
}
