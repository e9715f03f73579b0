//! Hot copies whose writers race (a test's live state, a tutoring context)
//! are stored framed: their `seq` as 4 big-endian bytes, then the body. The
//! compare-and-set scripts read the `seq` (`struct.unpack('>I4', …)`) without
//! decoding the body; nothing outside storage sees the frame.

/// `seq`, then `body`.
pub(super) fn frame(seq: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Splits a framed value into its `seq` and body; `None` when it is too short
/// to be one.
pub(super) fn unframe(raw: &[u8]) -> Option<(u32, &[u8])> {
    let (seq, body) = raw.split_first_chunk::<4>()?;
    Some((u32::from_be_bytes(*seq), body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let raw = frame(70_000, b"body");
        assert_eq!(&raw[..4], &70_000u32.to_be_bytes());
        assert_eq!(unframe(&raw), Some((70_000, &b"body"[..])));
        assert_eq!(unframe(b"abc"), None);
    }
}
