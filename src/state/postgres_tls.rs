//! TLS to PostgreSQL: libpq's `sslmode`, `sslrootcert`, `sslcert` and `sslkey`, over rustls
//! with the aws-lc-rs provider, as tokio-postgres's `MakeTlsConnect`.
//!
//! Why our own connector and not a crate: the few lines tokio-postgres asks for (a connector,
//! a stream, the `tls-server-end-point` channel binding) are all here, and
//! tokio-postgres-rustls (like sfackler's postgres-rustls) depends on ring unconditionally,
//! for the binding's digest; certorch has one crypto backend (sha2 hashes the binding here). The system's roots come from rustls-native-certs, as for the ACME client:
//! a root store is what both `sslrootcert=FILE` and verify-ca (the chain without the name)
//! need, and it reads the same files (or `SSL_CERT_FILE`) as every other TLS client on the
//! bastion.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// Without TLS first; with TLS (unverified) if the server refuses that.
    Allow,
    /// With TLS (unverified) if the server offers it, else without (libpq's default).
    Prefer,
    /// Encrypted; the server's certificate checked only if `sslrootcert` is given (as verify-ca).
    Require,
    /// Encrypted; the certificate's chain checked against `sslrootcert` or the system's roots.
    VerifyCa,
    /// As verify-ca, and the certificate must be for the host connected to.
    VerifyFull,
}

impl SslMode {
    pub const NAMES: &'static str = "disable, allow, prefer, require, verify-ca, verify-full";

    pub fn parse(s: &str) -> Option<SslMode> {
        Some(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// What the URL says about TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub mode: SslMode,
    /// `sslrootcert`: a PEM bundle of CAs, or `system` for the system's roots.
    pub root: Option<PathBuf>,
    /// `sslcert` and `sslkey`: a client certificate (PEM, with its chain) and its key.
    pub client: Option<(PathBuf, PathBuf)>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            mode: SslMode::Prefer,
            root: None,
            client: None,
        }
    }
}

/// How much of the server's certificate is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    Nothing,
    Chain,
    ChainAndName,
}

/// How a connection is attempted, in libpq's order.
pub enum Plan {
    Plain,
    PlainThenTls(Connector),
    TlsThenPlain(Connector),
    Tls(Connector),
}

/// A failure to set up or speak TLS, with what to do about it.
#[derive(Debug, Clone)]
pub struct Failure {
    pub detail: String,
    pub hint: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for Failure {}

const GIVE_ROOT: &str = "give the CA that issued PostgreSQL's server certificate (a PEM file) with sslrootcert=FILE in the state URL";

impl Settings {
    fn check(&self) -> Check {
        match self.mode {
            SslMode::Disable | SslMode::Allow | SslMode::Prefer => Check::Nothing,
            SslMode::Require if self.root.is_none() => Check::Nothing,
            SslMode::Require | SslMode::VerifyCa => Check::Chain,
            SslMode::VerifyFull => Check::ChainAndName,
        }
    }

    /// The attempts to make. Over a Unix socket there is no TLS, whatever the mode (as libpq).
    pub fn plan(&self, unix_only: bool) -> Result<Plan, Failure> {
        if unix_only || self.mode == SslMode::Disable {
            return Ok(Plan::Plain);
        }
        let connector = Connector {
            config: Arc::new(self.client_config()?),
            check: self.check(),
            roots: self.roots_name(),
            mode: self.mode,
        };
        Ok(match self.mode {
            SslMode::Allow => Plan::PlainThenTls(connector),
            SslMode::Prefer => Plan::TlsThenPlain(connector),
            _ => Plan::Tls(connector),
        })
    }

    fn roots_name(&self) -> String {
        match &self.root {
            Some(p) if p.as_os_str() != "system" => format!("sslrootcert {}", p.display()),
            _ => "the system's root certificates".into(),
        }
    }

    fn client_config(&self) -> Result<ClientConfig, Failure> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match self.check() {
            // sslmode prefer, allow, require without sslrootcert: encryption against a passive
            // listener, as libpq; the handshake's signatures are still checked.
            Check::Nothing => Arc::new(crate::tls::AnyCertificate::new(provider.clone())),
            check => {
                let roots = Arc::new(self.roots()?);
                let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| Failure {
                        detail: format!("cannot use {}: {e}", self.roots_name()),
                        hint: GIVE_ROOT.into(),
                    })?;
                if check == Check::ChainAndName {
                    webpki
                } else {
                    Arc::new(ChainOnly(webpki))
                }
            }
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Failure {
                detail: format!("cannot set up TLS: {e}"),
                hint: "this is a bug in certorch: report it".into(),
            })?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        match &self.client {
            None => Ok(builder.with_no_client_auth()),
            Some((cert, key)) => {
                let (chain, key_der) = client_identity(cert, key)?;
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|e| Failure {
                        detail: format!(
                            "the client certificate {} does not go with the key {}: {e}",
                            cert.display(),
                            key.display()
                        ),
                        hint: "give sslcert and sslkey of the same pair (PEM)".into(),
                    })
            }
        }
    }

    fn roots(&self) -> Result<rustls::RootCertStore, Failure> {
        let mut store = rustls::RootCertStore::empty();
        match &self.root {
            Some(path) if path.as_os_str() != "system" => {
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| Failure {
                        detail: format!(
                            "cannot read sslrootcert {}: {}",
                            path.display(),
                            pem_error(&e)
                        ),
                        hint: "sslrootcert must be a readable file of PEM certificates (the CA that issued PostgreSQL's server certificate)".into(),
                    })?;
                let (added, _) = store.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(Failure {
                        detail: format!("sslrootcert {} holds no usable certificate", path.display()),
                        hint: "sslrootcert must be a file of PEM certificates (-----BEGIN CERTIFICATE-----), the CA that issued PostgreSQL's server certificate".into(),
                    });
                }
            }
            _ => {
                let found = rustls_native_certs::load_native_certs();
                store.add_parsable_certificates(found.certs);
                if store.is_empty() {
                    let why = found
                        .errors
                        .first()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default();
                    return Err(Failure {
                        detail: format!("no system root certificates found{why}"),
                        hint: GIVE_ROOT.into(),
                    });
                }
            }
        }
        Ok(store)
    }
}

fn pem_error(e: &rustls_pki_types::pem::Error) -> String {
    match e {
        rustls_pki_types::pem::Error::Io(io) => io.to_string(),
        other => format!("not PEM ({other:?})"),
    }
}

/// The client certificate chain and key. The key file is refused when others may read it,
/// as libpq does (0600, or 0640 owned by root).
fn client_identity(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), Failure> {
    let hint = "sslcert and sslkey must be readable PEM files: the client certificate (with its chain) and its private key";
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| Failure {
            detail: format!("cannot read sslcert {}: {}", cert.display(), pem_error(&e)),
            hint: hint.into(),
        })?;
    if chain.is_empty() {
        return Err(Failure {
            detail: format!("sslcert {} holds no certificate", cert.display()),
            hint: hint.into(),
        });
    }
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(key).map_err(|e| Failure {
            detail: format!("cannot read sslkey {}: {e}", key.display()),
            hint: hint.into(),
        })?;
        let loose = if meta.uid() == 0 {
            meta.mode() & 0o037 != 0
        } else {
            meta.mode() & 0o077 != 0
        };
        if loose {
            return Err(Failure {
                detail: format!(
                    "sslkey {} can be read by others (mode {:o})",
                    key.display(),
                    meta.mode() & 0o777
                ),
                hint: format!("chmod 0600 {}", key.display()),
            });
        }
    }
    // The key's bytes never reach a message: only the kind of failure.
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| Failure {
        detail: format!(
            "cannot read sslkey {}: {}",
            key.display(),
            match e {
                rustls_pki_types::pem::Error::Io(io) => io.to_string(),
                _ => "not a PEM private key".into(),
            }
        ),
        hint: hint.into(),
    })?;
    Ok((chain, key_der))
}

/// verify-ca: the chain up to a trusted root, whatever names the certificate holds. webpki
/// checks the chain before the name, so a name mismatch means the chain was good.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// tokio-postgres's TLS connector over rustls.
#[derive(Clone)]
pub struct Connector {
    config: Arc<ClientConfig>,
    check: Check,
    roots: String,
    mode: SslMode,
}

impl<S> MakeTlsConnect<S> for Connector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type TlsConnect = Connect;
    type Error = Failure;

    fn make_tls_connect(&mut self, host: &str) -> Result<Connect, Failure> {
        let name = match ServerName::try_from(host.to_string()) {
            Ok(n) => n,
            Err(_) if self.check != Check::ChainAndName => {
                ServerName::try_from("postgresql.invalid").map_err(|e| Failure {
                    detail: format!("cannot set up TLS: {e}"),
                    hint: "this is a bug in certorch: report it".into(),
                })?
            }
            Err(e) => {
                return Err(Failure {
                    detail: format!(
                        "sslmode=verify-full cannot check the certificate of PostgreSQL at `{host}`: {e}"
                    ),
                    hint: "give the server by a DNS name or IP address, or use sslmode=verify-ca"
                        .into(),
                });
            }
        };
        Ok(Connect {
            config: self.config.clone(),
            name,
            host: host.to_string(),
            roots: self.roots.clone(),
            mode: self.mode,
        })
    }
}

pub struct Connect {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    host: String,
    roots: String,
    mode: SslMode,
}

impl<S> TlsConnect<S> for Connect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type Error = Failure;
    type Future = Pin<Box<dyn Future<Output = Result<Stream<S>, Failure>> + Send>>;

    fn connect(self, socket: S) -> Self::Future {
        Box::pin(async move {
            tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, socket)
                .await
                .map(Stream)
                .map_err(|e| handshake_failure(&e, &self.host, &self.roots, self.mode))
        })
    }
}

/// What went wrong in the handshake, named for the operator.
fn handshake_failure(e: &io::Error, host: &str, roots: &str, mode: SslMode) -> Failure {
    let tls = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    let general = || {
        format!(
            "check PostgreSQL's TLS settings on {host} (ssl = on, ssl_cert_file, ssl_key_file, ssl_min_protocol_version); sslmode={} is what this URL asks for",
            mode.name()
        )
    };
    match tls {
        Some(rustls::Error::InvalidCertificate(c)) => match c {
            CertificateError::UnknownIssuer
            | CertificateError::BadSignature
            | CertificateError::UnhandledCriticalExtension => Failure {
                detail: format!(
                    "the TLS certificate of PostgreSQL at {host} is not issued by a CA in {roots} ({c:?})"
                ),
                hint: GIVE_ROOT.into(),
            },
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                Failure {
                    detail: format!(
                        "the TLS certificate of PostgreSQL at {host} is not for `{host}` ({})",
                        rustls::Error::InvalidCertificate(c.clone())
                    ),
                    hint: format!(
                        "connect to PostgreSQL by a name or address its certificate holds (its subjectAltName), have it a certificate for `{host}`, or check the issuer only with sslmode=verify-ca"
                    ),
                }
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => Failure {
                detail: format!(
                    "the TLS certificate of PostgreSQL at {host} is out of its validity ({})",
                    rustls::Error::InvalidCertificate(c.clone())
                ),
                hint: "renew PostgreSQL's server certificate (ssl_cert_file), or set this bastion's clock right".into(),
            },
            other => Failure {
                detail: format!(
                    "the TLS certificate of PostgreSQL at {host} is refused: {}",
                    rustls::Error::InvalidCertificate(other.clone())
                ),
                hint: general(),
            },
        },
        Some(other) => Failure {
            detail: format!("TLS with PostgreSQL at {host} failed: {other}"),
            hint: general(),
        },
        None => Failure {
            detail: format!("TLS with PostgreSQL at {host} failed: {e}"),
            hint: general(),
        },
    }
}

/// A TLS connection to PostgreSQL.
pub struct Stream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Stream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for Stream<S> {
    /// `tls-server-end-point` (RFC 5929): the hash of the server's certificate, for
    /// SCRAM-SHA-256-PLUS, which binds the password exchange to this TLS session.
    fn channel_binding(&self) -> ChannelBinding {
        let (_, conn) = self.0.get_ref();
        match conn
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| end_point_hash(c))
        {
            Some(h) => ChannelBinding::tls_server_end_point(h),
            None => ChannelBinding::none(),
        }
    }
}

/// The certificate's hash with its signature's digest, SHA-256 for MD5 and SHA-1; none for
/// a signature without a digest of its own (Ed25519), where the binding is not defined.
fn end_point_hash(cert: &[u8]) -> Option<Vec<u8>> {
    use sha2::Digest;
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    let oid = parsed.signature_algorithm.algorithm.to_id_string();
    Some(match oid.as_str() {
        // sha384WithRSAEncryption, ecdsa-with-SHA384
        "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => sha2::Sha384::digest(cert).to_vec(),
        // sha512WithRSAEncryption, ecdsa-with-SHA512
        "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" => sha2::Sha512::digest(cert).to_vec(),
        // Ed25519, Ed448
        "1.3.101.112" | "1.3.101.113" => return None,
        _ => sha2::Sha256::digest(cert).to_vec(),
    })
}

/// The failure tokio-postgres reports when the server answers `N` to the TLS request.
pub fn is_no_tls(e: &postgres::Error) -> bool {
    std::error::Error::source(e).is_some_and(|s| s.to_string() == "server does not support TLS")
}

/// Our own handshake failure inside a tokio-postgres error.
pub fn failure(e: &postgres::Error) -> Option<&Failure> {
    std::error::Error::source(e).and_then(|s| s.downcast_ref::<Failure>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    #[test]
    fn which_modes_check_what() {
        let s = |mode, root: Option<&str>| Settings {
            mode,
            root: root.map(PathBuf::from),
            client: None,
        };
        assert_eq!(s(SslMode::Prefer, Some("/ca.pem")).check(), Check::Nothing);
        assert_eq!(s(SslMode::Require, None).check(), Check::Nothing);
        assert_eq!(s(SslMode::Require, Some("/ca.pem")).check(), Check::Chain);
        assert_eq!(s(SslMode::VerifyCa, None).check(), Check::Chain);
        assert_eq!(s(SslMode::VerifyFull, None).check(), Check::ChainAndName);
        assert!(matches!(
            s(SslMode::VerifyFull, None).plan(true),
            Ok(Plan::Plain)
        ));
        let e = match s(SslMode::VerifyFull, Some("/nonexistent/ca.pem")).plan(false) {
            Err(e) => e,
            Ok(_) => panic!("a missing sslrootcert was taken"),
        };
        assert!(e.detail.contains("/nonexistent/ca.pem"), "{}", e.detail);
        for name in SslMode::NAMES.split(", ") {
            assert_eq!(SslMode::parse(name).map(SslMode::name), Some(name));
        }
    }

    /// A CA (its PEM in `dir/NAME.pem`) and a server certificate from it for `db.example.org`.
    fn server(dir: &Path, name: &str) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} CA"));
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), ca_cert.pem()).unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["db.example.org".into()]).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = leaf
            .signed_by(&leaf_key, &rcgen::Issuer::new(ca, ca_key))
            .unwrap();
        (
            leaf.der().clone(),
            PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap(),
        )
    }

    /// A handshake of our connector with a rustls server serving `cert`, to `host`.
    async fn handshake(
        settings: &Settings,
        host: &str,
        cert: &(CertificateDer<'static>, PrivateKeyDer<'static>),
    ) -> Result<(), Failure> {
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.0.clone()], cert.1.clone_key())
        .unwrap();
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(async move {
            tokio_rustls::TlsAcceptor::from(Arc::new(config))
                .accept(server_io)
                .await
                .is_ok()
        });
        let Plan::Tls(mut connector) = settings.plan(false)? else {
            panic!("not a TLS plan");
        };
        let connect =
            MakeTlsConnect::<tokio::io::DuplexStream>::make_tls_connect(&mut connector, host)?;
        let result = connect.connect(client_io).await.map(|_| ());
        server.abort();
        result
    }

    #[tokio::test]
    async fn what_each_mode_checks_in_a_handshake() {
        let dir = tempfile::tempdir().unwrap();
        let good = server(dir.path(), "good");
        server(dir.path(), "other");
        let root = |name: &str| Some(dir.path().join(format!("{name}.pem")));
        let s = |mode, root| Settings {
            mode,
            root,
            client: None,
        };
        // The right CA and name.
        handshake(
            &s(SslMode::VerifyFull, root("good")),
            "db.example.org",
            &good,
        )
        .await
        .unwrap();
        // Another name: refused by verify-full, with what to do; verify-ca does not look.
        let e = handshake(
            &s(SslMode::VerifyFull, root("good")),
            "pg.example.org",
            &good,
        )
        .await
        .unwrap_err();
        assert!(
            e.detail.contains(
                "the TLS certificate of PostgreSQL at pg.example.org is not for `pg.example.org`"
            ),
            "{}",
            e.detail
        );
        assert!(e.hint.contains("sslmode=verify-ca"), "{}", e.hint);
        handshake(&s(SslMode::VerifyCa, root("good")), "pg.example.org", &good)
            .await
            .unwrap();
        // Another CA: refused by every mode that checks, with the file named.
        for mode in [SslMode::VerifyFull, SslMode::VerifyCa, SslMode::Require] {
            let e = handshake(&s(mode, root("other")), "db.example.org", &good)
                .await
                .unwrap_err();
            assert!(
                e.detail.contains(&format!(
                    "is not issued by a CA in sslrootcert {}",
                    dir.path().join("other.pem").display()
                )),
                "{mode:?}: {}",
                e.detail
            );
            assert!(e.hint.contains("sslrootcert=FILE"), "{}", e.hint);
        }
        // require without sslrootcert: encrypted, not checked.
        handshake(&s(SslMode::Require, None), "pg.example.org", &good)
            .await
            .unwrap();
    }

    #[test]
    fn end_point_hash_follows_the_signature() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["db.example.org".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = cert.der();
        assert_eq!(
            end_point_hash(der),
            Some(sha2::Sha384::digest(der.as_ref()).to_vec())
        );
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["db.example.org".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert_eq!(
            end_point_hash(cert.der()),
            Some(sha2::Sha256::digest(cert.der().as_ref()).to_vec())
        );
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["db.example.org".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert_eq!(end_point_hash(cert.der()), None);
    }
}
