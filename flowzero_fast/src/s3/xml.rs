//! S3's XML documents, read with quick-xml: error fields, UploadId, upload listings; and the
//! CompleteMultipartUpload body it is sent.

use quick_xml::escape::{escape, resolve_predefined_entity};
use quick_xml::events::Event;
use quick_xml::Reader;

/// One uploaded part, as CompleteMultipartUpload lists it.
#[derive(Clone, Debug)]
pub struct Part {
    pub number: u32,
    pub etag: String,
    pub crc32c: Option<String>,
}

/// Every element of `body` with its text, in document order, as (path of local names joined by `/`, text).
/// Containers are listed when they close, after their children (text ""). Reading stops at the first
/// malformed spot: what came before it is kept.
fn elements(body: &str) -> Vec<(String, String)> {
    let mut reader = Reader::from_str(body);
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut found = Vec::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(start)) => {
                path.push(start.local_name().as_ref().to_string());
                text.clear();
            }
            Ok(Event::Text(t)) => text.push_str(&t.into_inner()),
            Ok(Event::CData(t)) => text.push_str(&t.into_inner()),
            Ok(Event::GeneralRef(r)) => match r.resolve_char_ref() {
                Ok(Some(c)) => text.push(c),
                _ => match resolve_predefined_entity(&r.into_inner()) {
                    Some(resolved) => text.push_str(resolved),
                    None => break,
                },
            },
            Ok(Event::End(_)) => {
                found.push((path.join("/"), std::mem::take(&mut text).trim().to_string()));
                path.pop();
            }
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    found
}

/// The text of the first element whose path ends with `/name` (or is `name`), or "".
fn text_of(found: &[(String, String)], name: &str) -> String {
    found
        .iter()
        .find(|(path, _)| path == name || path.ends_with(&format!("/{name}")))
        .map(|(_, text)| text.clone())
        .unwrap_or_default()
}

/// `Code` and `Message` of an S3 XML error body.
pub fn error_fields(body: &str) -> (String, String) {
    let found = elements(body);
    (
        text_of(&found, "Error/Code"),
        text_of(&found, "Error/Message"),
    )
}

/// The UploadId of a CreateMultipartUpload answer ("" when there is none).
pub fn upload_id(body: &str) -> String {
    text_of(&elements(body), "UploadId")
}

/// Whether a 200 answer is in fact an error document (CompleteMultipartUpload can answer that way).
pub fn is_error_document(body: &[u8]) -> bool {
    body.starts_with(b"<?xml")
        && elements(&String::from_utf8_lossy(body))
            .iter()
            .any(|(path, _)| path == "Error")
}

/// One incomplete multipart upload, as ListMultipartUploads lists it (`initiated` as S3 writes it, ISO 8601).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upload {
    pub key: String,
    pub upload_id: String,
    pub initiated: String,
}

/// The uploads of one ListMultipartUploads page, and the markers of the next page when it is truncated.
pub fn parse_uploads(body: &str) -> (Vec<Upload>, Option<(String, String)>) {
    let found = elements(body);
    let mut uploads = Vec::new();
    let mut current = Upload {
        key: String::new(),
        upload_id: String::new(),
        initiated: String::new(),
    };
    for (path, text) in &found {
        match path.rsplit_once('/') {
            Some((parent, field)) if parent.ends_with("Upload") => match field {
                "Key" => current.key = text.clone(),
                "UploadId" => current.upload_id = text.clone(),
                "Initiated" => current.initiated = text.clone(),
                _ => {}
            },
            _ if path.ends_with("/Upload") => {
                let upload = std::mem::replace(
                    &mut current,
                    Upload {
                        key: String::new(),
                        upload_id: String::new(),
                        initiated: String::new(),
                    },
                );
                if !upload.key.is_empty() && !upload.upload_id.is_empty() {
                    uploads.push(upload);
                }
            }
            _ => {}
        }
    }
    let truncated = text_of(&found, "IsTruncated").eq_ignore_ascii_case("true");
    let next = (
        text_of(&found, "NextKeyMarker"),
        text_of(&found, "NextUploadIdMarker"),
    );
    (uploads, (truncated && !next.0.is_empty()).then_some(next))
}

/// The CompleteMultipartUpload document, parts in order, with their CRC32C where sent.
pub fn complete_body(parts: &[Part]) -> String {
    let mut sorted = parts.to_vec();
    sorted.sort_by_key(|p| p.number);
    let mut xml =
        String::from("<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for p in &sorted {
        xml.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag>",
            p.number,
            escape(p.etag.as_str())
        ));
        if let Some(crc) = &p.crc32c {
            xml.push_str(&format!(
                "<ChecksumCRC32C>{}</ChecksumCRC32C>",
                escape(crc.as_str())
            ));
        }
        xml.push_str("</Part>");
    }
    xml.push_str("</CompleteMultipartUpload>");
    xml
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_listings_are_parsed_page_by_page() {
        let page = "<?xml version=\"1.0\"?><ListMultipartUploadsResult><Bucket>b</Bucket>\
            <NextKeyMarker>a/R&amp;D.tif</NextKeyMarker><NextUploadIdMarker>id-2</NextUploadIdMarker>\
            <IsTruncated>true</IsTruncated>\
            <Upload><Key>a/x.tif</Key><UploadId>id-1</UploadId><Initiated>2026-11-24T10:00:00.000Z</Initiated></Upload>\
            <Upload><Key>a/R&amp;D &#233;t&#xE9;.tif</Key><UploadId>id-2</UploadId>\
            <Initiated>2026-11-24T11:00:00.000Z</Initiated></Upload></ListMultipartUploadsResult>";
        let (uploads, next) = parse_uploads(page);
        assert_eq!(uploads.len(), 2);
        assert_eq!(uploads[0].initiated, "2026-11-24T10:00:00.000Z");
        assert_eq!(uploads[1].key, "a/R&D \u{e9}t\u{e9}.tif");
        assert_eq!(next, Some(("a/R&D.tif".into(), "id-2".into())));
        let last = "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>";
        assert_eq!(parse_uploads(last), (vec![], None));
        // Not XML, or entities nobody defined: nothing is found, nothing breaks.
        assert_eq!(parse_uploads("a & b &bogus; &#; <Upload>"), (vec![], None));
        assert_eq!(
            error_fields("<html>502 Bad Gateway</html>"),
            (String::new(), String::new())
        );
    }

    #[test]
    fn error_and_upload_id_fields() {
        let body = "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>Reduce &amp; retry</Message></Error>";
        assert_eq!(
            error_fields(body),
            ("SlowDown".into(), "Reduce & retry".into())
        );
        assert_eq!(
            error_fields("<Error><Code>X</Code></Error>"),
            ("X".into(), String::new())
        );
        let created = "<InitiateMultipartUploadResult><Bucket>b</Bucket><UploadId>u-1</UploadId></InitiateMultipartUploadResult>";
        assert_eq!(upload_id(created), "u-1");
        assert!(is_error_document(
            b"<?xml version=\"1.0\"?>\n<Error><Code>InternalError</Code></Error>"
        ));
        assert!(!is_error_document(
            b"<CompleteMultipartUploadResult><ETag>x</ETag></CompleteMultipartUploadResult>"
        ));
    }

    #[test]
    fn complete_document_lists_parts_in_order() {
        let parts = vec![
            Part {
                number: 2,
                etag: "\"b\"".into(),
                crc32c: Some("AAAAAA==".into()),
            },
            Part {
                number: 1,
                etag: "\"a\"".into(),
                crc32c: None,
            },
        ];
        let xml = complete_body(&parts);
        let one = xml.find("<PartNumber>1</PartNumber>").unwrap();
        let two = xml.find("<PartNumber>2</PartNumber>").unwrap();
        assert!(one < two);
        assert!(xml.contains("<ETag>&quot;a&quot;</ETag>"));
        assert!(xml.contains("<ChecksumCRC32C>AAAAAA==</ChecksumCRC32C>"));
        assert_eq!(xml.matches("<ChecksumCRC32C>").count(), 1);
    }
}
