//! The ACME account: registered once per CA directory, its credentials kept in the state
//! database (mode 0600), never printed.

use instant_acme::{Account, AccountCredentials, ExternalAccountKey, NewAccount};

use super::Error;
use crate::inventory::Inventory;
use crate::state::State;

/// The HTTPS client for the inventory's CA (its trust root when one is given).
pub(super) fn http_client(inv: &Inventory) -> Result<Box<dyn instant_acme::HttpClient>, Error> {
    super::http::client(inv.acme.trust_root.as_deref()).map_err(|detail| {
        match &inv.acme.trust_root {
            Some(root) => Error::AccountFile {
                path: root.display().to_string(),
                detail: format!("cannot use as trust root: {detail}"),
            },
            None => Error::AccountFile {
                path: "the system's trust store".into(),
                detail,
            },
        }
    })
}

fn builder(inv: &Inventory) -> Result<instant_acme::AccountBuilder, Error> {
    Ok(Account::builder_with_http(http_client(inv)?))
}

/// Loads the stored account for the inventory's CA, if there is one.
pub async fn load(inv: &Inventory, state: &State) -> Result<Option<Account>, Error> {
    let directory = &inv.acme.directory;
    let stored = state.account(directory).map_err(|e| Error::AccountFile {
        path: "state database".into(),
        detail: e.to_string(),
    })?;
    let Some(json) = stored else { return Ok(None) };
    let credentials = || -> Result<AccountCredentials, Error> {
        serde_json::from_str(&json).map_err(|_| Error::AccountFile {
            path: "state database".into(),
            detail: format!("the stored account for {directory} is unreadable"),
        })
    };
    // Unreadable credentials fail before any request (the type has no Clone: each attempt
    // parses them again).
    drop(credentials()?);
    // Loading reads the directory: the first request of a run, retried like every other.
    retrying!(
        directory,
        "loading the account",
        async {
            match (credentials(), builder(inv)) {
                (Ok(c), Ok(b)) => b.from_credentials(c).await.map(Ok),
                (Err(e), _) | (_, Err(e)) => Ok(Err(e)),
            }
        }
        .await
    )?
    .map(Some)
}

/// Loads the account for the inventory's CA, or registers one (with external account binding
/// when the inventory gives one) and stores it.
pub async fn load_or_create(inv: &Inventory, state: &State) -> Result<Account, Error> {
    if let Some(a) = load(inv, state).await? {
        return Ok(a);
    }
    let directory = &inv.acme.directory;
    let contact: Vec<&str> = inv.acme.contact.iter().map(String::as_str).collect();
    let eab = inv
        .acme
        .eab
        .as_ref()
        .map(|eab| ExternalAccountKey::new(eab.kid.clone(), eab.hmac_key.expose()));
    let new = NewAccount {
        contact: &contact,
        terms_of_service_agreed: true,
        only_return_existing: false,
    };
    // A retry after a lost answer registers another key: the CA then holds an unused
    // account, which costs nothing.
    let (account, credentials) = retrying!(
        directory,
        "registering an account",
        async {
            match builder(inv) {
                Ok(b) => b
                    .create(&new, directory.clone(), eab.as_ref())
                    .await
                    .map(Ok),
                Err(e) => Ok(Err(e)),
            }
        }
        .await
    )??;
    let json = serde_json::to_string(&credentials).map_err(|e| Error::AccountFile {
        path: "state database".into(),
        detail: e.to_string(),
    })?;
    state
        .save_account(directory, &json, &inv.acme.contact)
        .map_err(|e| Error::AccountFile {
            path: "state database".into(),
            detail: e.to_string(),
        })?;
    Ok(account)
}

/// Whether the CA's directory answers, without registering anything: asks for the account of
/// a throwaway key with `onlyReturnExisting` (RFC 8555 §7.3.1), which the CA refuses with
/// `accountDoesNotExist` when it works.
pub async fn reachable(inv: &Inventory) -> Result<(), Error> {
    let directory = &inv.acme.directory;
    retrying!(
        directory,
        "reading the directory",
        async {
            let b = match builder(inv) {
                Ok(b) => b,
                Err(e) => return Ok(Err(e)),
            };
            let (key, der) = instant_acme::Key::generate_pkcs8()?;
            match b.from_key((key, der.into()), directory.clone()).await {
                Ok(_) => Ok(Ok(())),
                Err(instant_acme::Error::Api(p))
                    if p.r#type.as_deref()
                        == Some("urn:ietf:params:acme:error:accountDoesNotExist") =>
                {
                    Ok(Ok(()))
                }
                Err(e) => Err(e),
            }
        }
        .await
    )?
}

/// What a key rollover did: the account, and the RFC 7638 thumbprints of its old and new
/// public keys (public values, safe to print).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rollover {
    pub account_url: String,
    pub old_thumbprint: String,
    pub new_thumbprint: String,
}

/// Replaces the account's key with a new one (RFC 8555 §7.3.5: `keyChange`, the inner JWS
/// signed by the new key, through instant-acme's `update_key`) and stores the new
/// credentials in place of the old; the account URL stays the same.
pub async fn rollover(inv: &Inventory, state: &State) -> Result<Option<Rollover>, Error> {
    let directory = &inv.acme.directory;
    let Some(mut account) = load(inv, state).await? else {
        return Ok(None);
    };
    let old_thumbprint = account.key_thumbprint().to_string();
    let credentials = account
        .update_key()
        .await
        .map_err(|e| Error::from_acme(directory, "changing the account key", e))?;
    let json = serde_json::to_string(&credentials).map_err(|e| Error::AccountFile {
        path: "state database".into(),
        detail: e.to_string(),
    })?;
    // The CA knows only the new key from here on: losing it loses the account.
    state
        .update_account_credentials(directory, &json)
        .map_err(|e| Error::AccountFile {
            path: "state database".into(),
            detail: format!(
                "the CA now holds the new key for {}, but it could not be stored: {e}; the old key no longer works",
                account.id()
            ),
        })?;
    Ok(Some(Rollover {
        account_url: account.id().to_string(),
        old_thumbprint,
        new_thumbprint: account.key_thumbprint().to_string(),
    }))
}
