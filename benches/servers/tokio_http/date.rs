//! *Bench-only copy of `examples/http/date.rs` as of commit 1265246, so that the
//! tokio twin parses and answers exactly as the gopark server does; keep the
//! two in step (`scripts/compare.sh` checks that both send the same bytes).*
//!
//! The `Date` header, formatted at most once per second per worker thread.
//!
//! Formatting an IMF-fixdate for every reply would cost more than the rest
//! of a small reply. As in hyper's `CachedDate`, each thread keeps the text
//! for the current second and reformats it only when the clock has moved to
//! the next second; a connection asks once per batch of replies.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

/// Length of `Sun, 06 Nov 1994 08:49:37 GMT`.
pub const LEN: usize = 29;

thread_local! {
    /// The second the text was made for, and the text.
    static CACHE: Cell<(u64, [u8; LEN])> = const { Cell::new((u64::MAX, [0; LEN])) };
}

/// The current time as an HTTP date.
pub fn now() -> [u8; LEN] {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    CACHE.with(|cache| {
        let (cached_secs, text) = cache.get();
        if cached_secs == secs {
            return text;
        }
        let text = format(secs);
        cache.set((secs, text));
        text
    })
}

/// Formats seconds since the Unix epoch as an IMF-fixdate (RFC 9110 §5.6.7).
pub fn format(secs: u64) -> [u8; LEN] {
    const DAYS: [&[u8; 3]; 7] = [b"Sun", b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = secs / 86_400;
    let of_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days);

    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[0..3].copy_from_slice(DAYS[((days + 4) % 7) as usize]); // 1970-01-01 was a Thursday
    two_digits(&mut out[5..7], day);
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    two_digits(&mut out[12..14], year / 100);
    two_digits(&mut out[14..16], year % 100);
    two_digits(&mut out[17..19], of_day / 3600);
    two_digits(&mut out[20..22], of_day / 60 % 60);
    two_digits(&mut out[23..25], of_day % 60);
    out
}

fn two_digits(out: &mut [u8], n: u64) {
    out[0] = b'0' + (n / 10 % 10) as u8;
    out[1] = b'0' + (n % 10) as u8;
}

/// (year, month 1..=12, day 1..=31) of a day counted from 1970-01-01, by
/// Howard Hinnant's `civil_from_days` for the proleptic Gregorian calendar.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097;
    let doe = z % 146_097; // day of the 400-year era
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the year from March 1
    let mp = (5 * doy + 2) / 153; // month from March = 0
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}
