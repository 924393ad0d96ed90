//! Integrity: choose the one digest to compute, hash the body once as it streams, CRC32C for S3 parts.
//!
//! The manifest may carry sha256 and md5; hashing with both would double the CPU per byte, so only the
//! strongest one present is computed. Without any, sha256 is computed so the result still names a digest.

use base64::Engine as _;
use md5::Md5;
use sha2::{Digest as _, Sha256};

/// Which digest a job is verified with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestKind {
    Sha256,
    Md5,
}

impl DigestKind {
    pub fn name(self) -> &'static str {
        match self {
            DigestKind::Sha256 => "sha256",
            DigestKind::Md5 => "md5",
        }
    }

    /// The S3 user-metadata header that records a verified copy.
    pub fn meta_header(self) -> &'static str {
        match self {
            DigestKind::Sha256 => "x-amz-meta-sha256",
            DigestKind::Md5 => "x-amz-meta-md5",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            DigestKind::Sha256 => 64,
            DigestKind::Md5 => 32,
        }
    }
}

/// What a job is checked against: the digest kind and, when the manifest has it, the expected hex value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    pub kind: DigestKind,
    pub hex: Option<String>,
}

/// The strongest digest the manifest carries (sha256, else md5), normalised to lowercase hex.
pub fn choose(sha256: Option<&str>, md5: Option<&str>) -> Result<Expected, String> {
    let pick = |kind: DigestKind, value: &str| -> Result<Expected, String> {
        let hex = value.trim().to_ascii_lowercase();
        if hex.len() != kind.hex_len() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "manifest {} is not a {}-digit hex digest",
                kind.name(),
                kind.hex_len()
            ));
        }
        Ok(Expected {
            kind,
            hex: Some(hex),
        })
    };
    match (non_empty(sha256), non_empty(md5)) {
        (Some(s), _) => pick(DigestKind::Sha256, s),
        (None, Some(m)) => pick(DigestKind::Md5, m),
        (None, None) => Ok(Expected {
            kind: DigestKind::Sha256,
            hex: None,
        }),
    }
}

fn non_empty(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.trim().is_empty())
}

/// A digest fed chunk by chunk; `reset` starts over when a source restarts from byte zero.
#[derive(Clone)]
pub enum StreamDigest {
    Sha256(Sha256),
    Md5(Md5),
}

impl StreamDigest {
    pub fn new(kind: DigestKind) -> Self {
        match kind {
            DigestKind::Sha256 => StreamDigest::Sha256(Sha256::new()),
            DigestKind::Md5 => StreamDigest::Md5(Md5::new()),
        }
    }

    pub fn kind(&self) -> DigestKind {
        match self {
            StreamDigest::Sha256(_) => DigestKind::Sha256,
            StreamDigest::Md5(_) => DigestKind::Md5,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            StreamDigest::Sha256(h) => h.update(data),
            StreamDigest::Md5(h) => h.update(data),
        }
    }

    pub fn reset(&mut self) {
        *self = StreamDigest::new(self.kind());
    }

    pub fn finalize_hex(self) -> String {
        match self {
            StreamDigest::Sha256(h) => to_hex(&h.finalize()),
            StreamDigest::Md5(h) => to_hex(&h.finalize()),
        }
    }
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0xf) as usize] as char);
    }
    out
}

/// Hex digests compared without regard to case or surrounding blanks.
pub fn hex_eq(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// CRC32C continued over `data` (start with 0); hardware accelerated where the CPU has it.
pub fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    crc32c::crc32c_append(crc, data)
}

/// The value of an `x-amz-checksum-crc32c` header: base64 of the big-endian CRC.
pub fn crc32c_header(crc: u32) -> String {
    base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes())
}

/// sha256 of `data` as lowercase hex (small payloads only, e.g. signing).
pub fn sha256_hex(data: &[u8]) -> String {
    to_hex(&Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA_ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    const MD5_ABC: &str = "900150983cd24fb0d6963f7d28e17f72";

    #[test]
    fn sha256_wins_over_md5() {
        let e = choose(Some(&SHA_ABC.to_uppercase()), Some(MD5_ABC)).unwrap();
        assert_eq!(e.kind, DigestKind::Sha256);
        assert_eq!(e.hex.as_deref(), Some(SHA_ABC));
    }

    #[test]
    fn md5_only_where_no_sha256() {
        let e = choose(Some("  "), Some(MD5_ABC)).unwrap();
        assert_eq!(
            e,
            Expected {
                kind: DigestKind::Md5,
                hex: Some(MD5_ABC.into())
            }
        );
        let none = choose(None, None).unwrap();
        assert_eq!(
            none,
            Expected {
                kind: DigestKind::Sha256,
                hex: None
            }
        );
    }

    #[test]
    fn malformed_digest_is_rejected() {
        assert!(choose(Some("abc"), None).is_err());
        assert!(choose(None, Some(&"z".repeat(32))).is_err());
    }

    #[test]
    fn known_vectors() {
        let mut s = StreamDigest::new(DigestKind::Sha256);
        s.update(b"abc");
        assert_eq!(s.finalize_hex(), SHA_ABC);
        let mut m = StreamDigest::new(DigestKind::Md5);
        m.update(b"abc");
        assert_eq!(m.finalize_hex(), MD5_ABC);
    }

    #[test]
    fn streaming_equals_one_shot_for_any_chunking() {
        let data: Vec<u8> = (0..100_003u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for kind in [DigestKind::Sha256, DigestKind::Md5] {
            let mut whole = StreamDigest::new(kind);
            whole.update(&data);
            let expected = whole.finalize_hex();
            for chunk in [1usize, 7, 4096, 65_537, 100_003] {
                let mut s = StreamDigest::new(kind);
                data.chunks(chunk).for_each(|c| s.update(c));
                assert_eq!(s.finalize_hex(), expected, "{kind:?} chunk {chunk}");
            }
        }
    }

    #[test]
    fn reset_forgets_what_was_fed() {
        let mut s = StreamDigest::new(DigestKind::Sha256);
        s.update(b"garbage from an aborted attempt");
        s.reset();
        s.update(b"abc");
        assert_eq!(s.finalize_hex(), SHA_ABC);
    }

    #[test]
    fn crc32c_known_vectors() {
        // RFC 3720 B.4 and the usual check value.
        assert_eq!(crc32c_append(0, b"123456789"), 0xE306_9283);
        assert_eq!(crc32c_append(0, &[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c_append(0, &[0xFFu8; 32]), 0x62A8_AB43);
        let inc: Vec<u8> = (0u8..32).collect();
        assert_eq!(crc32c_append(0, &inc), 0x46DD_794E);
        // Appending in pieces equals one pass.
        assert_eq!(
            crc32c_append(crc32c_append(0, b"1234"), b"56789"),
            0xE306_9283
        );
        assert_eq!(crc32c_header(0xE306_9283), "4waSgw==");
    }

    #[test]
    fn hex_helpers() {
        assert_eq!(to_hex(&[0x00, 0xab, 0xff]), "00abff");
        assert!(hex_eq(" ABCD", "abcd "));
        assert!(!hex_eq("abcd", "abce"));
        assert_eq!(sha256_hex(b"abc"), SHA_ABC);
    }
}
