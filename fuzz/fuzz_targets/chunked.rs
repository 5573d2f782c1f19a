//! The chunked body decoder on its own.
//!
//! Arbitrary bytes (after three control bytes that choose the splits and
//! the body limit): nothing panics, the outcome (where the body ends, how
//! many data bytes it had, or the refusal) is the same however the input
//! is split into reads, and a body never exceeds its limit.
//!
//! The same bytes as data: encoded as a chunked body (chunk sizes, an
//! extension and a trailer chosen by the control bytes), then decoded, the
//! body ends exactly where it was encoded to end, with all its data.
#![no_main]

use gopark_fuzz::chunked::{Decoder, Progress, MAX_EXTENSIONS};
use gopark_fuzz::every;
use gopark_fuzz::response::Status;
use libfuzzer_sys::fuzz_target;

/// Where the body ended (`None` if the input ran out first) and how many
/// data bytes it had; or the refusal.
type Outcome = Result<(Option<usize>, u64), Status>;

fn decode(input: &[u8], max_body: u64, reads: impl IntoIterator<Item = usize>) -> Outcome {
    let mut decoder = Decoder::new(max_body);
    let mut reads = reads.into_iter();
    let mut fed = 0;
    while fed < input.len() {
        let n = reads
            .next()
            .unwrap_or(input.len())
            .clamp(1, input.len() - fed);
        let Progress { consumed, done } = decoder.decode(&input[fed..fed + n])?;
        assert!(consumed <= n);
        assert!(decoder.body_len() <= max_body);
        fed += consumed;
        if done {
            assert!(decoder.body_len() <= fed as u64);
            return Ok((Some(fed), decoder.body_len()));
        }
        assert_eq!(consumed, n, "stopped early without ending the body");
    }
    Ok((None, decoder.body_len()))
}

const EXTENSION: &[u8] = b" ;name=\"value\"";

/// `data` as a chunked body in chunks of `chunk` bytes, then bytes that
/// must not be taken for part of it.
fn encode(data: &[u8], chunk: usize, extension: bool, trailer: bool) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    for piece in data.chunks(chunk) {
        out.extend_from_slice(format!("{:X}", piece.len()).as_bytes());
        if extension {
            out.extend_from_slice(EXTENSION);
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n");
    if trailer {
        out.extend_from_slice(b"X-Checksum: 1\r\n");
    }
    out.extend_from_slice(b"\r\n");
    let end = out.len();
    out.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
    (out, end)
}

fuzz_target!(|data: &[u8]| {
    let (control, input) = data.split_at(data.len().min(3));
    let control = [0, 1, 2].map(|i| usize::from(control.get(i).copied().unwrap_or(0)));
    let split = (control[0] << 8 | control[1]) % (input.len() + 1);
    let read_size = control[2] % 64 + 1;
    let max_body = if control[2] & 0x80 != 0 { 64 } else { 8 << 20 };

    let whole = decode(input, max_body, [input.len()]);
    assert_eq!(whole, decode(input, max_body, [split]), "split at {split}");
    assert_eq!(
        whole,
        decode(input, max_body, every(read_size)),
        "reads of {read_size}"
    );

    let (chunk, extension) = (control[0] + 1, control[1] & 1 != 0);
    let (body, end) = encode(input, chunk, extension, control[1] & 2 != 0);
    let extensions = input.len().div_ceil(chunk) * EXTENSION.len();
    let expected = if extension && extensions > MAX_EXTENSIONS {
        Err(Status::BadRequest)
    } else {
        Ok((Some(end), input.len() as u64))
    };
    assert_eq!(decode(&body, 8 << 20, [body.len()]), expected);
    assert_eq!(decode(&body, 8 << 20, every(read_size)), expected);
});
