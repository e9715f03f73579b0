//! Passwords: argon2id (the argon2 crate's defaults: 19 MiB, 2 passes, one
//! lane, as OWASP recommends), hashed and checked off the async threads.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// Fewest characters a password may have.
pub const MIN_CHARS: usize = 12;
/// Most characters a password may have (hashing cost does not grow with it, but a limit is sane).
pub const MAX_CHARS: usize = 256;

/// Checks the length rules; the message says what is wrong.
pub fn check(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < MIN_CHARS {
        return Err(format!(
            "password must have at least {MIN_CHARS} characters (it has {n})"
        ));
    }
    if n > MAX_CHARS {
        return Err(format!("password must have at most {MAX_CHARS} characters"));
    }
    Ok(())
}

/// The argon2id PHC string of `password`, with a fresh random salt.
pub async fn hash(password: &str) -> String {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || hash_now(&password))
        .await
        .expect("hashing does not panic")
}

fn hash_now(password: &str) -> String {
    Argon2::default()
        .hash_password(password.as_bytes())
        .expect("argon2 with default parameters hashes any password")
        .to_string()
}

/// Whether `password` matches `phc`. With `None` (no such account, or one
/// without a password) a dummy hash is checked instead, so the answer takes as
/// long as for a real account.
pub async fn verify(password: &str, phc: Option<String>) -> bool {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let (phc, real) = match phc {
            Some(p) => (p, true),
            None => (DUMMY.clone(), false),
        };
        let Ok(parsed) = PasswordHash::new(&phc) else {
            return false;
        };
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        ok && real
    })
    .await
    .expect("verifying does not panic")
}

/// A hash of nothing anyone knows, with the current parameters.
static DUMMY: LazyLock<String> = LazyLock::new(|| hash_now(&super::secret::random_token()));

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_are_salted_argon2id() {
        let h = hash("correct horse battery").await;
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("correct horse battery", Some(h.clone())).await);
        assert!(!verify("correct horse batterY", Some(h.clone())).await);
        assert_ne!(h, hash("correct horse battery").await);
        assert!(!verify("anything at all", None).await);
        assert!(!verify("anything at all", Some("not a hash".into())).await);
    }

    #[test]
    fn length_rules_count_characters() {
        assert!(check("short").is_err());
        assert!(check("ééééééééééé").is_err()); // 11 characters, 22 bytes
        assert!(check("éééééééééééé").is_ok());
        assert!(check(&"x".repeat(MAX_CHARS + 1)).is_err());
    }
}
