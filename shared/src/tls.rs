//! TLS, set up once per process: rustls with the ring provider (the only one
//! compiled in, so nothing is chosen at run time) and the Mozilla roots from
//! webpki-roots. ElastiCache's in-transit TLS and RDS Proxy both present
//! certificates under Amazon's public roots, so no CA bundle is shipped.
//!
//! Nothing here runs before the first TLS connection: the configuration is
//! built on first use and shared by every connection after it.

use std::sync::{Arc, LazyLock};

/// Installs ring as the process's crypto provider. Idempotent; cheap.
pub fn install_provider() {
    // An error means a provider is already installed (a second call): keep it.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The client configuration every TLS connection lectern makes uses.
pub fn client_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: LazyLock<Arc<rustls::ClientConfig>> = LazyLock::new(|| {
        install_provider();
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        Arc::new(
            rustls::ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    });
    CONFIG.clone()
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_configuration_is_shared() {
        assert!(std::sync::Arc::ptr_eq(
            &super::client_config(),
            &super::client_config()
        ));
    }
}
