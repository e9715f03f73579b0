//! A minimal HTTP/1.1 client: one keep-alive connection (hyper's
//! `client::conn::http1`), re-made when the server closes it, that sends a
//! bearer token once it has one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::LoadError;

/// Where the server is: `http://host[:port][/base]`.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The URL as given, without a trailing slash (for messages).
    pub url: String,
    host: String,
    port: u16,
    /// The `Host` header.
    authority: String,
    /// Put before every path; empty or `/something` without a trailing slash.
    base_path: String,
}

impl Target {
    /// Parses a base URL; only plain `http` is supported.
    pub fn parse(url: &str) -> Result<Target, LoadError> {
        let invalid = |reason: &str| LoadError::InvalidUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let uri: Uri = url
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| invalid(&e.to_string()))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => return Err(invalid("https is not supported; use http://")),
            _ => return Err(invalid("expected http://host[:port]")),
        }
        let authority = uri
            .authority()
            .ok_or_else(|| invalid("expected http://host[:port]"))?;
        if authority.as_str().contains('@') {
            return Err(invalid("user information is not supported"));
        }
        if uri.query().is_some() {
            return Err(invalid("a query string is not supported"));
        }
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        Ok(Target {
            url: url.trim_end_matches('/').to_string(),
            host: host.to_string(),
            port: authority.port_u16().unwrap_or(80),
            authority: authority.as_str().to_string(),
            base_path: uri.path().trim_end_matches('/').to_string(),
        })
    }
}

/// An error with its chain of causes, `outer: inner: …` (hyper's own message
/// is often just "connection error").
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A request that got no HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Connecting, writing or reading failed.
    Transport(String),
    /// No complete response within the timeout.
    Timeout,
}

/// A complete HTTP response.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
    /// From sending the request to having read the whole body (connecting excluded).
    pub latency: Duration,
}

/// One keep-alive connection to the target.
pub(crate) struct Conn {
    target: Arc<Target>,
    sender: Option<SendRequest<Full<Bytes>>>,
    /// `Authorization` of every request, once [`Conn::authorize`]d.
    bearer: Option<HeaderValue>,
    /// Connections made, the first included.
    pub connects: u64,
}

impl Conn {
    /// A connection that connects on first use.
    pub fn new(target: Arc<Target>) -> Conn {
        Conn {
            target,
            sender: None,
            bearer: None,
            connects: 0,
        }
    }

    /// Sends `Authorization: Bearer <token>` with every later request.
    pub fn authorize(&mut self, token: &str) -> Result<(), String> {
        let mut value = HeaderValue::try_from(format!("Bearer {token}"))
            .map_err(|_| "the token is not a valid header value".to_string())?;
        value.set_sensitive(true);
        self.bearer = Some(value);
        Ok(())
    }

    async fn connect(&mut self) -> Result<(), Failure> {
        self.sender = None;
        let stream = TcpStream::connect((self.target.host.as_str(), self.target.port))
            .await
            .map_err(|e| Failure::Transport(format!("connect: {e}")))?;
        stream
            .set_nodelay(true)
            .map_err(|e| Failure::Transport(format!("connect: {e}")))?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| Failure::Transport(format!("handshake: {}", describe(&e))))?;
        tokio::spawn(async move {
            // Ends when the server closes the connection or the sender is dropped.
            let _ = connection.await;
        });
        self.sender = Some(sender);
        self.connects += 1;
        Ok(())
    }

    /// A sender ready for a request, connecting again if the connection was closed.
    async fn ready(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, Failure> {
        let alive = match &mut self.sender {
            Some(sender) => sender.ready().await.is_ok(),
            None => false,
        };
        if !alive {
            self.connect().await?;
        }
        let sender = self.sender.as_mut().expect("connected above");
        if !alive {
            sender
                .ready()
                .await
                .map_err(|e| Failure::Transport(format!("connection: {}", describe(&e))))?;
        }
        Ok(sender)
    }

    /// Connects (if not connected yet) within `timeout`, to check that the server can be reached.
    pub async fn connect_once(&mut self, timeout: Duration) -> Result<(), Failure> {
        match tokio::time::timeout(timeout, self.ready()).await {
            Ok(ready) => ready.map(|_| ()),
            Err(_elapsed) => Err(Failure::Timeout),
        }
    }

    fn request(
        &self,
        method: &Method,
        path: &str,
        body: Option<&[u8]>,
        idempotency_key: Option<&str>,
    ) -> Request<Full<Bytes>> {
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", self.target.base_path))
            .header(HOST, self.target.authority.as_str());
        if let Some(bearer) = &self.bearer {
            builder = builder.header(AUTHORIZATION, bearer.clone());
        }
        if let Some(key) = idempotency_key {
            builder = builder.header("idempotency-key", key);
        }
        if body.is_some() {
            builder = builder.header(CONTENT_TYPE, "application/json");
        }
        let body = body.map(Bytes::copy_from_slice).unwrap_or_default();
        builder
            .body(Full::new(body))
            .expect("method, path and headers are valid")
    }

    /// Sends one request (JSON body if any) and reads the whole response,
    /// all within `timeout`. A request the closed connection did not take is
    /// sent again once on a new connection.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Reply, Failure> {
        self.send_keyed(method, path, body, None, timeout).await
    }

    /// [`Conn::send`] with an `Idempotency-Key` header when `idempotency_key`
    /// is given (printable ASCII: a retry of a creating POST sends the same).
    pub async fn send_keyed(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        idempotency_key: Option<&str>,
        timeout: Duration,
    ) -> Result<Reply, Failure> {
        let sent = self.send_inner(&method, path, body, idempotency_key);
        let result = tokio::time::timeout(timeout, sent).await;
        match result {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(failure)) => {
                self.sender = None;
                Err(failure)
            }
            Err(_elapsed) => {
                // hyper closes a connection whose request future is dropped.
                self.sender = None;
                Err(Failure::Timeout)
            }
        }
    }

    async fn send_inner(
        &mut self,
        method: &Method,
        path: &str,
        body: Option<&[u8]>,
        idempotency_key: Option<&str>,
    ) -> Result<Reply, Failure> {
        let mut request = self.request(method, path, body, idempotency_key);
        let mut retried = false;
        loop {
            let sender = self.ready().await?;
            let started = Instant::now();
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let status = response.status();
                    let body = response
                        .into_body()
                        .collect()
                        .await
                        .map_err(|e| {
                            Failure::Transport(format!("reading the body: {}", describe(&e)))
                        })?
                        .to_bytes();
                    return Ok(Reply {
                        status,
                        body,
                        latency: started.elapsed(),
                    });
                }
                Err(mut error) => match error.take_message() {
                    Some(unsent) if !retried => {
                        // The connection closed before taking the request.
                        retried = true;
                        self.sender = None;
                        request = unsent;
                    }
                    _ => return Err(Failure::Transport(describe(&error.into_error()))),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_base_urls() {
        let t = Target::parse("http://127.0.0.1:3999/").unwrap();
        assert_eq!(
            (
                t.host.as_str(),
                t.port,
                t.authority.as_str(),
                t.base_path.as_str()
            ),
            ("127.0.0.1", 3999, "127.0.0.1:3999", "")
        );
        assert_eq!(t.url, "http://127.0.0.1:3999");
        let t = Target::parse("http://[::1]/api/").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.base_path.as_str()),
            ("::1", 80, "/api")
        );
        for bad in [
            "https://example.com",
            "127.0.0.1:3000",
            "ftp://x",
            "http://x/?a=1",
            "",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad} should be refused");
        }
    }
}
