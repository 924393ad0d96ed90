//! Part planning for S3 uploads and range/resume planning for source GETs: pure decisions, no I/O.

/// S3's smallest part (except the last one).
pub const MIN_PART: u64 = 5 * 1024 * 1024;
/// S3's largest part.
pub const MAX_PART: u64 = 5 * 1024 * 1024 * 1024;
/// S3's limit on parts in one multipart upload.
pub const MAX_PARTS: u64 = 10_000;
const MIB: u64 = 1024 * 1024;

/// The part size to use: the requested one clamped to S3's limits, grown (in whole MiB) when a file of known
/// size would otherwise need more than 10,000 parts.
pub fn part_size(requested: u64, known_size: Option<u64>) -> u64 {
    let mut part = requested.clamp(MIN_PART, MAX_PART);
    if let Some(size) = known_size {
        if size.div_ceil(part) > MAX_PARTS {
            part = size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
        }
    }
    part
}

/// How a body of `size` bytes is uploaded with parts of `part` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum UploadShape {
    /// One PutObject: smaller than one part.
    Single,
    /// A multipart upload of `parts` parts.
    Multipart { parts: u64 },
}

pub fn shape(size: u64, part: u64) -> UploadShape {
    if size < part {
        UploadShape::Single
    } else {
        UploadShape::Multipart {
            parts: size.div_ceil(part).max(1),
        }
    }
}

/// `(offset, length)` of every part of a `size`-byte body.
pub fn part_ranges(size: u64, part: u64) -> Vec<(u64, u64)> {
    (0..size.div_ceil(part))
        .map(|i| (i * part, part.min(size - i * part)))
        .collect()
}

/// The Range header asking for the rest of a body from `offset`, none from the start.
pub fn range_header(offset: u64) -> Option<String> {
    (offset > 0).then(|| format!("bytes={offset}-"))
}

/// `Content-Range: bytes START-END/TOTAL` (TOTAL may be `*`).
pub fn parse_content_range(value: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (span, total) = rest.split_once('/')?;
    let (start, end) = span.trim().split_once('-')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    let (start, end): (u64, u64) = (start.trim().parse().ok()?, end.trim().parse().ok()?);
    (start <= end).then_some((start, end, total))
}

/// What to do with a source's answer to a GET that asked for bytes from `offset`.
#[derive(Debug, PartialEq, Eq)]
pub enum Resume {
    /// The body continues exactly where we are: append it.
    Continue,
    /// The source ignored the Range and sent the whole body: reset the digest and sink, read it from zero.
    RestartWithBody,
    /// The answer cannot be appended (a different range): reset and ask again from zero.
    RetryFromZero,
    /// Nothing is left to fetch: every byte was already received.
    Complete,
}

pub fn on_response(
    offset: u64,
    status: u16,
    content_range: Option<&str>,
    expected_size: Option<u64>,
) -> Resume {
    match status {
        200 if offset == 0 => Resume::Continue,
        200 => Resume::RestartWithBody,
        206 => match content_range.and_then(parse_content_range) {
            Some((start, _, _)) if start == offset => Resume::Continue,
            _ => Resume::RetryFromZero,
        },
        416 if offset > 0 && expected_size == Some(offset) => Resume::Complete,
        _ => Resume::RetryFromZero,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_size_is_clamped_and_grown_for_huge_files() {
        assert_eq!(part_size(1024, None), MIN_PART);
        assert_eq!(part_size(16 * MIB, Some(100 * MIB)), 16 * MIB);
        assert_eq!(part_size(u64::MAX, None), MAX_PART);
        let huge = 200 * 1024 * MIB; // 200 GiB at 16 MiB would be 12,800 parts
        let p = part_size(16 * MIB, Some(huge));
        assert!(huge.div_ceil(p) <= MAX_PARTS);
        assert_eq!(p % MIB, 0);
        assert_eq!(p, 21 * MIB);
    }

    #[test]
    fn single_put_only_below_one_part() {
        assert_eq!(shape(0, 16 * MIB), UploadShape::Single);
        assert_eq!(shape(16 * MIB - 1, 16 * MIB), UploadShape::Single);
        assert_eq!(
            shape(16 * MIB, 16 * MIB),
            UploadShape::Multipart { parts: 1 }
        );
        assert_eq!(
            shape(40 * MIB, 16 * MIB),
            UploadShape::Multipart { parts: 3 }
        );
    }

    #[test]
    fn part_ranges_cover_the_body_exactly() {
        let ranges = part_ranges(40, 16);
        assert_eq!(ranges, vec![(0, 16), (16, 16), (32, 8)]);
        assert_eq!(part_ranges(32, 16), vec![(0, 16), (16, 16)]);
        assert!(part_ranges(0, 16).is_empty());
    }

    #[test]
    fn range_header_only_when_resuming() {
        assert_eq!(range_header(0), None);
        assert_eq!(range_header(1234).as_deref(), Some("bytes=1234-"));
    }

    #[test]
    fn content_range_parsing() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((100, 199, Some(200)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, 9, None)));
        assert_eq!(parse_content_range("bytes */200"), None);
        assert_eq!(parse_content_range("items 1-2/3"), None);
        assert_eq!(parse_content_range("bytes 9-5/10"), None);
    }

    #[test]
    fn resume_decisions() {
        assert_eq!(on_response(0, 200, None, None), Resume::Continue);
        assert_eq!(
            on_response(100, 206, Some("bytes 100-199/200"), Some(200)),
            Resume::Continue
        );
        assert_eq!(
            on_response(100, 200, None, Some(200)),
            Resume::RestartWithBody
        );
        assert_eq!(
            on_response(100, 206, Some("bytes 0-199/200"), Some(200)),
            Resume::RetryFromZero
        );
        assert_eq!(
            on_response(100, 206, None, Some(200)),
            Resume::RetryFromZero
        );
        assert_eq!(on_response(200, 416, None, Some(200)), Resume::Complete);
        assert_eq!(
            on_response(150, 416, None, Some(200)),
            Resume::RetryFromZero
        );
    }
}
