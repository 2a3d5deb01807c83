//! Random tokens for lock holders, queue claims and idempotency markers.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{SystemTime, UNIX_EPOCH};

use super::canonical::hex;

/// 128 random bits as 32 lower-case hex digits, from the operating system's
/// generator. Unique for all practical purposes, and not guessable by another
/// caller (a lock token must not be forgeable by a caller who is not the holder).
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // The OS generator is unavailable (it practically never is): fall back
        // to std's per-process random hasher keys mixed with a counter and
        // the clock, still unique within and across processes.
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let state = std::hash::RandomState::new();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let n = COUNTER.fetch_add(1, Relaxed);
        let hi = state.hash_one((nanos, n, std::process::id()));
        let lo = state.hash_one((n, nanos));
        bytes[..8].copy_from_slice(&hi.to_le_bytes());
        bytes[8..].copy_from_slice(&lo.to_le_bytes());
    }
    hex(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_32_hex_digits_and_distinct() {
        let a = random_token();
        let b = random_token();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
