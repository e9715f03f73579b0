//! The tests' side of the Lambda Runtime API emulator (`lambda_emulator`,
//! tools/lambda-emulator): a [`TestEnv`]'s servers as a function's
//! variables, and a function's HTTP answer as a [`Resp`]. Kept here so that
//! the emulator builds without lectern or this harness.

use lambda_emulator::{HttpResponse, Invocation};

use crate::{Resp, TestEnv, parse_body};

/// The variables a function needs to run on this environment's servers, as
/// the template gives them: `REDIS_URL` and `DATABASE_URL` (what the
/// environment's app talks to: the test servers, with the schema in the URL's
/// `options`), `REDIS_KEY_PREFIX`, and `REDIS_CLUSTER=true` when the suite
/// runs against a Redis Cluster (`LECTERN_TEST_REDIS_CLUSTER=true`).
pub fn lambda_env(env: &TestEnv) -> Vec<(String, String)> {
    let mut vars = vec![
        ("REDIS_URL".to_owned(), env.app.config().redis_url.clone()),
        ("DATABASE_URL".to_owned(), env.database_url.clone()),
        ("REDIS_KEY_PREFIX".to_owned(), env.prefix.clone()),
    ];
    // The environment's own choice: LECTERN_TEST_REDIS_CLUSTER=true for the
    // shared test Redis, never for a server of the test's own.
    if env.app.config().redis_cluster {
        vars.push(("REDIS_CLUSTER".to_owned(), "true".to_owned()));
    }
    vars
}

/// An invocation's answer read as the harness reads a router's.
pub trait HttpInvocation {
    /// The response as the HTTP response API Gateway makes of it (an HTTP
    /// API payload v2.0 answer, cookies as `set-cookie` headers), the body
    /// parsed as JSON (Null when empty); panics when the invocation failed.
    fn http(&self) -> Resp;
}

impl HttpInvocation for Invocation {
    /// Holds the answer to an HTTP API event to openapi.yaml, as the
    /// in-process harness does.
    fn http(&self) -> Resp {
        let response = self.http_response();
        if let Some((method, path)) = &self.route {
            let content_type = response.headers().get(axum::http::header::CONTENT_TYPE);
            crate::openapi::assert_conforms(
                method,
                path,
                response.status().as_u16(),
                content_type.and_then(|c| c.to_str().ok()),
                response.body(),
            );
        }
        response.into()
    }
}

impl From<HttpResponse> for Resp {
    fn from(response: HttpResponse) -> Self {
        let (parts, body) = response.into_parts();
        Resp {
            status: parts.status,
            headers: parts.headers,
            body: parse_body(&body),
        }
    }
}
