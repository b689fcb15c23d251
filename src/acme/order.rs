//! One ACME order per certificate: opened with the inventory's names, answered by dns-01,
//! finalized with the CSR the host made (RFC 8555 §7.4).

use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, CertificateIdentifier, ChallengeStatus, ChallengeType,
    Identifier, NewOrder, Order, OrderStatus,
};

use super::Error;
use crate::inventory::{ChallengeKind, DnsName};
use crate::x509::{self, CertInfo, CheckedCsr};

/// How long to wait for the CA to validate, and then to issue.
const VALIDATION_TIMEOUT: Duration = Duration::from_secs(180);
const ISSUANCE_TIMEOUT: Duration = Duration::from_secs(120);

/// A challenge the CA wants answered.
#[derive(Debug, Clone)]
pub struct Challenge {
    /// The identifier as ordered (`*.example.org` for a wildcard).
    pub identifier: String,
    /// dns-01: base64url(SHA-256(key authorization)), the TXT value (RFC 8555 §8.4).
    pub value: String,
    /// http-01: the token, the file name under /.well-known/acme-challenge/ (RFC 8555 §8.3).
    pub token: String,
    /// http-01: the key authorization, the file's content.
    pub key_authorization: String,
}

fn challenge_type(kind: ChallengeKind) -> ChallengeType {
    match kind {
        ChallengeKind::Dns01 => ChallengeType::Dns01,
        ChallengeKind::Http01 => ChallengeType::Http01,
    }
}

/// An order whose challenges are known but not yet answered.
pub struct OpenOrder {
    pub order: Order,
    pub url: String,
    /// Pending challenges; names whose authorization is already valid have none.
    pub challenges: Vec<Challenge>,
    /// An interrupted run opened it; this run took it up again.
    pub resumed: bool,
}

/// What the CA says about an order an interrupted run opened.
pub enum Resumed {
    /// Still usable: pending (its challenges answered again with the same values), ready,
    /// processing or valid.
    Usable(Box<OpenOrder>),
    /// Valid, but for a key that is no longer staged: its certificate is of no use.
    Spent,
    /// Invalid, expired, or unknown to the CA: a new order replaces it.
    Gone(String),
}

/// Opens an order for `names` and collects the dns-01 values it needs.
pub async fn open(
    account: &Account,
    directory: &str,
    names: &[DnsName],
    replaces: Option<CertificateIdentifier<'static>>,
    profile: Option<&str>,
    kind: ChallengeKind,
) -> Result<OpenOrder, Error> {
    let identifiers: Vec<Identifier> = names
        .iter()
        .map(|n| Identifier::Dns(n.as_str().to_string()))
        .collect();
    let mut new = NewOrder::new(&identifiers);
    if let Some(r) = replaces {
        new = new.replaces(r);
    }
    if let Some(p) = profile {
        new = new.profile(p);
    }
    let mut order = retrying!(directory, "a new order", account.new_order(&new).await)?;
    let url = order.url().to_string();
    let challenges = pending(&mut order, directory, kind).await?;
    Ok(OpenOrder {
        order,
        url,
        challenges,
        resumed: false,
    })
}

/// Takes up the order at `url` again. `key_kept`: the key of the CSR the order was meant for
/// is still staged, so a valid order's certificate is still of use.
pub async fn resume(
    account: &Account,
    directory: &str,
    url: &str,
    kind: ChallengeKind,
    key_kept: bool,
) -> Result<Resumed, Error> {
    let mut order = match fetch(account, directory, url).await {
        Ok(o) => o,
        // The CA answered that it holds no such order for us (expired, purged, not ours).
        // Any other failure (no answer, a 5xx after the retries) says nothing about the
        // order: the certificate fails this run and the next one asks again.
        Err(e) if e.is_not_found() => return Ok(Resumed::Gone(e.to_string())),
        Err(e) => return Err(e),
    };
    match order.state().status {
        OrderStatus::Invalid => {
            return Ok(Resumed::Gone(format!("order {url} is invalid at the CA")));
        }
        OrderStatus::Valid | OrderStatus::Processing if !key_kept => return Ok(Resumed::Spent),
        _ => {}
    }
    let challenges = pending(&mut order, directory, kind).await?;
    Ok(Resumed::Usable(Box::new(OpenOrder {
        order,
        url: url.to_string(),
        challenges,
        resumed: true,
    })))
}

/// The order at `url`, as the CA has it now (RFC 8555 §7.1.3).
pub async fn fetch(account: &Account, directory: &str, url: &str) -> Result<Order, Error> {
    retrying!(
        directory,
        "fetching an interrupted order",
        account.order(url.to_string()).await
    )
}

/// Fetches each of the order's authorizations not fetched yet. instant-acme keeps those it
/// has, so a retry after a failure asks only for the rest.
async fn fetch_authorizations(order: &mut Order, directory: &str) -> Result<(), Error> {
    retrying!(
        directory,
        "fetching an authorization",
        async {
            let mut authzs = order.authorizations();
            while let Some(authz) = authzs.next().await {
                authz?;
            }
            Ok::<(), instant_acme::Error>(())
        }
        .await
    )
}

/// The order's challenges still to be answered (RFC 8555 §7.5): one per pending authorization.
async fn pending(
    order: &mut Order,
    directory: &str,
    kind: ChallengeKind,
) -> Result<Vec<Challenge>, Error> {
    fetch_authorizations(order, directory).await?;
    let mut challenges = Vec::new();
    let mut authzs = order.authorizations();
    while let Some(authz) = authzs.next().await {
        let mut authz =
            authz.map_err(|e| Error::from_acme(directory, "fetching an authorization", e))?;
        match authz.status {
            AuthorizationStatus::Valid => continue,
            AuthorizationStatus::Pending => {}
            other => {
                return Err(Error::Refused {
                    directory: directory.into(),
                    step: "the order",
                    detail: format!("authorization for {} is {other:?}", authz.identifier()),
                    problem: None,
                    status: None,
                });
            }
        }
        let identifier = authz.identifier().to_string();
        let challenge = authz
            .challenge(challenge_type(kind))
            .ok_or_else(|| Error::Refused {
                directory: directory.into(),
                step: "the order",
                detail: format!(
                    "the CA offers no {} challenge for {identifier}",
                    if kind == ChallengeKind::Http01 {
                        "http-01"
                    } else {
                        "dns-01"
                    }
                ),
                problem: None,
                status: None,
            })?;
        let key_auth = challenge.key_authorization();
        challenges.push(Challenge {
            identifier,
            value: key_auth.dns_value(),
            token: challenge.token.clone(),
            key_authorization: key_auth.as_str().to_string(),
        });
    }
    Ok(challenges)
}

/// Tells the CA the pending challenges of `identifiers` are ready to be checked (a round), and
/// waits until each of their authorizations is valid or invalid.
pub async fn validate(
    order: &mut Order,
    directory: &str,
    kind: ChallengeKind,
    identifiers: &[String],
) -> Result<(), Error> {
    fetch_authorizations(order, directory).await?;
    {
        let mut authzs = order.authorizations();
        while let Some(authz) = authzs.next().await {
            let mut authz =
                authz.map_err(|e| Error::from_acme(directory, "fetching an authorization", e))?;
            if authz.status != AuthorizationStatus::Pending
                || !identifiers.contains(&authz.identifier().to_string())
            {
                continue;
            }
            if let Some(mut challenge) = authz.challenge(challenge_type(kind))
                && challenge.status == ChallengeStatus::Pending
            {
                retrying!(
                    directory,
                    "answering a challenge",
                    challenge.set_ready().await
                )?;
            }
        }
    }
    let started = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(250);
    loop {
        let mut waiting = false;
        let mut failed = Vec::new();
        let mut authzs = order.authorizations();
        while let Some(authz) = authzs.next().await {
            let mut authz =
                authz.map_err(|e| Error::from_acme(directory, "fetching an authorization", e))?;
            if !identifiers.contains(&authz.identifier().to_string()) {
                continue;
            }
            if authz.status == AuthorizationStatus::Pending {
                retrying!(directory, "polling an authorization", authz.refresh().await)?;
            }
            match authz.status {
                AuthorizationStatus::Valid => {}
                AuthorizationStatus::Pending => waiting = true,
                _ => failed.push(authz_error(&authz)),
            }
        }
        if !failed.is_empty() {
            let problem = failed.iter().find_map(|(_, p)| p.clone());
            return Err(Error::Refused {
                directory: directory.into(),
                step: "validating the challenges",
                detail: failed
                    .into_iter()
                    .map(|(d, _)| d)
                    .collect::<Vec<_>>()
                    .join("; "),
                problem,
                status: None,
            });
        }
        if !waiting {
            return Ok(());
        }
        if started.elapsed() > VALIDATION_TIMEOUT {
            return Err(undecided(directory));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 3 / 2).min(Duration::from_secs(3));
    }
}

/// The CA left the challenges pending past [`VALIDATION_TIMEOUT`].
fn undecided(directory: &str) -> Error {
    Error::Unreachable {
        directory: directory.into(),
        step: "validating the challenges",
        detail: format!(
            "the CA did not decide within {}s",
            VALIDATION_TIMEOUT.as_secs()
        ),
    }
}

/// An invalid authorization's reason, and the CA's problem type.
fn authz_error(authz: &instant_acme::AuthorizationHandle<'_>) -> (String, Option<String>) {
    for ch in &authz.challenges {
        if let Some(p) = &ch.error {
            return (
                format!(
                    "{}: {}",
                    authz.identifier(),
                    p.detail.as_deref().unwrap_or("no detail")
                ),
                p.r#type.as_deref().map(|t| {
                    t.trim_start_matches("urn:ietf:params:acme:error:")
                        .to_string()
                }),
            );
        }
    }
    (
        format!(
            "{}: the authorization is {:?}",
            authz.identifier(),
            authz.status
        ),
        None,
    )
}

/// Deactivates the order's pending authorizations (RFC 8555 §7.5.2), so nothing is left
/// pending at the CA when a run gives up on an order. Best effort (transient errors are
/// retried as at every step); returns how many were deactivated.
pub async fn abandon(order: &mut Order) -> usize {
    let directory = order.url().to_string();
    // An authorization that cannot be fetched is skipped below.
    fetch_authorizations(order, &directory)
        .await
        .unwrap_or_default();
    let mut n = 0;
    let mut authzs = order.authorizations();
    while let Some(authz) = authzs.next().await {
        let Ok(mut authz) = authz else { continue };
        if authz.status != AuthorizationStatus::Pending {
            continue;
        }
        let done = retrying!(
            &directory,
            "deactivating an authorization",
            authz.deactivate().await.map(|_| ())
        );
        if done.is_ok() {
            n += 1;
        }
    }
    n
}

/// Waits for validation, finalizes with the host's CSR and downloads the chain; checks that
/// the leaf certifies the host's key and every name.
pub async fn finalize(
    order: &mut Order,
    directory: &str,
    csr: &CheckedCsr,
    names: &[DnsName],
) -> Result<(CertInfo, Vec<Vec<u8>>), Error> {
    let mut status = refresh(order, directory).await?;
    // Validation may still be under way (RFC 8555 §7.1.6: pending until every authorization
    // is valid).
    let started = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(250);
    while status == OrderStatus::Pending {
        if started.elapsed() > VALIDATION_TIMEOUT {
            return Err(undecided(directory));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 3 / 2).min(Duration::from_secs(3));
        status = refresh(order, directory).await?;
    }
    match status {
        OrderStatus::Ready => {
            let mut first = true;
            retrying!(
                directory,
                "finalizing the order",
                async {
                    // A finalization whose answer was lost (a broken connection, a 5xx from a
                    // proxy after the CA took it) may have been taken: a retry asks first, and
                    // finalizes only an order still ready.
                    if !std::mem::take(&mut first)
                        && order.refresh().await?.status != OrderStatus::Ready
                    {
                        return Ok(());
                    }
                    order.finalize_csr(&csr.der).await
                }
                .await
            )?;
        }
        OrderStatus::Processing | OrderStatus::Valid => {}
        _ => {
            return Err(Error::Refused {
                directory: directory.into(),
                step: "validating the challenges",
                detail: challenge_errors(order).await,
                problem: None,
                status: None,
            });
        }
    }
    // Issuance (§7.4): processing until the certificate is ready.
    let started = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(250);
    loop {
        match order.state().status {
            OrderStatus::Valid => break,
            OrderStatus::Invalid => {
                return Err(Error::Refused {
                    directory: directory.into(),
                    step: "issuing the certificate",
                    detail: order
                        .state()
                        .error
                        .as_ref()
                        .and_then(|p| p.detail.clone())
                        .unwrap_or_else(|| "the order became invalid".into()),
                    problem: None,
                    status: None,
                });
            }
            _ if started.elapsed() > ISSUANCE_TIMEOUT => {
                return Err(Error::Unreachable {
                    directory: directory.into(),
                    step: "issuing the certificate",
                    detail: format!(
                        "the CA did not issue within {}s",
                        ISSUANCE_TIMEOUT.as_secs()
                    ),
                });
            }
            _ => {
                tokio::time::sleep(delay).await;
                delay = (delay * 3 / 2).min(Duration::from_secs(3));
                refresh(order, directory).await?;
            }
        }
    }
    let pem = retrying!(
        directory,
        "downloading the certificate",
        order.certificate().await
    )?
    .ok_or_else(|| Error::Chain("the CA returned no certificate".into()))?;
    let chain = x509::pem_certificates(pem.as_bytes()).map_err(Error::Chain)?;
    let leaf_der = chain
        .first()
        .ok_or_else(|| Error::Chain("the CA returned no certificate".into()))?;
    let leaf = x509::cert_info(leaf_der).map_err(Error::Chain)?;
    if leaf.spki != csr.spki {
        return Err(Error::Chain(
            "the issued certificate is not for the host's key".into(),
        ));
    }
    let missing: Vec<&str> = names
        .iter()
        .map(DnsName::as_str)
        .filter(|n| !leaf.names.contains(*n))
        .collect();
    if !missing.is_empty() {
        return Err(Error::Chain(format!(
            "the issued certificate lacks {}",
            missing.join(", ")
        )));
    }
    Ok((leaf, chain))
}

/// Asks the CA for the order's status now.
async fn refresh(order: &mut Order, directory: &str) -> Result<OrderStatus, Error> {
    retrying!(
        directory,
        "checking the order",
        order.refresh().await.map(|s| s.status)
    )
}

/// The CA's reasons for failed challenges, one per identifier.
async fn challenge_errors(order: &mut Order) -> String {
    let mut reasons = Vec::new();
    let mut authzs = order.authorizations();
    while let Some(Ok(authz)) = authzs.next().await {
        for ch in &authz.challenges {
            if let Some(p) = &ch.error {
                reasons.push(format!(
                    "{}: {}",
                    authz.identifier(),
                    p.detail.as_deref().unwrap_or("no detail")
                ));
            }
        }
    }
    if reasons.is_empty() {
        "the order became invalid".into()
    } else {
        reasons.join("; ")
    }
}
