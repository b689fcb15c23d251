//! Verifying what a service serves: a TLS handshake with SNI to the host's service port, and
//! the SHA-256 fingerprint of the leaf it presents. Trust is not the question here (the chain
//! was checked when it was issued); the question is whether the new certificate is live.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::inventory::Starttls;
use crate::x509::hex;

const TIMEOUT: Duration = Duration::from_secs(10);

/// One line from the server, read byte by byte so nothing after it is consumed (the TLS
/// handshake follows on the same stream).
async fn read_line(tcp: &mut TcpStream) -> Result<String, String> {
    let mut line = Vec::new();
    loop {
        let b = tcp
            .read_u8()
            .await
            .map_err(|e| format!("the server closed the connection during STARTTLS: {e}"))?;
        if b == b'\n' {
            return Ok(String::from_utf8_lossy(&line).trim_end().to_string());
        }
        if line.len() > 4096 {
            return Err("the server sent an overlong line during STARTTLS".into());
        }
        line.push(b);
    }
}

/// An SMTP reply (RFC 5321 §4.2): lines `NNN-text` until `NNN text`; returns the code.
async fn smtp_reply(tcp: &mut TcpStream) -> Result<(u16, String), String> {
    loop {
        let line = read_line(tcp).await?;
        let code = line.get(..3).and_then(|c| c.parse::<u16>().ok());
        match (code, line.as_bytes().get(3)) {
            (Some(c), Some(b'-')) if c > 0 => continue,
            (Some(c), _) => return Ok((c, line)),
            _ => return Err(format!("not an SMTP reply: {line}")),
        }
    }
}

async fn send(tcp: &mut TcpStream, line: &str) -> Result<(), String> {
    tcp.write_all(line.as_bytes())
        .await
        .map_err(|e| format!("writing to the server: {e}"))
}

/// Speaks the protocol's STARTTLS dialogue (RFC 3207 for SMTP, RFC 9051 §6.2.1 for IMAP) up
/// to the point where the TLS handshake starts.
async fn starttls(tcp: &mut TcpStream, proto: Starttls) -> Result<(), String> {
    match proto {
        Starttls::Smtp => {
            let (code, line) = smtp_reply(tcp).await?;
            if code != 220 {
                return Err(format!("the SMTP greeting is not 220: {line}"));
            }
            send(tcp, "EHLO certorch.invalid\r\n").await?;
            let (code, line) = smtp_reply(tcp).await?;
            if code != 250 {
                return Err(format!("EHLO was refused: {line}"));
            }
            send(tcp, "STARTTLS\r\n").await?;
            let (code, line) = smtp_reply(tcp).await?;
            if code != 220 {
                return Err(format!("STARTTLS was refused: {line}"));
            }
        }
        Starttls::Imap => {
            let line = read_line(tcp).await?;
            if !line.starts_with("* OK") {
                return Err(format!("the IMAP greeting is not OK: {line}"));
            }
            send(tcp, "c1 STARTTLS\r\n").await?;
            loop {
                let line = read_line(tcp).await?;
                if let Some(rest) = line.strip_prefix("c1 ") {
                    if rest.starts_with("OK") {
                        break;
                    }
                    return Err(format!("STARTTLS was refused: {line}"));
                }
            }
        }
    }
    Ok(())
}

/// The SHA-256 fingerprint (hex) of the leaf `address:port` presents for `sni`, after the
/// STARTTLS dialogue when one is given.
pub async fn served_fingerprint(
    address: &str,
    port: u16,
    proto: Option<Starttls>,
    sni: &str,
) -> Result<String, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let capture = Arc::new(crate::tls::AnyCertificate::new(provider.clone()));
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(capture.clone())
        .with_no_client_auth();
    let name = ServerName::try_from(sni.to_string())
        .map_err(|e| format!("`{sni}` is not a server name: {e}"))?;
    let connect = async {
        let mut tcp = TcpStream::connect((address, port))
            .await
            .map_err(|e| format!("cannot connect to {address}:{port}: {e}"))?;
        if let Some(p) = proto {
            starttls(&mut tcp, p)
                .await
                .map_err(|e| format!("{address}:{port}: {e}"))?;
        }
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {address}:{port} (SNI {sni}) failed: {e}"))
    };
    let _stream = tokio::time::timeout(TIMEOUT, connect).await.map_err(|_| {
        format!(
            "{address}:{port} did not answer within {}s",
            TIMEOUT.as_secs()
        )
    })??;
    let leaf = capture
        .leaf()
        .ok_or("the server presented no certificate")?;
    Ok(hex(&Sha256::digest(&leaf)))
}

/// How long a reloaded service may take to serve the new certificate: reloads are
/// asynchronous (nginx keeps old workers until they finish, others re-read in the background).
const SETTLE: Duration = Duration::from_secs(15);

/// Consecutive handshakes that must show the new certificate: during a graceful reload old
/// workers still accept connections for a moment (nginx), so one match proves little.
const CONFIRMATIONS: u32 = 3;

/// Asks until `address:port` serves `want` on `CONFIRMATIONS` handshakes in a row, or `SETTLE`
/// passes; returns what was served last.
pub async fn wait_for_fingerprint(
    address: &str,
    port: u16,
    proto: Option<Starttls>,
    sni: &str,
    want: &str,
) -> Result<String, String> {
    let start = std::time::Instant::now();
    let mut in_a_row = 0;
    loop {
        let got = served_fingerprint(address, port, proto, sni).await;
        in_a_row = if got.as_deref() == Ok(want) {
            in_a_row + 1
        } else {
            0
        };
        if in_a_row >= CONFIRMATIONS || start.elapsed() >= SETTLE {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
