//! Conversation history and sessions: the last `limit` messages of each conversation, each
//! tagged with its session, and the per-account cap on open sessions (conversations active
//! within the session timeout). Session state lives in the `conversations` row, beside the
//! 24-hour-window state.

use super::{PgStore, Tx, execute, from_json, i, query, query_opt, to_json, u};
use crate::store::{HistoryEntry, HistoryOptions, StoreError};

/// (session, last activity) of a conversation.
async fn state(tx: &Tx<'_>, account: &str, conversation: &str) -> Result<(u64, Option<u64>), StoreError> {
    let row = query_opt(
        tx,
        "SELECT session, last_activity FROM conversations WHERE account = $1 AND conversation = $2",
        &[&account, &conversation],
    )
    .await?;
    Ok(row.map_or((0, None), |r| (u(r.get(0)), r.get::<_, Option<i64>>(1).map(u))))
}

fn is_open(last_activity: Option<u64>, now: u64, timeout: u64) -> bool {
    last_activity.is_some_and(|t| now.saturating_sub(t) < timeout)
}

/// Whether a message now would open a new session in this conversation.
pub(super) async fn opens_session(tx: &Tx<'_>, account: &str, conversation: &str, now: u64, opts: &HistoryOptions) -> Result<bool, StoreError> {
    let (_, last) = state(tx, account, conversation).await?;
    Ok(!is_open(last, now, opts.session_timeout_ms))
}

/// Conversations of `account` active within the session timeout (counted up to `cap`).
pub(super) async fn open_sessions(tx: &Tx<'_>, account: &str, now: u64, opts: &HistoryOptions, cap: usize) -> Result<usize, StoreError> {
    let from = now.saturating_sub(opts.session_timeout_ms) + 1;
    let row = query_opt(
        tx,
        "SELECT count(*) FROM (SELECT 1 FROM conversations WHERE account = $1 AND last_activity >= $2 LIMIT $3) s",
        &[&account, &i(from), &(cap.min(i64::MAX as usize) as i64)],
    )
    .await?;
    Ok(row.map_or(0, |r| u(r.get(0)) as usize))
}

/// Appends a message to the conversation's history (trimming it to the retention) and moves
/// its session on.
pub(super) async fn record(
    tx: &Tx<'_>,
    account: &str,
    conversation: &str,
    mut entry: HistoryEntry,
    now: u64,
    opts: &HistoryOptions,
) -> Result<(), StoreError> {
    // Lock the conversation row so two daemons recording at once agree on its session.
    execute(
        tx,
        "INSERT INTO conversations (account, conversation) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&account, &conversation],
    )
    .await?;
    let row = query_opt(
        tx,
        "SELECT session, last_activity FROM conversations WHERE account = $1 AND conversation = $2 FOR UPDATE",
        &[&account, &conversation],
    )
    .await?
    .expect("inserted above");
    let (mut session, last): (u64, Option<u64>) = (u(row.get(0)), row.get::<_, Option<i64>>(1).map(u));
    if !is_open(last, now, opts.session_timeout_ms) {
        session += 1;
    }
    let last = last.map_or(now, |t| t.max(now));
    execute(
        tx,
        "UPDATE conversations SET session = $3, last_activity = $4 WHERE account = $1 AND conversation = $2",
        &[&account, &conversation, &i(session), &i(last)],
    )
    .await?;
    entry.seq = u(query_opt(tx, "SELECT nextval('history_seq')", &[]).await?.expect("nextval returns a row").get(0));
    entry.session = session;
    execute(
        tx,
        "INSERT INTO history (account, conversation, seq, entry) VALUES ($1, $2, $3, $4)",
        &[&account, &conversation, &i(entry.seq), &to_json(&entry)],
    )
    .await?;
    execute(
        tx,
        "DELETE FROM history WHERE account = $1 AND conversation = $2 AND seq <= (
             SELECT seq FROM history WHERE account = $1 AND conversation = $2 ORDER BY seq DESC OFFSET $3 LIMIT 1)",
        &[&account, &conversation, &(opts.limit as i64)],
    )
    .await?;
    Ok(())
}

impl PgStore {
    /// The conversation's kept messages, newest first, at most `limit`.
    pub async fn history(&self, account: &str, conversation: &str, limit: usize) -> Result<Vec<HistoryEntry>, StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let rows = query(
            &tx,
            "SELECT entry FROM history WHERE account = $1 AND conversation = $2 ORDER BY seq DESC LIMIT $3",
            &[&account, &conversation, &(limit.min(i64::MAX as usize) as i64)],
        )
        .await?;
        tx.commit().await?;
        rows.into_iter().map(|r| from_json("history", r.get(0))).collect()
    }
}

/// Whether an outbound message now would open a session in `conversation` beyond the
/// account's cap: `Some(open sessions)` then.
pub(super) async fn refuses_session(tx: &Tx<'_>, account: &str, conversation: &str, now: u64, opts: &HistoryOptions) -> Result<Option<usize>, StoreError> {
    if !opens_session(tx, account, conversation, now, opts).await? {
        return Ok(None);
    }
    let open = open_sessions(tx, account, now, opts, opts.max_open_sessions).await?;
    Ok((open >= opts.max_open_sessions).then_some(open))
}

/// Records a message just enqueued in its conversation's history.
pub(super) async fn record_outbound(tx: &Tx<'_>, row: &crate::store::OutboxRow, now: u64, opts: &HistoryOptions) -> Result<(), StoreError> {
    let entry = HistoryEntry::outbound(row.id.clone(), row.history_text(), now);
    record(tx, &row.account, &row.conversation, entry, now, opts).await
}
