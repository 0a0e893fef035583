//! The agent-facing inbox: claim with a lease, ack, nack. A lease carries a fencing token
//! that grows on every grant, so an ack from a consumer whose lease expired and was re-granted
//! is refused instead of deleting the new holder's work.

use crate::model::InboundEvent;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InboxLease {
    pub token: u64,
    pub consumer: String,
    pub expires_at_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InboxRow {
    pub id: u64,
    pub account: String,
    pub correlation_id: String,
    pub received_at_ms: u64,
    pub deliveries: u32,
    pub visible_at_ms: u64,
    pub lease: Option<InboxLease>,
    pub event: InboundEvent,
}

impl InboxRow {
    /// A verified webhook's event as stored: visible now, never delivered (both engines).
    pub fn received(id: u64, account: &str, correlation_id: &str, event: InboundEvent, now: u64) -> Self {
        Self {
            id,
            account: account.to_string(),
            correlation_id: correlation_id.to_string(),
            received_at_ms: now,
            deliveries: 0,
            visible_at_ms: now,
            lease: None,
            event,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClaimRequest {
    pub max: usize,
    pub lease_ms: u64,
    pub consumer: String,
    pub account: Option<String>,
    /// Only events of this conversation.
    pub conversation: Option<String>,
    /// An event already handed out this many times goes to the dead-letter queue instead.
    pub max_deliveries: u32,
    /// Events the consumer may hold under unexpired leases, this claim included.
    pub max_held: usize,
}

/// An event handed to a consumer, as the API returns it.
#[derive(Debug, Clone, Serialize)]
pub struct ClaimedEvent {
    pub id: String,
    pub account: String,
    pub correlation_id: String,
    pub received_at_ms: u64,
    /// How many times this event has been handed out, this time included.
    pub deliveries: u32,
    #[serde(flatten)]
    pub event: InboundEvent,
}

#[derive(Debug, Clone, Serialize)]
pub struct InboxClaim {
    /// The fencing token of this claim; pass it to ack/nack.
    pub lease: String,
    pub lease_expires_at_ms: u64,
    pub events: Vec<ClaimedEvent>,
    /// Events among these whose previous lease ran out unacked (for `/metrics`).
    #[serde(skip)]
    pub expired_leases: usize,
    /// Set when nothing was claimed because the consumer already holds this many events
    /// (`max_held`): it must ack or nack first.
    #[serde(skip)]
    pub held_limit: Option<usize>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct AckResult {
    pub acked: Vec<String>,
    /// Ids that are unknown, already acked, or held under another (newer) lease.
    pub rejected: Vec<String>,
}
