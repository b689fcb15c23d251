//! Sending one DNS message and reading its answer: UDP for queries (TCP when the answer is
//! truncated), TCP for updates, TSIG signing and verification (RFC 8945 §5.3).
//!
//! hickory-proto builds, signs and parses messages; the exchange itself is a few lines of tokio,
//! which keeps the resolver and client crates (and their own runtime assumptions) out.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::op::Message;
use hickory_proto::rr::rdata::tsig::TsigError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::Error;
use super::tsig::TsigKey;

/// An answer, with the server's TSIG error if it refused our signature.
pub struct Answer {
    pub message: Message,
    /// `BADSIG`, `BADKEY`, `BADTIME`… when the server rejected the request's TSIG.
    pub tsig_error: Option<String>,
}

/// Whether to start over TCP.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// UDP, retried once, and TCP if the answer is truncated.
    Udp,
    /// TCP only: updates, whose answer must not be lost or spoofed in transit.
    Tcp,
}

/// Sends `msg` to `server` and returns the answer. With `key`, the request is signed and a
/// signed answer verified; an unsigned NOERROR answer to a signed request is refused.
pub async fn exchange(
    server: SocketAddr,
    mut msg: Message,
    key: Option<&TsigKey>,
    via: Via,
    timeout: Duration,
    what: &str,
) -> Result<Answer, Error> {
    let mut verifier = None;
    if let Some(key) = key {
        let signer = key.signer()?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        verifier = msg
            .finalize(&signer, now)
            .map_err(|e| Error::Key(e.to_string()))?;
    }
    let bytes = msg.to_vec().map_err(|e| Error::Io {
        server,
        detail: format!("cannot encode the message: {e}"),
    })?;
    let io = |e: std::io::Error| Error::Io {
        server,
        detail: e.to_string(),
    };
    let timed_out = || Error::Timeout {
        server,
        secs: timeout.as_secs().max(1),
        what: what.to_string(),
    };
    let raw = if via == Via::Tcp || bytes.len() > 512 {
        tokio::time::timeout(timeout, tcp(server, &bytes))
            .await
            .map_err(|_| timed_out())?
            .map_err(io)?
    } else {
        let mut got = None;
        for _ in 0..2 {
            match tokio::time::timeout(timeout / 2, udp(server, &bytes, msg.id)).await {
                Ok(r) => {
                    got = Some(r.map_err(io)?);
                    break;
                }
                Err(_) => continue,
            }
        }
        let raw = got.ok_or_else(timed_out)?;
        let truncated = Message::from_vec(&raw)
            .map(|m| m.truncation)
            .unwrap_or(false);
        if truncated {
            tokio::time::timeout(timeout, tcp(server, &bytes))
                .await
                .map_err(|_| timed_out())?
                .map_err(io)?
        } else {
            raw
        }
    };
    let message = Message::from_vec(&raw).map_err(|e| Error::Io {
        server,
        detail: format!("unreadable answer: {e}"),
    })?;
    if message.id != msg.id {
        return Err(Error::Io {
            server,
            detail: "answer for another request (id mismatch)".into(),
        });
    }
    if key.is_none() {
        return Ok(Answer {
            message,
            tsig_error: None,
        });
    }
    // A server that rejects our signature answers unsigned (empty MAC) with the TSIG error
    // set (RFC 8945 §5.3.2); that answer cannot be verified and is reported as it is.
    if let Some(err) = message.signature().and_then(|s| s.data.error) {
        return Ok(Answer {
            message,
            tsig_error: Some(tsig_name(&err)),
        });
    }
    match (message.signature().is_some(), verifier) {
        (true, Some(mut v)) => {
            v.verify(&raw).map_err(|e| Error::BadResponse {
                server,
                detail: e.to_string(),
            })?;
            Ok(Answer {
                message,
                tsig_error: None,
            })
        }
        _ if message.response_code != hickory_proto::op::ResponseCode::NoError => Ok(Answer {
            message,
            tsig_error: None,
        }),
        _ => Err(Error::BadResponse {
            server,
            detail: "the answer to a signed request is not signed".into(),
        }),
    }
}

fn tsig_name(e: &TsigError) -> String {
    match e {
        TsigError::BadSig => "BADSIG".into(),
        TsigError::BadKey => "BADKEY".into(),
        TsigError::BadTime => "BADTIME".into(),
        TsigError::BadTrunc => "BADTRUNC".into(),
        TsigError::Unknown(c) => format!("TSIG error {c}"),
    }
}

async fn udp(server: SocketAddr, bytes: &[u8], id: u16) -> std::io::Result<Vec<u8>> {
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .expect("constant address");
    let sock = UdpSocket::bind(bind).await?;
    sock.connect(server).await?;
    sock.send(bytes).await?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = sock.recv(&mut buf).await?;
        // Ignore stray datagrams: only an answer with our id counts.
        if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

async fn tcp(server: SocketAddr, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(server).await?;
    let len =
        u16::try_from(bytes.len()).map_err(|_| std::io::Error::other("message over 64 KiB"))?;
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(bytes);
    s.write_all(&framed).await?;
    let n = s.read_u16().await? as usize;
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).await?;
    Ok(buf)
}
