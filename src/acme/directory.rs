//! The parts of the CA's directory (RFC 8555 §7.1.1) that instant-acme keeps to itself:
//! `meta.caaIdentities` for the CAA preflight and `newNonce` for the requests certorch signs
//! on its own (the alternate chains). Read with the same HTTPS client as every ACME request.

use bytes::Bytes;
use instant_acme::BodyWrapper;
use serde::Deserialize;

use super::Error;
use crate::inventory::Inventory;

/// What certorch reads from the directory itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Directory {
    pub new_nonce: String,
    #[serde(default)]
    pub meta: Meta,
}

/// The directory's `meta` object.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    /// The domains the CA recognizes in CAA `issue` properties (RFC 8555 §7.1.1).
    #[serde(default)]
    pub caa_identities: Vec<String>,
}

/// Fetches the inventory's directory.
pub async fn fetch(inv: &Inventory) -> Result<Directory, Error> {
    let directory = &inv.acme.directory;
    let client = super::account::http_client(inv)?;
    let unreachable = |detail: String| Error::Unreachable {
        directory: directory.clone(),
        step: "reading the directory",
        detail,
    };
    let req = hyper::Request::get(directory.as_str())
        .body(BodyWrapper::<Bytes>::default())
        .map_err(|e| unreachable(e.to_string()))?;
    let answer = super::http::send(client.as_ref(), req)
        .await
        .map_err(unreachable)?;
    if !answer.status.is_success() {
        return Err(unreachable(format!(
            "the directory answered {}",
            answer.status
        )));
    }
    serde_json::from_slice(&answer.body)
        .map_err(|e| unreachable(format!("the directory is not an ACME directory: {e}")))
}

/// The CA's CAA identities: `acme.caa_identities` when the inventory sets them, else the
/// directory's `meta.caaIdentities` (lower case, without a trailing dot). Empty when neither
/// names any.
pub async fn caa_identities(inv: &Inventory) -> Result<Vec<String>, Error> {
    if !inv.acme.caa_identities.is_empty() {
        return Ok(inv.acme.caa_identities.clone());
    }
    Ok(fetch(inv)
        .await?
        .meta
        .caa_identities
        .iter()
        .map(|s| s.trim_end_matches('.').to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect())
}
