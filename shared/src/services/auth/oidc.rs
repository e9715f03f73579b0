//! OpenID Connect sign-in: the authorization-code flow with PKCE (S256).
//!
//! `authorize` keeps `{provider, verifier, nonce}` under a random `state` for
//! ten minutes and sends the browser to the provider; `callback` takes the
//! state out of Redis (GETDEL: it works once), exchanges the code at the
//! provider's token endpoint (with the verifier and our client secret), checks
//! the ID token's issuer, audience, expiry and nonce, finds or creates the user
//! and opens a session. The ID token comes straight from the token endpoint
//! over TLS, which OpenID Connect Core §3.1.3.7 accepts in place of checking
//! its signature; endpoints must therefore be https (config refuses others
//! except on loopback).

use std::sync::LazyLock;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::accounts::normalise_email;
use super::secret::{pkce_challenge, random_token, same};
use super::sessions::{self, Meta, Opened};
use super::{Error, Role};
use crate::app::App;
use crate::config::OidcProvider;
use crate::store::auth as stored;
use crate::store::users::{self, Identity, Linked, User};

/// How long a sign-in may take between `authorize` and `callback`.
pub const STATE_TTL: Duration = Duration::from_secs(600);

/// How long a call to a provider may take.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// What `authorize` keeps for `callback`.
#[derive(Serialize, Deserialize)]
struct Pending {
    provider: String,
    verifier: String,
    nonce: String,
}

fn provider<'a>(app: &'a App, name: &str) -> Result<&'a OidcProvider, Error> {
    app.config()
        .auth
        .provider(name)
        .ok_or_else(|| Error::UnknownProvider(name.to_owned()))
}

/// Starts a sign-in: the URL at the provider to send the browser to.
pub async fn authorize(app: &App, name: &str) -> Result<String, Error> {
    let p = provider(app, name)?;
    let (state, verifier, nonce) = (random_token(), random_token(), random_token());
    let query = serde_urlencoded::to_string([
        ("response_type", "code"),
        ("client_id", &p.client_id),
        ("redirect_uri", &p.redirect_uri),
        ("scope", &p.scopes),
        ("state", &state),
        ("nonce", &nonce),
        ("code_challenge", &pkce_challenge(&verifier)),
        ("code_challenge_method", "S256"),
    ])
    .expect("string pairs encode");
    let pending = Pending {
        provider: p.name.clone(),
        verifier,
        nonce,
    };
    let record = serde_json::to_vec(&pending).expect("pending sign-in serialises");
    stored::put_oauth_state(app.redis(), &state, &record, STATE_TTL).await?;
    let sep = if p.authorization_endpoint.contains('?') {
        '&'
    } else {
        '?'
    };
    Ok(format!("{}{sep}{query}", p.authorization_endpoint))
}

/// The query the provider sends the browser back with.
#[derive(Debug, Default, Deserialize)]
pub struct Callback {
    /// The authorization code.
    pub code: Option<String>,
    /// Our `state`, echoed.
    pub state: Option<String>,
    /// Set when the user or the provider refused.
    pub error: Option<String>,
}

/// A finished sign-in.
#[derive(Debug, Serialize)]
pub struct SignedIn {
    /// The session and its token.
    #[serde(flatten)]
    pub opened: Opened,
    /// The user signed in.
    pub user: User,
    /// Whether the account was created by this sign-in.
    pub created: bool,
}

/// Finishes a sign-in.
pub async fn callback(app: &App, name: &str, cb: Callback, meta: &Meta) -> Result<SignedIn, Error> {
    let p = provider(app, name)?;
    let state = cb
        .state
        .filter(|s| !s.is_empty() && s.len() <= 128)
        .ok_or(Error::InvalidState)?;
    let raw = stored::take_oauth_state(app.redis(), &state)
        .await?
        .ok_or(Error::InvalidState)?;
    let pending: Pending = serde_json::from_slice(&raw).map_err(|_| Error::InvalidState)?;
    if pending.provider != p.name {
        return Err(Error::InvalidState);
    }
    if let Some(error) = cb.error {
        return Err(Error::ProviderRefused(short(&error)));
    }
    let code = cb
        .code
        .filter(|c| !c.is_empty())
        .ok_or_else(|| Error::Invalid("the callback has no code".into()))?;
    let tokens = exchange(p, &code, &pending.verifier).await?;
    let claims = check_id_token(p, &tokens.id_token, &pending.nonce)?;
    let (email, verified) = match (&claims.email, &p.userinfo_endpoint, &tokens.access_token) {
        (Some(email), _, _) => (Some(email.clone()), verified(&claims.email_verified)),
        (None, Some(endpoint), Some(access)) => {
            let info = userinfo(endpoint, access).await?;
            if info.sub != claims.sub {
                return Err(Error::ProviderFailed(
                    "userinfo is about another subject".into(),
                ));
            }
            (info.email.clone(), verified(&info.email_verified))
        }
        _ => (None, false),
    };
    let email = email
        .map(|e| normalise_email(&e))
        .transpose()
        .map_err(|_| Error::ProviderFailed("the provider's email is not an address".into()))?;
    let display_name = claims
        .name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .or_else(|| {
            email
                .as_ref()
                .and_then(|e| e.split('@').next().map(str::to_owned))
        })
        .unwrap_or_else(|| "user".into());
    let linked = users::find_or_create_by_identity(
        app.db(),
        &Identity {
            provider: &p.name,
            subject: &claims.sub,
            email: email.as_deref(),
            email_verified: verified,
            display_name: &display_name.chars().take(100).collect::<String>(),
        },
    )
    .await?;
    let (user, created) = match linked {
        Linked::User(user, created) => (user, created),
        Linked::EmailInUse => {
            return Err(Error::AccountConflict(
                "an account with this email exists and the provider does not vouch for the \
                 email; sign in with your password"
                    .into(),
            ));
        }
        Linked::NoEmail => {
            return Err(Error::AccountConflict(
                "the provider shared no email address, which a new account needs".into(),
            ));
        }
    };
    let role = Role::parse(&user.role).unwrap_or(Role::Student);
    let opened = sessions::open(app, user.id, role, format!("oidc:{}", p.name), meta).await?;
    Ok(SignedIn {
        opened,
        user,
        created,
    })
}

/// A provider's error code, kept short and printable (it ends up in our answer).
fn short(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(100)
        .collect()
}

#[derive(Deserialize)]
struct Tokens {
    id_token: String,
    access_token: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: Value,
    exp: i64,
    nonce: Option<String>,
    email: Option<String>,
    email_verified: Option<Value>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct UserInfo {
    sub: String,
    email: Option<String>,
    email_verified: Option<Value>,
}

/// `email_verified` as a boolean (some providers send the string "true").
fn verified(v: &Option<Value>) -> bool {
    matches!(v, Some(Value::Bool(true))) || matches!(v, Some(Value::String(s)) if s == "true")
}

/// Decodes an ID token's claims and checks issuer, audience, expiry and nonce.
fn check_id_token(p: &OidcProvider, id_token: &str, nonce: &str) -> Result<Claims, Error> {
    let bad = |why: &str| Error::ProviderFailed(format!("ID token {why}"));
    let payload = id_token.split('.').nth(1).ok_or_else(|| bad("malformed"))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| bad("malformed"))?;
    let claims: Claims = serde_json::from_slice(&bytes).map_err(|_| bad("lacks claims"))?;
    if claims.iss != p.issuer {
        return Err(bad("from another issuer"));
    }
    let audience_ok = match &claims.aud {
        Value::String(a) => *a == p.client_id,
        Value::Array(all) => all.iter().any(|a| a.as_str() == Some(&p.client_id)),
        _ => false,
    };
    if !audience_ok {
        return Err(bad("for another client"));
    }
    if claims.exp <= time::OffsetDateTime::now_utc().unix_timestamp() {
        return Err(bad("expired"));
    }
    if !claims.nonce.as_deref().is_some_and(|n| same(n, nonce)) {
        return Err(bad("has the wrong nonce"));
    }
    if claims.sub.is_empty() {
        return Err(bad("has no subject"));
    }
    Ok(claims)
}

static AGENT: LazyLock<ureq::Agent> = LazyLock::new(|| {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(PROVIDER_TIMEOUT))
        .build()
        .new_agent()
});

/// One call to a provider: status and body.
async fn call(
    request: impl FnOnce(&ureq::Agent) -> Result<ureq::http::Response<ureq::Body>, ureq::Error>
    + Send
    + 'static,
) -> Result<(u16, String), Error> {
    tokio::task::spawn_blocking(move || {
        let mut response = request(&AGENT)?;
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string()?;
        Ok::<_, ureq::Error>((status, body))
    })
    .await
    .expect("provider calls do not panic")
    .map_err(|e| Error::ProviderFailed(format!("unreachable ({e})")))
}

/// `application/x-www-form-urlencoded` of one value (RFC 6749 §2.3.1 wants it for Basic auth).
fn form_encode(value: &str) -> String {
    serde_urlencoded::to_string([("", value)]).expect("a string encodes")[1..].to_owned()
}

/// Exchanges the code (with the PKCE verifier) for tokens, authenticating with
/// `client_secret_basic`.
async fn exchange(p: &OidcProvider, code: &str, verifier: &str) -> Result<Tokens, Error> {
    let credentials = STANDARD.encode(format!(
        "{}:{}",
        form_encode(&p.client_id),
        form_encode(&p.client_secret)
    ));
    let form = [
        ("grant_type".to_owned(), "authorization_code".to_owned()),
        ("code".into(), code.into()),
        ("redirect_uri".into(), p.redirect_uri.clone()),
        ("code_verifier".into(), verifier.into()),
        ("client_id".into(), p.client_id.clone()),
    ];
    let endpoint = p.token_endpoint.clone();
    let (status, body) = call(move |agent| {
        agent
            .post(&endpoint)
            .header("Authorization", &format!("Basic {credentials}"))
            .header("Accept", "application/json")
            .send_form(form.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    })
    .await?;
    match status {
        200..=299 => serde_json::from_str(&body)
            .map_err(|_| Error::ProviderFailed("the token response has no id_token".into())),
        400..=499 => {
            let error = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(short))
                .unwrap_or_else(|| format!("HTTP {status}"));
            Err(Error::ProviderRefused(error))
        }
        _ => Err(Error::ProviderFailed(format!(
            "the token endpoint answered HTTP {status}"
        ))),
    }
}

async fn userinfo(endpoint: &str, access_token: &str) -> Result<UserInfo, Error> {
    let (endpoint, bearer) = (endpoint.to_owned(), format!("Bearer {access_token}"));
    let (status, body) = call(move |agent| {
        agent
            .get(&endpoint)
            .header("Authorization", &bearer)
            .header("Accept", "application/json")
            .call()
    })
    .await?;
    if !(200..=299).contains(&status) {
        return Err(Error::ProviderFailed(format!(
            "the userinfo endpoint answered HTTP {status}"
        )));
    }
    serde_json::from_str(&body)
        .map_err(|_| Error::ProviderFailed("the userinfo response has no subject".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> OidcProvider {
        OidcProvider {
            name: "corp".into(),
            issuer: "https://id.example.com".into(),
            authorization_endpoint: "https://id.example.com/a".into(),
            token_endpoint: "https://id.example.com/t".into(),
            userinfo_endpoint: None,
            client_id: "lectern".into(),
            client_secret: "s".into(),
            redirect_uri: "https://api.example.com/cb".into(),
            scopes: "openid".into(),
        }
    }

    fn token(claims: Value) -> String {
        format!(
            "e30.{}.sig",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap())
        )
    }

    fn claims() -> Value {
        serde_json::json!({
            "iss": "https://id.example.com", "sub": "u1", "aud": ["other", "lectern"],
            "exp": time::OffsetDateTime::now_utc().unix_timestamp() + 60, "nonce": "n1",
            "email": "a@example.com", "email_verified": "true",
        })
    }

    #[test]
    fn a_good_id_token_passes() {
        let c = check_id_token(&provider(), &token(claims()), "n1").unwrap();
        assert_eq!(c.sub, "u1");
        assert!(verified(&c.email_verified));
    }

    #[test]
    fn issuer_audience_expiry_and_nonce_are_checked() {
        let p = provider();
        let with = |k: &str, v: Value| {
            let mut c = claims();
            c[k] = v;
            token(c)
        };
        for (bad, why) in [
            (with("iss", "https://evil.example.com".into()), "issuer"),
            (with("aud", "other".into()), "client"),
            (with("exp", 1.into()), "expired"),
            (with("nonce", "n2".into()), "nonce"),
            ("not-a-jwt".to_owned(), "malformed"),
        ] {
            let e = check_id_token(&p, &bad, "n1").err().unwrap().to_string();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn basic_auth_parts_are_form_encoded() {
        assert_eq!(form_encode("a b:c/é"), "a+b%3Ac%2F%C3%A9");
    }
}
