//! Reading settings from the environment: the error that names the variable
//! at fault, and the parsers every part of the configuration shares.

/// A setting that is missing or malformed; its `Display` is the one line an operator reads.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {var}: {problem}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

/// The value of `var`, which must be set.
pub(crate) fn required(
    get: &impl Fn(&'static str) -> Option<String>,
    var: &'static str,
) -> Result<String, ConfigError> {
    get(var).ok_or(ConfigError {
        var,
        problem: "is required but not set".into(),
    })
}

/// A true/false setting (`1`/`0` too); unset means `default`.
pub(crate) fn flag(
    get: &impl Fn(&'static str) -> Option<String>,
    var: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match get(var).as_deref().map(str::trim) {
        None => Ok(default),
        Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(other) => Err(ConfigError {
            var,
            problem: format!("must be true or false (got {other:?})"),
        }),
    }
}

/// A whole number in `range`, or `default` when `var` is unset.
pub(crate) fn number(
    get: &impl Fn(&'static str) -> Option<String>,
    var: &'static str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    let Some(raw) = get(var) else {
        return Ok(default);
    };
    match raw.trim().parse::<u64>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(ConfigError {
            var,
            problem: format!(
                "must be a whole number from {} to {} (got {raw:?})",
                range.start(),
                range.end()
            ),
        }),
    }
}

/// Checks a base URL (https, or http on loopback; no credentials, query or
/// fragment) and drops trailing slashes.
pub(crate) fn checked_url(raw: &str) -> Result<String, String> {
    let url = raw.trim().trim_end_matches('/');
    let (secure, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(format!("{url:?} must be an https:// URL"));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || url.contains(['?', '#', '@', ' ']) {
        return Err(format!(
            "{url:?} must be a plain URL (a host, no credentials, query or fragment)"
        ));
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().map(|h| format!("[{h}]")),
        None => authority.split(':').next().map(str::to_owned),
    }
    .unwrap_or_default();
    if !secure && !["127.0.0.1", "localhost", "[::1]"].contains(&host.as_str()) {
        return Err(format!(
            "{url:?} must be an https:// URL (http only on loopback)"
        ));
    }
    Ok(url.to_owned())
}
