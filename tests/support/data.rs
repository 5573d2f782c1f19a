//! Payloads and byte comparisons.

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
