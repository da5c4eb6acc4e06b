//! TLS for the adapters (feature `tls`): rustls, with the crypto provider chosen here and
//! never taken from a process-wide default, so nothing panics for want of one.
//!
//! The provider is rustls's `ring` backend: it builds with a C compiler alone on every target
//! rustls supports (aws-lc-rs needs only a C/C++ compiler on x86_64/aarch64 Linux too, but
//! CMake elsewhere, and its build is several times longer).
//!
//! A server's certificate chain and private key come from PEM ([`ServerTls::from_pem_files`],
//! [`ServerTls::from_pem`]) or from a caller's own [`rustls::ServerConfig`]
//! ([`ServerTls::from_config`]). The WebSocket opening handshake is HTTP/1.1, so the server
//! offers ALPN `http/1.1` (RFC 7301; RFC 6455 §4.1 runs over TLS as `wss`).
//!
//! [`ServerTls::reloadable`] reads the PEM files again whenever the application asks
//! ([`CertReloader::reload`], e.g. on SIGHUP or a timer): new connections get the new
//! certificate, open ones keep theirs, and a reload that fails keeps the old one.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// How many bytes of TLS records rustls may hold per connection, waiting for the socket; the
/// rest waits in the WebSocket connection's outgoing queue, where the slow-consumer limit
/// counts it. Two full records: enough to keep the socket busy, little per connection.
pub(crate) const SEND_BUFFER_LIMIT: usize = 32 << 10;

/// The crypto provider every TLS session of this crate uses: rustls's `ring` backend.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Why a TLS set-up could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or held nothing usable.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        message: String,
    },
    /// rustls refused the certificate, the key or the protocol versions.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A server's TLS set-up, shared by all its connections (cheap to clone).
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls").field("alpn", &self.config.alpn_protocols).finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Reads a certificate chain (leaf first) and its private key (PKCS#8, PKCS#1 or SEC1)
    /// from PEM files.
    pub fn from_pem_files(cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<Self, TlsError> {
        let (cert, key) = (cert.as_ref(), key.as_ref());
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| TlsError::Pem { path: path.to_owned(), message: e.to_string() })
        };
        let (cert_pem, key_pem) = (read(cert)?, read(key)?);
        let chain = parse_chain(&cert_pem).map_err(|message| TlsError::Pem { path: cert.to_owned(), message })?;
        let key = parse_key(&key_pem).map_err(|message| TlsError::Pem { path: key.to_owned(), message })?;
        Self::from_chain(chain, key)
    }

    /// Like [`from_pem_files`](Self::from_pem_files), from PEM text in memory.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        let pem_error = |what: &str, message| TlsError::Pem { path: PathBuf::from(what), message };
        let chain = parse_chain(cert_pem).map_err(|m| pem_error("certificate PEM", m))?;
        let key = parse_key(key_pem).map_err(|m| pem_error("key PEM", m))?;
        Self::from_chain(chain, key)
    }

    /// A caller's own configuration (client authentication, other versions, a certificate
    /// resolver for reloading without a restart). Its ALPN list is used as it is: include
    /// `http/1.1` for clients that ask for it.
    pub fn from_config(config: Arc<ServerConfig>) -> Self {
        ServerTls { config }
    }

    /// Like [`from_pem_files`](Self::from_pem_files), with a [`CertReloader`] that reads the
    /// files again without a restart.
    pub fn reloadable(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Result<(Self, CertReloader), TlsError> {
        let (cert, key) = (cert.into(), key.into());
        let provider = provider();
        let current = load_certified_key(&cert, &key, &provider)?;
        let resolver = Arc::new(Reloadable { current: RwLock::new(current), cert, key, provider: provider.clone() });
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok((ServerTls { config: Arc::new(config) }, CertReloader { resolver }))
    }

    fn from_chain(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<Self, TlsError> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ServerTls { config: Arc::new(config) })
    }

    /// The rustls configuration sessions are made from.
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    /// A new server session with the crate's buffer limit.
    pub(crate) fn session(&self) -> Result<rustls::ServerConnection, rustls::Error> {
        let mut session = rustls::ServerConnection::new(self.config.clone())?;
        session.set_buffer_limit(Some(SEND_BUFFER_LIMIT));
        Ok(session)
    }
}

/// A client configuration that trusts only the CA certificates in a PEM file (a private CA,
/// a test CA), with the crate's provider and ALPN `http/1.1`: for
/// [`Connector::tls_config`](crate::blocking::Connector::tls_config).
pub fn client_config_trusting(ca_pem_file: impl AsRef<Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let path = ca_pem_file.as_ref();
    let pem_error = |message| TlsError::Pem { path: path.to_owned(), message };
    let pem = std::fs::read(path).map_err(|e| pem_error(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    for cert in parse_chain(&pem).map_err(pem_error)? {
        roots.add(cert)?;
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// What a `wss://` client of any adapter uses: the caller's configuration (asking for ALPN
/// `http/1.1`, the WebSocket handshake's protocol, unless it chose ALPN itself) or the default.
pub(crate) fn client_config(config: Option<&Arc<ClientConfig>>) -> Arc<ClientConfig> {
    match config {
        Some(config) if config.alpn_protocols.is_empty() => Arc::new(with_http11((**config).clone())),
        Some(config) => config.clone(),
        None => default_client_config(),
    }
}

/// The configuration `wss://` uses unless the caller gives one: the Mozilla roots of
/// webpki-roots, the crate's crypto provider, ALPN `http/1.1`.
fn default_client_config() -> Arc<ClientConfig> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
            let config = ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .expect("the ring provider supports the default versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            Arc::new(with_http11(config))
        })
        .clone()
}

fn with_http11(mut config: ClientConfig) -> ClientConfig {
    if config.alpn_protocols.is_empty() {
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
    }
    config
}

/// Reads the certificate and key files of a [`ServerTls::reloadable`] again (cheap to clone,
/// usable from any thread).
#[derive(Debug, Clone)]
pub struct CertReloader {
    resolver: Arc<Reloadable>,
}

impl CertReloader {
    /// Reads the files now: connections accepted from now on get the new certificate. On an
    /// error (a missing file, a key that does not match) the old certificate stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let resolver = &self.resolver;
        let fresh = load_certified_key(&resolver.cert, &resolver.key, &resolver.provider)?;
        *resolver.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh;
        tracing::info!(cert = %resolver.cert.display(), "TLS certificate reloaded");
        Ok(())
    }
}

/// The certificate of a reloadable set-up, swapped whole by [`CertReloader::reload`].
#[derive(Debug)]
struct Reloadable {
    current: RwLock<Arc<CertifiedKey>>,
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
}

impl ResolvesServerCert for Reloadable {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone())
    }
}

fn load_certified_key(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, TlsError> {
    let read =
        |path: &Path| std::fs::read(path).map_err(|e| TlsError::Pem { path: path.to_owned(), message: e.to_string() });
    let chain = parse_chain(&read(cert)?).map_err(|message| TlsError::Pem { path: cert.to_owned(), message })?;
    let private = parse_key(&read(key)?).map_err(|message| TlsError::Pem { path: key.to_owned(), message })?;
    Ok(Arc::new(CertifiedKey::from_der(chain, private, provider)?))
}

fn parse_chain(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())?;
    if chain.is_empty() {
        return Err("no CERTIFICATE block".into());
    }
    Ok(chain)
}

fn parse_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| format!("no usable private key: {e}"))
}
