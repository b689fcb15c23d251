//! The ACME account: created once per CA directory and kept in the state directory, mode 0600.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use instant_acme::{Account, AccountCredentials, NewAccount};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Error;
use crate::inventory::Inventory;
use crate::x509::hex;

/// What is stored per account. `credentials` holds the account key: the file is 0600 and its
/// contents are never logged.
#[derive(Serialize, Deserialize)]
struct Stored {
    directory: String,
    contact: Vec<String>,
    credentials: AccountCredentials,
}

/// The file that holds the account for `directory` under `state`.
pub fn account_path(state: &Path, directory: &str) -> PathBuf {
    let id = hex(&Sha256::digest(directory.as_bytes()));
    state.join("accounts").join(format!("{}.json", &id[..16]))
}

fn builder(inv: &Inventory) -> Result<instant_acme::AccountBuilder, Error> {
    let directory = &inv.acme.directory;
    match &inv.acme.trust_root {
        Some(root) => Account::builder_with_root(root).map_err(|e| Error::AccountFile {
            path: root.display().to_string(),
            detail: format!("cannot use as trust root: {}", super::error_chain(&e)),
        }),
        None => Account::builder().map_err(|e| Error::from_acme(directory, "setting up HTTPS", e)),
    }
}

/// Loads the account for the inventory's CA, or registers one and stores it.
pub async fn load_or_create(inv: &Inventory, state: &Path) -> Result<Account, Error> {
    let directory = &inv.acme.directory;
    let path = account_path(state, directory);
    let file_err = |detail: String| Error::AccountFile {
        path: path.display().to_string(),
        detail,
    };
    if path.exists() {
        let text = fs::read_to_string(&path).map_err(|e| file_err(e.to_string()))?;
        let stored: Stored = serde_json::from_str(&text)
            .map_err(|_| file_err("not a certorch account file".into()))?;
        return builder(inv)?
            .from_credentials(stored.credentials)
            .await
            .map_err(|e| Error::from_acme(directory, "loading the account", e));
    }
    let contact: Vec<&str> = inv.acme.contact.iter().map(String::as_str).collect();
    let (account, credentials) = builder(inv)?
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            directory.clone(),
            None,
        )
        .await
        .map_err(|e| Error::from_acme(directory, "registering an account", e))?;
    let stored = Stored {
        directory: directory.clone(),
        contact: inv.acme.contact.clone(),
        credentials,
    };
    let json = serde_json::to_vec_pretty(&stored).map_err(|e| file_err(e.to_string()))?;
    write_private(&path, &json).map_err(|e| file_err(e.to_string()))?;
    Ok(account)
}

/// Writes `data` to `path` with mode 0600 from creation, through a temporary file and rename.
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    fs::rename(&tmp, path)
}
