//! Certificates for TLS tests, made per run (feature `tls`): no private key is checked in.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

/// A CA made for this run and a leaf certificate it signed, in PEM.
pub struct TestPki {
    /// The CA's certificate, for clients to trust.
    pub ca_pem: String,
    /// The leaf's certificate, for the server.
    pub cert_pem: String,
    /// The leaf's private key (PKCS#8).
    pub key_pem: String,
    ca_der: CertificateDer<'static>,
}

impl TestPki {
    /// A CA and a leaf for `names` (host names or IP addresses).
    pub fn new(names: &[&str]) -> Self {
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "wsproto test CA");
        let ca_key = KeyPair::generate().expect("CA key");
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let leaf = CertificateParams::new(names).expect("leaf parameters");
        let leaf_key = KeyPair::generate().expect("leaf key");
        let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key).expect("leaf certificate");
        TestPki {
            ca_pem: ca_cert.pem(),
            cert_pem: leaf_cert.pem(),
            key_pem: leaf_key.serialize_pem(),
            ca_der: ca_cert.der().clone(),
        }
    }

    /// For `localhost` and `127.0.0.1`.
    pub fn localhost() -> Self {
        TestPki::new(&["localhost", "127.0.0.1"])
    }

    /// A rustls client configuration (ring provider, ALPN `http/1.1`) that trusts this CA only.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der.clone()).expect("the test CA");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("default versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}
