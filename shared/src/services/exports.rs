//! Exports of a pool's recorded responses, in the long form `lectern-cat
//! calibrate` reads (`person,item,score`), for the pool's staff.
//!
//! A person is one test (an examinee on one occasion, so that two attempts of
//! one student are two response vectors, as calibration needs), named by
//! HMAC-SHA256 of the test id under the export's own random key: the same on
//! every page of one export, unlinkable across exports, and no student id,
//! test id or name appears. Pages follow a cursor (the export and the last
//! test and seq written), each a bounded number of rows, so an export of any
//! size stays well under the Lambda response limit.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use uuid::Uuid;

use crate::app::App;
use crate::services::pools::Error;
use crate::services::scope::{self, Denied, OrgOf};
use crate::store::exports::{self, Row};

/// Rows per page unless asked.
pub const DEFAULT_LIMIT: i64 = 10_000;
/// Most rows per page: a JSON line is at most about 110 bytes (a 64-character
/// item id), so a page stays under 3 MB, half the Lambda response limit.
pub const MAX_LIMIT: i64 = 25_000;

/// The body's form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `{"person": …, "item": …, "score": …}` per line.
    JsonLines,
    /// `person,item,score`, the header on the first page only, so that the
    /// pages joined end to end are one file.
    Csv,
}

/// One page of an export.
#[derive(Debug)]
pub struct ExportPage {
    /// The rows, in the asked format.
    pub body: String,
    /// Rows on this page.
    pub rows: usize,
    /// The cursor of the next page; `None` on the last.
    pub next: Option<String>,
}

/// A page of pool `pool`'s responses: a new export without `cursor`, else the
/// page after it.
pub async fn responses(
    app: &App,
    caller: Uuid,
    pool: Uuid,
    cursor: Option<&str>,
    limit: i64,
    format: Format,
) -> Result<ExportPage, Error> {
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Error::Invalid(format!(
            "limit must be from 1 to {MAX_LIMIT}"
        )));
    }
    may_export(app, caller, pool).await?;
    let (export, key, after) = match cursor {
        None => {
            let export = Uuid::new_v4();
            let key: [u8; 32] = rand::random();
            exports::create(app.db(), export, pool, caller, &key).await?;
            (export, key.to_vec(), (Uuid::nil(), 0))
        }
        Some(text) => {
            let (export, after) = Cursor::parse(text)
                .ok_or_else(|| Error::Invalid("cursor is not one this API gave".into()))?;
            let key = exports::key(app.db(), export, pool, caller)
                .await?
                .ok_or_else(|| {
                    Error::Invalid(
                        "cursor belongs to no export of this pool that you started".into(),
                    )
                })?;
            (export, key, after)
        }
    };
    let rows = exports::page(app.db(), pool, after, limit).await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| Cursor::text(export, (r.test, r.seq))))
        .flatten();
    let body = render(&rows, &key, format, cursor.is_none());
    Ok(ExportPage {
        body,
        rows: rows.len(),
        next,
    })
}

/// The pool's staff export its responses; a shared pool's come from many
/// organizations, so only platform admins export those.
async fn may_export(app: &App, caller: Uuid, id: Uuid) -> Result<(), Error> {
    let s = scope::standing(app, caller, OrgOf::Pool(id), None, None).await?;
    let verdict = match (s.found, s.org) {
        (false, _) => Err(Denied::Hidden),
        (true, Some(_)) => s.org_staff(),
        (true, None) if s.platform_admin => Ok(()),
        (true, None) if s.staff_anywhere => {
            return Err(Error::Forbidden(format!(
                "pool {id} is shared: its responses come from many organizations, so only platform admins export them"
            )));
        }
        (true, None) => Err(Denied::Hidden),
    };
    verdict.map_err(|denied| match denied {
        Denied::Hidden => Error::NotFound(id),
        Denied::Forbidden => Error::Forbidden(format!(
            "only teachers and org admins may export the responses of pool {id}"
        )),
    })
}

/// The cursor: URL-safe base64 of the export id, the last test id and its seq.
struct Cursor;

impl Cursor {
    fn text(export: Uuid, (test, seq): (Uuid, i32)) -> String {
        let mut bytes = Vec::with_capacity(36);
        bytes.extend_from_slice(export.as_bytes());
        bytes.extend_from_slice(test.as_bytes());
        bytes.extend_from_slice(&seq.to_be_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn parse(text: &str) -> Option<(Uuid, (Uuid, i32))> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        let bytes: [u8; 36] = bytes.try_into().ok()?;
        let export = Uuid::from_slice(&bytes[..16]).ok()?;
        let test = Uuid::from_slice(&bytes[16..32]).ok()?;
        let seq = i32::from_be_bytes(bytes[32..].try_into().ok()?);
        Some((export, (test, seq)))
    }
}

/// The export's name for a test: `p` and 20 hex digits (80 bits) of
/// HMAC-SHA256(key, test id).
fn pseudonym(key: &[u8], test: Uuid) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(test.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(21);
    out.push('p');
    for b in &digest[..10] {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn render(rows: &[Row], key: &[u8], format: Format, first_page: bool) -> String {
    let mut out = String::with_capacity(rows.len() * 48 + 20);
    if format == Format::Csv && first_page {
        out.push_str("person,item,score\n");
    }
    let mut last: Option<(Uuid, String)> = None;
    for row in rows {
        // A test's rows are together: one HMAC per test.
        if last.as_ref().is_none_or(|(t, _)| *t != row.test) {
            last = Some((row.test, pseudonym(key, row.test)));
        }
        let person = &last.as_ref().expect("set above").1;
        match format {
            Format::JsonLines => {
                let line = serde_json::json!({
                    "person": person, "item": row.question, "score": row.score
                });
                out.push_str(&line.to_string());
            }
            Format::Csv => {
                out.push_str(person);
                out.push(',');
                out.push_str(&csv_field(&row.question));
                out.push(',');
                out.push_str(&row.score.to_string());
            }
        }
        out.push('\n');
    }
    out
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\"")).into()
    } else {
        text.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        let (e, t) = (Uuid::new_v4(), Uuid::new_v4());
        let text = Cursor::text(e, (t, 17));
        assert_eq!(Cursor::parse(&text), Some((e, (t, 17))));
        assert_eq!(Cursor::parse("x"), None);
        assert_eq!(Cursor::parse(&text[..text.len() - 2]), None);
        assert_eq!(Cursor::parse(&format!("{text}AA")), None);
    }

    #[test]
    fn pseudonyms_depend_on_the_key_and_the_test_only() {
        let t = Uuid::new_v4();
        let a = pseudonym(&[1; 32], t);
        assert_eq!(a, pseudonym(&[1; 32], t));
        assert_ne!(a, pseudonym(&[2; 32], t));
        assert_ne!(a, pseudonym(&[1; 32], Uuid::new_v4()));
        assert_eq!(a.len(), 21);
        assert!(!a.contains(&t.simple().to_string()[..8]));
    }

    #[test]
    fn rows_render_as_calibrate_reads_them() {
        let t = Uuid::new_v4();
        let rows = [
            Row {
                test: t,
                seq: 1,
                question: "q,1".into(),
                score: 1,
            },
            Row {
                test: t,
                seq: 2,
                question: "q2".into(),
                score: 3,
            },
        ];
        let p = pseudonym(&[7; 32], t);
        assert_eq!(
            render(&rows, &[7; 32], Format::Csv, true),
            format!("person,item,score\n{p},\"q,1\",1\n{p},q2,3\n")
        );
        assert_eq!(
            render(&rows[1..], &[7; 32], Format::Csv, false),
            format!("{p},q2,3\n")
        );
        assert_eq!(
            render(&rows[..1], &[7; 32], Format::JsonLines, true),
            format!("{{\"item\":\"q,1\",\"person\":\"{p}\",\"score\":1}}\n")
        );
    }
}
