//! A TCP proxy in front of a real server (PostgreSQL here) that can cut
//! every connection through it at once, as a network partition or a
//! failover does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A proxy to one upstream on a free loopback port: [`Proxy::cut`] drops
/// every connection through it and refuses new ones until [`Proxy::restore`].
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    open: Arc<AtomicBool>,
    cuts: watch::Sender<u64>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// A proxy to `upstream` (`host:port`) on a free loopback port. Panics
    /// when no port can be bound (see [`Proxy::try_start`]).
    pub async fn start(upstream: &str) -> Self {
        Self::try_start(upstream)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Proxy::start`]; why not, in one line.
    pub async fn try_start(upstream: &str) -> Result<Self, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("no free port for the proxy: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("no free port for the proxy: {e}"))?;
        let open = Arc::new(AtomicBool::new(true));
        let (cuts, _) = watch::channel(0u64);
        let upstream = upstream.to_owned();
        let (flag, signal) = (open.clone(), cuts.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !flag.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees its connection closed
                }
                let mut cut = signal.subscribe();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Ok(Self {
            addr,
            open,
            cuts,
            accept,
        })
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }

    /// Whether connections go through (not cut).
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}
