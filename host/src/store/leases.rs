//! Resource leases with fencing tokens (e.g. `poll:<account>`: one poller per bot across all
//! processes sharing the store). A grant always carries a token larger than any before it, and
//! writes made under a lease check it in the same transaction ([`lease_holds`]).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub holder: String,
    pub token: u64,
    pub expires_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquire {
    Granted(LeaseRecord),
    /// Someone else holds it until `expires_at_ms`.
    Busy(LeaseRecord),
}
