//! How the background loops (delivery workers, agent push, approvals) wait when they find
//! nothing to do. They used to look every `poll_interval_ms` (50): ~100 wake-ups a second,
//! and a read transaction each, in a daemon with nothing to do. Now each asks the store when
//! its next item is due and sleeps until then, woken early by whatever queues work in this
//! process (the `Notify` each loop has) or by a test moving its clock
//! ([`crate::clock::Clock::moved`]). A store other processes write (PostgreSQL, several
//! daemons) is still polled: nobody here is told what another daemon queued.

use std::time::Duration;

/// The longest an idle loop sleeps on a store only this process writes. Everything that
/// queues work here also wakes the loops, so this only bounds what a missed wake-up or a jump
/// of the wall clock could cost.
pub const IDLE_CAP: Duration = Duration::from_secs(5);

/// How long an idle loop sleeps before it looks again, unless woken: until `next` (when the
/// store said the next item is due, in clock ms; `now` is the clock when it said so), at
/// most [`IDLE_CAP`], or `poll` on a `shared` store. An item already due that the loop could
/// not take (a message behind its conversation's head, say) waits `poll`, so that the loop
/// does not spin on it.
pub fn sleep_for(next: Option<u64>, now: u64, poll: Duration, shared: bool) -> Duration {
    let cap = if shared { poll } else { IDLE_CAP };
    match next {
        Some(at) if at > now => Duration::from_millis(at - now).min(cap),
        Some(_) => poll.min(cap),
        None => cap,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLL: Duration = Duration::from_millis(50);

    #[test]
    fn an_idle_loop_sleeps_until_the_next_item_is_due() {
        assert_eq!(sleep_for(Some(1_300), 1_000, POLL, false), Duration::from_millis(300));
        assert_eq!(sleep_for(Some(1_000 + 3_600_000), 1_000, POLL, false), IDLE_CAP, "an hour away: look again at the cap");
        assert_eq!(sleep_for(None, 1_000, POLL, false), IDLE_CAP, "nothing queued: only a wake-up brings work");
    }

    #[test]
    fn an_item_due_but_not_taken_does_not_spin_the_loop() {
        assert_eq!(sleep_for(Some(900), 1_000, POLL, false), POLL);
        assert_eq!(sleep_for(Some(1_000), 1_000, POLL, false), POLL);
    }

    #[test]
    fn a_shared_store_is_polled() {
        assert_eq!(sleep_for(None, 1_000, POLL, true), POLL, "another daemon may queue work at any time");
        assert_eq!(sleep_for(Some(1_010), 1_000, POLL, true), Duration::from_millis(10));
    }
}
