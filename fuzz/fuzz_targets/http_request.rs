//! Arbitrary bytes as the input of one connection: the request head parser
//! and the framing of bodies (Content-Length and chunked) together.
//!
//! The first three bytes choose how the rest is split into reads; the
//! invariants:
//!
//! * nothing panics, and no event uses more bytes than it was given;
//! * the outcome is the same whether the stream arrives in one read, in
//!   two split anywhere, or in reads of any fixed size (so the decision
//!   never depends on how TCP happened to segment the bytes), and the
//!   same every time;
//! * a head the parser completes is at most `MAX_HEAD` bytes and parses
//!   the same from exactly its own bytes; a decision made on a prefix of
//!   the input stands for the whole input;
//! * a connection never buffers more than `MAX_HEAD` bytes of a head.
#![no_main]

use gopark_fuzz::request::{self, Parsed, MAX_HEAD};
use gopark_fuzz::{every, frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (control, input) = data.split_at(data.len().min(3));
    let control = [0, 1, 2].map(|i| usize::from(control.get(i).copied().unwrap_or(0)));
    let split = (control[0] << 8 | control[1]) % (input.len() + 1);
    let read_size = control[2] + 1;

    let whole = frame(input, [input.len()]);
    assert_eq!(whole, frame(input, [input.len()]), "not deterministic");
    assert_eq!(whole, frame(input, [split]), "split at {split}");
    assert_eq!(
        whole,
        frame(input, every(read_size)),
        "reads of {read_size}"
    );

    let parsed = request::parse(input);
    if let Parsed::Complete(_, len) = &parsed {
        assert!(
            *len <= input.len() && *len <= MAX_HEAD,
            "head of {len} bytes"
        );
        assert_eq!(request::parse(&input[..*len]), parsed);
    }
    let prefix = request::parse(&input[..split]);
    if prefix != Parsed::Partial {
        assert_eq!(prefix, parsed, "decided on the first {split} bytes");
    }
});
