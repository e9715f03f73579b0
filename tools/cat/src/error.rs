//! The tool's errors: each one prints as a single line that names the file, the
//! place in it and the problem.

use std::fmt;
use std::io;

/// Where in an input file a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A CSV row, numbered as in a spreadsheet (the header is row 1).
    Row(u64),
    /// A line of a text file (1-based).
    Line(u64),
    /// A line and column of a text file (both 1-based).
    LineColumn(u64, u64),
    /// An element of a JSON array (1-based), with its id when it has one.
    Item(usize, Option<String>),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Row(r) => write!(f, "row {r}"),
            Place::Line(l) => write!(f, "line {l}"),
            Place::LineColumn(l, c) => write!(f, "line {l}, column {c}"),
            Place::Item(n, Some(id)) => write!(f, "item {n} ({id:?})"),
            Place::Item(n, None) => write!(f, "item {n}"),
        }
    }
}

/// Everything that can make the tool fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The content of an input file is wrong.
    #[error("{file}: {}{message}", place.as_ref().map(|p| format!("{p}: ")).unwrap_or_default())]
    Input {
        /// The file as the user named it (`<stdin>` for `-`).
        file: String,
        /// Where in the file, when it is known.
        place: Option<Place>,
        /// What is wrong, as a sentence fragment.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{file}: cannot {action}: {}", describe_io(source))]
    Io {
        /// The file or directory.
        file: String,
        /// What was attempted ("read", "write", "create directory").
        action: &'static str,
        /// The system's error.
        source: io::Error,
    },
    /// The options do not make sense together.
    #[error("{0}")]
    Options(String),
}

impl Error {
    /// An error at `place` in `file`.
    pub fn at(file: &str, place: Place, message: impl Into<String>) -> Error {
        Error::Input {
            file: file.to_owned(),
            place: Some(place),
            message: message.into(),
        }
    }

    /// An error about `file` as a whole.
    pub fn file(file: &str, message: impl Into<String>) -> Error {
        Error::Input {
            file: file.to_owned(),
            place: None,
            message: message.into(),
        }
    }

    /// An I/O failure on `file`.
    pub fn io(file: impl Into<String>, action: &'static str, source: io::Error) -> Error {
        Error::Io {
            file: file.into(),
            action,
            source,
        }
    }
}

/// The system's message for the common cases, without the "(os error N)" suffix.
fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file or directory".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        io::ErrorKind::IsADirectory => "it is a directory".to_owned(),
        io::ErrorKind::AlreadyExists => "it already exists".to_owned(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_owned(),
                None => s,
            }
        }
    }
}

/// The message of a serde_json error without its " at line L column C" suffix
/// (the caller reports the place itself).
pub fn json_message(e: &serde_json::Error) -> String {
    let s = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match s.strip_suffix(&suffix) {
        Some(m) => m.to_owned(),
        None => s,
    }
}

/// Reads a whole input file as UTF-8 text (`-` is standard input), with the
/// byte-order mark removed. Returns the name to show in messages and the text.
pub fn read_text(path: &str) -> Result<(String, String), Error> {
    let (name, bytes) = if path == "-" {
        let mut buf = Vec::new();
        io::Read::read_to_end(&mut io::stdin().lock(), &mut buf)
            .map_err(|e| Error::io("<stdin>", "read", e))?;
        ("<stdin>".to_owned(), buf)
    } else {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, "read", e))?;
        (path.to_owned(), bytes)
    };
    match String::from_utf8(bytes) {
        Ok(mut text) => {
            if text.starts_with('\u{feff}') {
                text.drain(..'\u{feff}'.len_utf8());
            }
            Ok((name, text))
        }
        Err(e) => {
            let good = e.utf8_error().valid_up_to();
            let line = 1 + e.as_bytes()[..good].iter().filter(|&&b| b == b'\n').count();
            Err(Error::at(
                &name,
                Place::Line(line as u64),
                "not valid UTF-8 text",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line() {
        let e = Error::at(
            "bank.csv",
            Place::Row(12),
            "a must be finite and > 0 (got -1)",
        );
        assert_eq!(
            e.to_string(),
            "bank.csv: row 12: a must be finite and > 0 (got -1)"
        );
        let e = Error::at("bank.json", Place::Item(3, Some("q3".into())), "oops");
        assert_eq!(e.to_string(), "bank.json: item 3 (\"q3\"): oops");
        let e = Error::file("bank.json", "the bank has no items");
        assert_eq!(e.to_string(), "bank.json: the bank has no items");
        let e = Error::io("x.jsonl", "read", io::Error::from(io::ErrorKind::NotFound));
        assert_eq!(
            e.to_string(),
            "x.jsonl: cannot read: no such file or directory"
        );
    }

    #[test]
    fn json_message_drops_the_position() {
        let e = serde_json::from_str::<serde_json::Value>("{\"a\": }").unwrap_err();
        assert_eq!(json_message(&e), "expected value");
    }
}
