//! TLS for the listening ports, with rustls: a certificate chain and a
//! private key in PEM files. The OTLP/gRPC port uses tonic's TLS; HTTP
//! ports (OTLP/HTTP, and the server's API through [`serve_https`]) accept
//! TLS connections and speak HTTP/1.1 or HTTP/2 (ALPN) over them.

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        self,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _},
    },
};

use crate::error::{Error, Result};

/// Where the certificate and key are; TLS is on when both are set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, leaf first.
    pub cert_path: Option<PathBuf>,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_path: Option<PathBuf>,
}

/// A loaded certificate and key.
#[derive(Clone)]
pub struct Tls {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls(..)")
    }
}

fn bad(message: String) -> Error {
    Error::Config(message)
}

impl Tls {
    /// Loads the files of `config`; `None` when TLS is not configured.
    pub fn load(config: &TlsConfig) -> Result<Option<Self>> {
        let (cert, key) = match (&config.cert_path, &config.key_path) {
            (None, None) => return Ok(None),
            (Some(c), Some(k)) => (c, k),
            _ => {
                return Err(bad(
                    "tls: set both cert_path and key_path, or neither".into()
                ));
            }
        };
        let read = |p: &PathBuf| {
            std::fs::read(p).map_err(|e| bad(format!("tls: cannot read {}: {e}", p.display())))
        };
        let (cert_pem, key_pem) = (read(cert)?, read(key)?);
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| bad(format!("tls: {}: {e}", cert.display())))?;
        if chain.is_empty() {
            return Err(bad(format!("tls: no certificate in {}", cert.display())));
        }
        let private = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| bad(format!("tls: {}: {e}", key.display())))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(format!("tls: {e}")))?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| bad(format!("tls: the key does not fit the certificate: {e}")))?;
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Some(Self {
            cert_pem,
            key_pem,
            acceptor: TlsAcceptor::from(Arc::new(server)),
        }))
    }

    /// The acceptor for HTTP ports.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// The same certificate and key for tonic.
    pub(crate) fn grpc(&self) -> tonic::transport::ServerTlsConfig {
        tonic::transport::ServerTlsConfig::new().identity(tonic::transport::Identity::from_pem(
            &self.cert_pem,
            &self.key_pem,
        ))
    }
}

/// Serves `router` over TLS on `listener` until `shutdown` completes, then
/// lets open connections finish. Handlers see the peer address as
/// `axum::extract::ConnectInfo<SocketAddr>`, as with
/// `into_make_service_with_connect_info`.
pub async fn serve_https(
    listener: TcpListener,
    router: axum::Router,
    acceptor: TlsAcceptor,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            conn = listener.accept() => match conn {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: pause, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let service =
            router
                .clone()
                .layer(axum::Extension(axum::extract::ConnectInfo::<SocketAddr>(
                    peer,
                )));
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            // A client gets 10 s to finish its handshake.
            let Ok(Ok(tls)) =
                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
            else {
                return;
            };
            let conn =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection_with_upgrades(
                        hyper_util::rt::TokioIo::new(tls),
                        hyper_util::service::TowerToHyperService::new(service),
                    )
                    .into_owned();
            let _ = watcher.watch(conn).await;
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
