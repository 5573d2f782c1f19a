//! Payloads, byte comparisons, and the ledger of numbered messages.

use std::sync::atomic::{AtomicU64, Ordering};

/// `len` bytes of seeded pseudo-random data (splitmix64): a different
/// stream per seed, not periodic in any small stride, so a lost, doubled
/// or misplaced chunk cannot go unnoticed.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Index of the first byte where `got` and `want` differ, if any (the
/// shorter length when one is a prefix of the other).
pub fn first_difference(got: &[u8], want: &[u8]) -> Option<usize> {
    if got == want {
        return None;
    }
    Some(
        got.iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len())),
    )
}

/// Asserts `got == want`, naming the first differing offset.
#[track_caller]
pub fn assert_bytes_eq(got: &[u8], want: &[u8], what: &str) {
    if let Some(first) = first_difference(got, want) {
        panic!(
            "{what}: {} bytes received, {} expected; first difference at offset {first}",
            got.len(),
            want.len()
        );
    }
}

/// Which of the numbers `0..n` have arrived, from any number of tasks: a
/// number that was never sent, or one that arrives twice, fails the test
/// at once; [`assert_all`](Seen::assert_all) checks that none is missing.
pub struct Seen {
    bits: Vec<AtomicU64>,
    count: AtomicU64,
    n: u64,
}

impl Seen {
    pub fn new(n: u64) -> Seen {
        Seen {
            bits: (0..n.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            n,
        }
    }

    /// Marks `v` arrived; returns how many have arrived, this one included
    /// (each count is returned to exactly one caller).
    pub fn mark(&self, v: u64) -> u64 {
        assert!(v < self.n, "received {v}, which was never sent");
        let bit = 1u64 << (v % 64);
        // Relaxed: the bit and the count are read after every marking task
        // was joined, which orders them.
        let before = self.bits[(v / 64) as usize].fetch_or(bit, Ordering::Relaxed);
        assert_eq!(before & bit, 0, "received {v} twice");
        self.count.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// How many have arrived.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Every number arrived (exactly once: `mark` refuses repeats).
    pub fn assert_all(&self) {
        assert_eq!(self.count(), self.n, "messages lost");
        for (i, w) in self.bits.iter().enumerate() {
            let lo = i as u64 * 64;
            let want = if self.n - lo >= 64 {
                u64::MAX
            } else {
                (1u64 << (self.n - lo)) - 1
            };
            assert_eq!(
                w.load(Ordering::Relaxed),
                want,
                "a number in {lo}..{} is missing",
                lo + 64
            );
        }
    }
}
