//! The `route53` publisher: TXT records in a Route 53 hosted zone through its REST API
//! (`2013-04-01`), signed with SigV4.
//!
//! Route 53 holds one RRset per name and type and can only replace it whole, so each publish or
//! withdraw first reads the TXT RRset at every name of the batch (`ListResourceRecordSets`
//! starting at that name), merges (our values added to, or taken from, whatever others put
//! there), and writes every name's new set in one `ChangeResourceRecordSets` batch. A name's new
//! set is written as `DELETE` of the exact set just read plus `CREATE` of the new one, in one
//! batch: Route 53 applies a batch as a transaction and refuses a `DELETE` whose values are not
//! the current ones, so a value another writer added between our read and our write makes the
//! batch fail (and certorch read and merge again) instead of being silently replaced, which an
//! `UPSERT` of the merged set would do. A name left with no value is deleted with its exact
//! current set. Then certorch waits until Route 53 reports the change `INSYNC` (`GetChange`);
//! that every authoritative server serves it is what the propagation wait checks afterwards.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use serde_saphyr::Location;

use super::{BoxFuture, Publisher};
use crate::dns::Error;
use crate::dns::txt::TxtSet;
use crate::inventory::SecretSource;
use crate::inventory::raw::RawRoute53;
use crate::problem::{Kind, Plain};
use crate::secret::Secret;

/// Route 53's one global endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://route53.amazonaws.com";
/// The region Route 53 requests are signed for (the service is global; AWS signs it here).
pub const DEFAULT_REGION: &str = "us-east-1";
/// The service name in the SigV4 credential scope.
const SERVICE: &str = "route53";
const XMLNS: &str = "https://route53.amazonaws.com/doc/2013-04-01/";
/// One request: connect, send, whole answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long Route 53 may take to report a change INSYNC; AWS says changes usually propagate to
/// all its servers within 60 seconds.
const INSYNC_TIMEOUT: Duration = Duration::from_secs(180);
const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// Read-merge-write rounds when another writer changed a name between our read and our write.
const ATTEMPTS: usize = 3;
/// Retries of one request that Route 53 throttled (5 requests per second per account).
const THROTTLE_RETRIES: u32 = 5;
/// Route 53's limits per `ChangeResourceRecordSets` request: `ResourceRecord` elements, and
/// characters in all their values.
const MAX_RECORDS_PER_BATCH: usize = 1000;
const MAX_CHARS_PER_BATCH: usize = 32_000;

/// What kind of failure a Route 53 call met, for the error's kind and hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No answer: connection refused, TLS failure, timeout.
    NoAnswer,
    /// Route 53 answered with an error status and, usually, an AWS error code.
    Api { status: u16, code: Option<String> },
    /// The change was accepted but not reported INSYNC in time.
    NotInSync,
    /// Certorch could not sign, encode or read a request or answer.
    Local,
}

/// The validated `dns.route53` block.
#[derive(Debug, Clone)]
pub struct Config {
    /// The hosted zone of the signing zone, `Z…` (without `/hostedzone/`).
    pub hosted_zone_id: String,
    /// `https://route53.amazonaws.com`, or a test server's URL; no trailing slash.
    pub endpoint: String,
    pub region: String,
    pub credentials: CredentialSource,
}

/// Where the AWS access key pair comes from; never the inventory itself or the command line.
#[derive(Debug, Clone)]
pub enum CredentialSource {
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and, when set, `AWS_SESSION_TOKEN`.
    Standard,
    /// The access key id from an environment variable, the secret from a file or another.
    Named {
        access_key_id_env: String,
        secret: SecretSource,
    },
}

/// Validates `dns.route53`; relative paths are resolved by `resolve`.
pub fn config(
    raw: serde_saphyr::Spanned<RawRoute53>,
    resolve: impl Fn(PathBuf) -> PathBuf,
) -> Result<Config, (Location, String)> {
    let at = raw.referenced;
    let raw = raw.value;
    let id = raw.hosted_zone_id.value.trim();
    let id = id.strip_prefix("/hostedzone/").unwrap_or(id);
    if id.is_empty()
        || id.len() > 32
        || !id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return Err((
            raw.hosted_zone_id.referenced,
            format!(
                "`{}` is not a Route 53 hosted zone id: write the zone's id, like Z0123456789ABCDEFGHIJ (`aws route53 list-hosted-zones-by-name` shows it)",
                raw.hosted_zone_id.value
            ),
        ));
    }
    let endpoint = match raw.endpoint {
        None => DEFAULT_ENDPOINT.to_string(),
        Some(e) => {
            let url = e.value.trim_end_matches('/').to_string();
            if !endpoint_allowed(&url) {
                return Err((
                    e.referenced,
                    format!(
                        "`{}` is not a Route 53 endpoint: write an https:// URL without a path (http:// only for a test server on a loopback address)",
                        e.value
                    ),
                ));
            }
            url
        }
    };
    let region = match raw.region {
        None => DEFAULT_REGION.to_string(),
        Some(r) => {
            if r.value.is_empty()
                || !r
                    .value
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err((
                    r.referenced,
                    format!(
                        "`{}` is not an AWS region: write one like us-east-1 (Route 53 itself is signed for us-east-1)",
                        r.value
                    ),
                ));
            }
            r.value
        }
    };
    let credentials = match (
        raw.access_key_id_env,
        raw.secret_access_key_file,
        raw.secret_access_key_env,
    ) {
        (None, None, None) => CredentialSource::Standard,
        (Some(id), Some(f), None) => CredentialSource::Named {
            access_key_id_env: id,
            secret: SecretSource::File(resolve(f)),
        },
        (Some(id), None, Some(e)) => CredentialSource::Named {
            access_key_id_env: id,
            secret: SecretSource::Env(e),
        },
        _ => {
            return Err((
                at,
                "give access_key_id_env with exactly one of secret_access_key_file or secret_access_key_env, or none of the three to use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".to_string(),
            ));
        }
    };
    Ok(Config {
        hosted_zone_id: id.to_string(),
        endpoint,
        region,
        credentials,
    })
}

/// https:// anywhere; http:// only on loopback, where a test server (moto) listens.
fn endpoint_allowed(url: &str) -> bool {
    let Ok(uri) = url.parse::<hyper::Uri>() else {
        return false;
    };
    if uri.path() != "/" && !uri.path().is_empty() || uri.query().is_some() {
        return false;
    }
    let Some(host) = uri.host() else {
        return false;
    };
    match uri.scheme_str() {
        Some("https") => true,
        Some("http") => {
            host == "localhost"
                || host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        _ => false,
    }
}

/// An AWS access key pair (and session token), read once when the publisher is built.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: Secret<String>,
    pub session_token: Option<Secret<String>>,
}

/// Reads the credentials `source` names.
pub fn credentials(source: &CredentialSource) -> Result<Credentials, Plain> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let unset = |name: &str| {
        Plain::new(
            Kind::DnsConfig,
            format!("route53: the variable {name} is not set"),
            format!(
                "export {name} before running certorch (cron: set it in the crontab or a wrapper), or name other variables or a file in dns.route53 (certorch-inventory(5))"
            ),
        )
    };
    match source {
        CredentialSource::Standard => {
            let id = var("AWS_ACCESS_KEY_ID").ok_or_else(|| unset("AWS_ACCESS_KEY_ID"))?;
            let secret =
                var("AWS_SECRET_ACCESS_KEY").ok_or_else(|| unset("AWS_SECRET_ACCESS_KEY"))?;
            Ok(Credentials {
                access_key_id: id.trim().to_string(),
                secret_access_key: Secret::new(secret.trim().to_string()),
                session_token: var("AWS_SESSION_TOKEN").map(|t| Secret::new(t.trim().to_string())),
            })
        }
        CredentialSource::Named {
            access_key_id_env,
            secret,
        } => {
            let id = var(access_key_id_env).ok_or_else(|| unset(access_key_id_env))?;
            let secret = match secret {
                SecretSource::Env(name) => var(name).ok_or_else(|| unset(name))?,
                SecretSource::File(path) => {
                    let text = crate::small_file::read(path).map_err(|e| {
                        Plain::new(
                            Kind::DnsConfig,
                            format!(
                                "route53: cannot read the secret access key file {}: {e}",
                                path.display()
                            ),
                            "check dns.route53.secret_access_key_file: a file readable by certorch holding the secret access key alone",
                        )
                    })?;
                    if text.trim().is_empty() || text.trim().contains(char::is_whitespace) {
                        return Err(Plain::new(
                            Kind::DnsConfig,
                            format!(
                                "route53: {} does not hold a secret access key alone",
                                path.display()
                            ),
                            "write only the secret access key into the file, on one line",
                        ));
                    }
                    text
                }
            };
            Ok(Credentials {
                access_key_id: id.trim().to_string(),
                secret_access_key: Secret::new(secret.trim().to_string()),
                session_token: None,
            })
        }
    }
}

/// The SigV4 headers (`x-amz-date`, `authorization`, and `x-amz-security-token` with a session
/// token) for a request, computed by the `aws-sigv4` crate; the host is taken from `url`.
pub fn sign(
    method: &str,
    url: &str,
    body: &[u8],
    creds: &Credentials,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<Vec<(&'static str, String)>, String> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings};
    let identity = aws_credential_types::Credentials::new(
        &creds.access_key_id,
        creds.secret_access_key.expose(),
        creds.session_token.as_ref().map(|t| t.expose().clone()),
        None,
        "certorch-inventory",
    )
    .into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let request = SignableRequest::new(method, url, std::iter::empty(), SignableBody::Bytes(body))
        .map_err(|e| e.to_string())?;
    let (instructions, _signature) = aws_sigv4::http_request::sign(request, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    let (headers, _params) = instructions.into_parts();
    Ok(headers
        .into_iter()
        .map(|h| (h.name(), h.value().to_string()))
        .collect())
}

/// A TXT value as Route 53 writes it: quoted character-strings of at most 255 bytes, `"` and
/// `\` escaped.
pub fn quote(value: &str) -> String {
    let mut out = String::new();
    let mut len = 0;
    out.push('"');
    for c in value.chars() {
        if len + c.len_utf8() > 255 {
            out.push_str("\" \"");
            len = 0;
        }
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
        len += c.len_utf8();
    }
    out.push('"');
    out
}

/// The text of a TXT value as Route 53 lists it (its character-strings joined): quoted strings
/// with `\"`, `\\` and `\DDD` (octal) escapes, or bare words.
pub fn unquote(presented: &str) -> String {
    let mut out: Vec<u8> = Vec::new();
    let b = presented.as_bytes();
    let mut i = 0;
    let mut quoted = false;
    while i < b.len() {
        match b[i] {
            b'"' => quoted = !quoted,
            b' ' | b'\t' if !quoted => {}
            b'\\' if i + 1 < b.len() => {
                if i + 3 < b.len() && b[i + 1..i + 4].iter().all(|d| (b'0'..=b'7').contains(d)) {
                    let n = u32::from(b[i + 1] - b'0') * 64
                        + u32::from(b[i + 2] - b'0') * 8
                        + u32::from(b[i + 3] - b'0');
                    out.push(n as u8);
                    i += 3;
                } else {
                    out.push(b[i + 1]);
                    i += 1;
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A TXT RRset: its name, TTL and values as Route 53 writes them (quoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSet {
    pub name: String,
    pub ttl: u32,
    pub values: Vec<String>,
}

/// One element of a change batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Create(RecordSet),
    Delete(RecordSet),
}

impl Change {
    fn set(&self) -> &RecordSet {
        match self {
            Change::Create(s) | Change::Delete(s) => s,
        }
    }
}

/// A name as certorch compares it: lower case, no trailing dot.
fn normal(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The changes that make the TXT RRset at each name of `ours` hold what `current` holds plus
/// (`add`) or minus (`!add`) our values, leaving every other value as Route 53 has it. Names
/// already right get no change. Each name's changes are a group that must go in one batch.
///
/// Added values are written with `ttl`; a set that only loses values keeps its TTL.
pub fn merge(
    current: &BTreeMap<String, Option<RecordSet>>,
    ours: &BTreeMap<String, BTreeSet<String>>,
    ttl: u32,
    add: bool,
) -> Vec<Vec<Change>> {
    let mut groups = Vec::new();
    for (name, values) in ours {
        let cur = current.get(name).and_then(|c| c.as_ref());
        let have: Vec<(String, String)> = cur
            .map(|c| c.values.iter().map(|v| (v.clone(), unquote(v))).collect())
            .unwrap_or_default();
        let next = if add {
            let missing: Vec<&String> = values
                .iter()
                .filter(|v| !have.iter().any(|(_, text)| text == *v))
                .collect();
            if missing.is_empty() {
                continue;
            }
            let mut next: Vec<String> = have.iter().map(|(raw, _)| raw.clone()).collect();
            next.extend(missing.into_iter().map(|v| quote(v)));
            RecordSet {
                name: name.clone(),
                ttl,
                values: next,
            }
        } else {
            let keep: Vec<String> = have
                .iter()
                .filter(|(_, text)| !values.contains(text))
                .map(|(raw, _)| raw.clone())
                .collect();
            if keep.len() == have.len() {
                continue;
            }
            RecordSet {
                name: name.clone(),
                ttl: cur.map_or(ttl, |c| c.ttl),
                values: keep,
            }
        };
        let mut group = Vec::new();
        if let Some(c) = cur {
            group.push(Change::Delete(c.clone()));
        }
        if !next.values.is_empty() {
            group.push(Change::Create(next));
        }
        groups.push(group);
    }
    groups
}

/// Packs groups of changes into batches within Route 53's per-request limits, never splitting
/// a group (its DELETE and CREATE must be one transaction).
pub fn batches(groups: Vec<Vec<Change>>) -> Vec<Vec<Change>> {
    let mut out: Vec<Vec<Change>> = Vec::new();
    let (mut records, mut chars) = (0, 0);
    for group in groups {
        let r: usize = group.iter().map(|c| c.set().values.len()).sum();
        let ch: usize = group
            .iter()
            .flat_map(|c| c.set().values.iter())
            .map(String::len)
            .sum();
        if out.is_empty() || records + r > MAX_RECORDS_PER_BATCH || chars + ch > MAX_CHARS_PER_BATCH
        {
            out.push(Vec::new());
            records = 0;
            chars = 0;
        }
        records += r;
        chars += ch;
        out.last_mut().expect("pushed above").extend(group);
    }
    out
}

#[derive(Serialize)]
#[serde(rename = "ChangeResourceRecordSetsRequest")]
struct ChangeRequestXml<'a> {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    #[serde(rename = "ChangeBatch")]
    batch: ChangeBatchXml<'a>,
}

#[derive(Serialize)]
struct ChangeBatchXml<'a> {
    #[serde(rename = "Comment")]
    comment: &'a str,
    #[serde(rename = "Changes")]
    changes: ChangesXml<'a>,
}

#[derive(Serialize)]
struct ChangesXml<'a> {
    #[serde(rename = "Change")]
    change: Vec<ChangeXml<'a>>,
}

#[derive(Serialize)]
struct ChangeXml<'a> {
    #[serde(rename = "Action")]
    action: &'static str,
    #[serde(rename = "ResourceRecordSet")]
    set: SetXml<'a>,
}

#[derive(Serialize, Deserialize)]
struct SetXml<'a> {
    #[serde(rename = "Name")]
    name: &'a str,
    #[serde(rename = "Type")]
    kind: &'static str,
    #[serde(rename = "TTL")]
    ttl: u32,
    #[serde(rename = "ResourceRecords")]
    records: RecordsXml<'a>,
}

#[derive(Serialize, Deserialize)]
struct RecordsXml<'a> {
    #[serde(rename = "ResourceRecord", borrow)]
    record: Vec<RecordXml<'a>>,
}

#[derive(Serialize, Deserialize)]
struct RecordXml<'a> {
    #[serde(rename = "Value")]
    value: &'a str,
}

/// The `ChangeResourceRecordSets` request body for one batch.
pub fn change_request(changes: &[Change], comment: &str) -> Result<String, String> {
    let doc = ChangeRequestXml {
        xmlns: XMLNS,
        batch: ChangeBatchXml {
            comment,
            changes: ChangesXml {
                change: changes
                    .iter()
                    .map(|c| ChangeXml {
                        action: match c {
                            Change::Create(_) => "CREATE",
                            Change::Delete(_) => "DELETE",
                        },
                        set: SetXml {
                            // Without the trailing dot: Route 53 takes names as absolute either
                            // way, and moto matches a DELETE to its CREATE by the name as sent.
                            name: c.set().name.trim_end_matches('.'),
                            kind: "TXT",
                            ttl: c.set().ttl,
                            records: RecordsXml {
                                record: c
                                    .set()
                                    .values
                                    .iter()
                                    .map(|v| RecordXml { value: v })
                                    .collect(),
                            },
                        },
                    })
                    .collect(),
            },
        },
    };
    let body = quick_xml::se::to_string(&doc).map_err(|e| e.to_string())?;
    Ok(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{body}"
    ))
}

#[derive(Deserialize)]
struct ListResponse {
    #[serde(rename = "ResourceRecordSets")]
    sets: ListedSets,
}

#[derive(Deserialize)]
struct ListedSets {
    #[serde(rename = "ResourceRecordSet", default)]
    set: Vec<ListedSet>,
}

#[derive(Deserialize)]
struct ListedSet {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "TTL")]
    ttl: Option<u32>,
    #[serde(rename = "SetIdentifier")]
    set_identifier: Option<String>,
    #[serde(rename = "ResourceRecords")]
    records: Option<ListedRecords>,
}

#[derive(Deserialize)]
struct ListedRecords {
    #[serde(rename = "ResourceRecord", default)]
    record: Vec<ListedRecord>,
}

#[derive(Deserialize)]
struct ListedRecord {
    #[serde(rename = "Value")]
    value: String,
}

/// The TXT RRset at `name` in a `ListResourceRecordSets` answer that started at that name, or
/// `None` when the first set listed is another name's or type's.
pub fn listed_txt(xml: &str, name: &str) -> Result<Option<RecordSet>, String> {
    let doc: ListResponse = quick_xml::de::from_str(xml).map_err(|e| e.to_string())?;
    let Some(first) = doc.sets.set.into_iter().next() else {
        return Ok(None);
    };
    if normal(&first.name) != normal(name) || first.kind != "TXT" {
        return Ok(None);
    }
    if first.set_identifier.is_some() {
        return Err(format!(
            "the TXT records at {name} use a routing policy (SetIdentifier), which certorch does not manage"
        ));
    }
    Ok(Some(RecordSet {
        name: name.to_string(),
        ttl: first.ttl.unwrap_or(0),
        values: first
            .records
            .map(|r| r.record.into_iter().map(|r| r.value).collect())
            .unwrap_or_default(),
    }))
}

#[derive(Deserialize)]
struct ChangeResponse {
    #[serde(rename = "ChangeInfo")]
    info: ChangeInfo,
}

/// A change's id and status (`PENDING` or `INSYNC`).
#[derive(Debug, Deserialize)]
pub struct ChangeInfo {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Status")]
    pub status: String,
}

/// The `ChangeInfo` of a `ChangeResourceRecordSets` or `GetChange` answer.
pub fn change_info(xml: &str) -> Result<ChangeInfo, String> {
    quick_xml::de::from_str::<ChangeResponse>(xml)
        .map(|r| r.info)
        .map_err(|e| e.to_string())
}

/// An error answer's code and message(s): `<ErrorResponse><Error><Code>…<Message>…`, or
/// `<InvalidChangeBatch><Messages><Message>…` (whose root names the code).
pub fn api_error(xml: &str) -> (Option<String>, String) {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let (mut root, mut code, mut messages) = (None, None, Vec::new());
    let mut text = String::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                if root.is_none() {
                    root = Some(AsRef::<str>::as_ref(&e.local_name()).to_string());
                }
                text.clear();
            }
            Ok(Event::Text(t)) => text.push_str(&t.xml10_content()),
            Ok(Event::GeneralRef(r)) => match r.resolve_char_ref() {
                Ok(Some(c)) => text.push(c),
                _ => {
                    let name = r.xml10_content();
                    text.push_str(
                        quick_xml::escape::resolve_predefined_entity(&name).unwrap_or(""),
                    );
                }
            },
            Ok(Event::End(e)) => {
                let t = text.trim();
                match AsRef::<str>::as_ref(&e.local_name()) {
                    "Code" if !t.is_empty() => code = Some(t.to_string()),
                    "Message" if !t.is_empty() => messages.push(t.to_string()),
                    _ => {}
                }
                text.clear();
            }
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    if code.is_none() && root.as_deref().is_some_and(|r| r != "ErrorResponse") {
        code = root;
    }
    (code, messages.join("; "))
}

/// Why [`until_insync`] stopped waiting.
#[derive(Debug)]
pub enum Waited<E> {
    /// Asking for the status failed.
    Failed(E),
    /// Not INSYNC in time; says what the last status was.
    Timeout(String),
}

/// Asks `status` until it answers `INSYNC`, at most for `timeout`, and returns how many times it
/// asked. It asks at least once, at once, whatever the submission answered: Route 53 answers
/// `PENDING` there, and one request confirms a test server's `INSYNC` as well.
pub async fn until_insync<F, Fut, E>(
    mut status: F,
    timeout: Duration,
    interval: Duration,
) -> Result<usize, Waited<E>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<String, E>>,
{
    let start = Instant::now();
    let mut polls = 1;
    let mut last = status().await.map_err(Waited::Failed)?;
    while last != "INSYNC" {
        if start.elapsed() >= timeout {
            return Err(Waited::Timeout(format!(
                "still {last} after {}s (Route 53 reports INSYNC once all of its servers have the change)",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(interval).await;
        last = status().await.map_err(Waited::Failed)?;
        polls += 1;
    }
    Ok(polls)
}

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Publishes into one Route 53 hosted zone.
pub struct Route53 {
    cfg: Config,
    creds: Credentials,
    client: HttpClient,
}

impl Route53 {
    /// A publisher for `cfg`, reading its credentials now.
    pub fn new(cfg: Config) -> Result<Self, Plain> {
        let creds = credentials(&cfg.credentials)?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| {
                Plain::new(
                    Kind::DnsConfig,
                    format!("route53: cannot load the system's root certificates: {e}"),
                    "install the ca-certificates package",
                )
            })?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Route53 {
            cfg,
            creds,
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// What describes this publisher in the state and in messages.
    pub fn describe(&self) -> String {
        format!("route53:{}", self.cfg.hosted_zone_id)
    }

    fn err(&self, action: &str, failure: Failure, detail: String) -> Error {
        Error::Route53 {
            zone_id: self.cfg.hosted_zone_id.clone(),
            action: action.to_string(),
            failure,
            detail,
        }
    }

    /// One signed request; a throttled one is retried after a growing pause.
    async fn call(
        &self,
        action: &str,
        method: hyper::Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<String, Error> {
        let mut pause = Duration::from_millis(500);
        let mut tries = 0;
        loop {
            match self
                .call_once(action, method.clone(), path, body.clone())
                .await
            {
                Err(Error::Route53 {
                    failure: Failure::Api { status, code },
                    ..
                }) if tries < THROTTLE_RETRIES
                    && (status == 429
                        || matches!(
                            code.as_deref(),
                            Some("Throttling" | "ThrottlingException" | "PriorRequestNotComplete")
                        )) =>
                {
                    tries += 1;
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                other => return other,
            }
        }
    }

    async fn call_once(
        &self,
        action: &str,
        method: hyper::Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<String, Error> {
        let url = format!("{}{path}", self.cfg.endpoint);
        let headers = sign(
            method.as_str(),
            &url,
            &body,
            &self.creds,
            &self.cfg.region,
            SERVICE,
            SystemTime::now(),
        )
        .map_err(|e| {
            self.err(
                action,
                Failure::Local,
                format!("cannot sign the request: {e}"),
            )
        })?;
        let mut req = hyper::Request::builder().method(method).uri(&url);
        for (name, value) in headers {
            req = req.header(name, value);
        }
        if !body.is_empty() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/xml");
        }
        let req = req.body(Full::new(Bytes::from(body))).map_err(|e| {
            self.err(
                action,
                Failure::Local,
                format!("cannot build the request: {e}"),
            )
        })?;
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, async {
            let resp = self.client.request(req).await.map_err(|e| {
                use std::error::Error as _;
                let cause = e.source().map(|s| format!(": {s}")).unwrap_or_default();
                format!("cannot reach {}: {e}{cause}", self.cfg.endpoint)
            })?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("reading the answer: {e}"))?
                .to_bytes();
            Ok::<_, String>((status, body))
        })
        .await
        .map_err(|_| {
            self.err(
                action,
                Failure::NoAnswer,
                format!(
                    "{} did not answer within {}s",
                    self.cfg.endpoint,
                    REQUEST_TIMEOUT.as_secs()
                ),
            )
        })?
        .map_err(|e| self.err(action, Failure::NoAnswer, e))?;
        let (status, body) = answer;
        let text = String::from_utf8_lossy(&body).into_owned();
        if status.is_success() {
            return Ok(text);
        }
        let (code, message) = api_error(&text);
        let detail = match (&code, message.is_empty()) {
            (Some(c), false) => format!("HTTP {} {c}: {message}", status.as_u16()),
            (Some(c), true) => format!("HTTP {} {c}", status.as_u16()),
            (None, _) => format!(
                "HTTP {} {}",
                status.as_u16(),
                text.chars().take(200).collect::<String>()
            ),
        };
        Err(self.err(
            action,
            Failure::Api {
                status: status.as_u16(),
                code,
            },
            detail,
        ))
    }

    /// The TXT RRset at `name` now.
    async fn current(&self, name: &str) -> Result<Option<RecordSet>, Error> {
        let path = format!(
            "/2013-04-01/hostedzone/{}/rrset?maxitems=1&name={}&type=TXT",
            self.cfg.hosted_zone_id,
            query_escape(name.trim_end_matches('.'))
        );
        let xml = self
            .call(
                "ListResourceRecordSets",
                hyper::Method::GET,
                &path,
                Vec::new(),
            )
            .await?;
        listed_txt(&xml, name).map_err(|e| self.err("ListResourceRecordSets", Failure::Local, e))
    }

    /// Sends one batch; returns its change.
    async fn change(&self, batch: &[Change], comment: &str) -> Result<ChangeInfo, Error> {
        let action = "ChangeResourceRecordSets";
        let body = change_request(batch, comment).map_err(|e| {
            self.err(
                action,
                Failure::Local,
                format!("cannot write the request: {e}"),
            )
        })?;
        let path = format!("/2013-04-01/hostedzone/{}/rrset", self.cfg.hosted_zone_id);
        let xml = self
            .call(action, hyper::Method::POST, &path, body.into_bytes())
            .await?;
        change_info(&xml)
            .map_err(|e| self.err(action, Failure::Local, format!("unexpected answer: {e}")))
    }

    /// The status of change `id` (`/change/C…` or `C…`).
    async fn change_status(&self, id: &str) -> Result<String, Error> {
        let id = id.rsplit('/').next().unwrap_or(id);
        let xml = self
            .call(
                "GetChange",
                hyper::Method::GET,
                &format!("/2013-04-01/change/{id}"),
                Vec::new(),
            )
            .await?;
        change_info(&xml).map(|i| i.status).map_err(|e| {
            self.err(
                "GetChange",
                Failure::Local,
                format!("unexpected answer: {e}"),
            )
        })
    }

    async fn apply(&self, set: &TxtSet, add: bool) -> Result<(), Error> {
        let mut ours: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for r in set.iter() {
            ours.entry(normal(&r.name.to_ascii()))
                .or_default()
                .insert(r.value.clone());
        }
        let comment = if add {
            "certorch: publish dns-01 records"
        } else {
            "certorch: withdraw dns-01 records"
        };
        let mut changes = Vec::new();
        let mut attempt = 0;
        'merge: loop {
            attempt += 1;
            let mut current = BTreeMap::new();
            for name in ours.keys() {
                current.insert(name.clone(), self.current(name).await?);
            }
            for batch in batches(merge(&current, &ours, set.ttl, add)) {
                match self.change(&batch, comment).await {
                    Ok(info) => changes.push(info),
                    // Another writer changed a name since we read it: read and merge again.
                    Err(Error::Route53 {
                        failure: Failure::Api { code: Some(c), .. },
                        ..
                    }) if attempt < ATTEMPTS && c == "InvalidChangeBatch" => {
                        continue 'merge;
                    }
                    Err(e) => return Err(e),
                }
            }
            break;
        }
        for info in changes {
            until_insync(
                || self.change_status(&info.id),
                INSYNC_TIMEOUT,
                POLL_INTERVAL,
            )
            .await
            .map_err(|w| match w {
                Waited::Failed(e) => e,
                Waited::Timeout(m) => self.err(
                    "GetChange",
                    Failure::NotInSync,
                    format!("change {}: {m}", info.id),
                ),
            })?;
        }
        Ok(())
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters stay).
fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Publisher for Route53 {
    fn publish<'a>(&'a self, set: &'a TxtSet) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.apply(set, true))
    }

    fn withdraw<'a>(&'a self, set: &'a TxtSet) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.apply(set, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(name: &str, ttl: u32, values: &[&str]) -> RecordSet {
        RecordSet {
            name: name.into(),
            ttl,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    fn ours(pairs: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
        pairs
            .iter()
            .map(|(n, vs)| (n.to_string(), vs.iter().map(|v| v.to_string()).collect()))
            .collect()
    }

    #[test]
    fn values_are_quoted_and_read_back() {
        assert_eq!(quote("abc-_XYZ"), "\"abc-_XYZ\"");
        assert_eq!(quote(r#"a "b" \c"#), r#""a \"b\" \\c""#);
        let long = "x".repeat(300);
        let q = quote(&long);
        assert_eq!(q, format!("\"{}\" \"{}\"", "x".repeat(255), "x".repeat(45)));
        for v in ["abc", r#"a "b" \c"#, long.as_str(), "certorch probe 42"] {
            assert_eq!(unquote(&quote(v)), v);
        }
        // Route 53 lists non-printable bytes as \DDD (octal) and may list bare words.
        assert_eq!(unquote(r#""a\053b""#), "a+b");
        assert_eq!(unquote("bare"), "bare");
    }

    #[test]
    fn publish_adds_to_what_others_put_there() {
        let current: BTreeMap<_, _> = [
            ("a.signing.test".to_string(), None),
            (
                "b.signing.test".to_string(),
                Some(set("b.signing.test", 300, &["\"theirs\""])),
            ),
            (
                "c.signing.test".to_string(),
                Some(set("c.signing.test", 60, &["\"v3\""])),
            ),
        ]
        .into();
        let groups = merge(
            &current,
            &ours(&[
                ("a.signing.test", &["v1", "v2"]),
                ("b.signing.test", &["v2"]),
                ("c.signing.test", &["v3"]),
            ]),
            60,
            true,
        );
        assert_eq!(
            groups,
            vec![
                vec![Change::Create(set(
                    "a.signing.test",
                    60,
                    &["\"v1\"", "\"v2\""]
                ))],
                vec![
                    // The exact set read, so a value added since makes the batch fail.
                    Change::Delete(set("b.signing.test", 300, &["\"theirs\""])),
                    Change::Create(set("b.signing.test", 60, &["\"theirs\"", "\"v2\""])),
                ],
                // c already holds v3: no change.
            ]
        );
    }

    #[test]
    fn withdraw_removes_only_ours() {
        let current: BTreeMap<_, _> = [
            (
                "a.signing.test".to_string(),
                Some(set("a.signing.test", 60, &["\"v1\"", "\"v2\""])),
            ),
            (
                "b.signing.test".to_string(),
                Some(set("b.signing.test", 300, &["\"theirs\"", "\"v2\""])),
            ),
            ("c.signing.test".to_string(), None),
            (
                "d.signing.test".to_string(),
                Some(set("d.signing.test", 60, &["\"other\""])),
            ),
        ]
        .into();
        let groups = merge(
            &current,
            &ours(&[
                ("a.signing.test", &["v1", "v2"]),
                ("b.signing.test", &["v2"]),
                ("c.signing.test", &["v3"]),
                ("d.signing.test", &["v4"]),
            ]),
            60,
            false,
        );
        assert_eq!(
            groups,
            vec![
                // Nothing of anyone else's left: delete with the exact current set.
                vec![Change::Delete(set(
                    "a.signing.test",
                    60,
                    &["\"v1\"", "\"v2\""]
                ))],
                // Theirs stays, with its TTL.
                vec![
                    Change::Delete(set("b.signing.test", 300, &["\"theirs\"", "\"v2\""])),
                    Change::Create(set("b.signing.test", 300, &["\"theirs\""])),
                ],
                // c and d do not hold our values: nothing to do, not an error.
            ]
        );
    }

    #[test]
    fn batches_keep_each_names_changes_together() {
        let big = |n: usize| {
            vec![
                Change::Delete(set(&format!("n{n}"), 60, &vec!["\"v\""; 300])),
                Change::Create(set(&format!("n{n}"), 60, &vec!["\"v\""; 301])),
            ]
        };
        let out = batches(vec![big(1), big(2), big(3)]);
        // 601 records a name: one name per batch under the 1000-record limit.
        assert_eq!(out.len(), 3);
        assert!(
            out.iter()
                .all(|b| b.len() == 2 && b[0].set().name == b[1].set().name)
        );
        let small: Vec<Vec<Change>> = (0..10)
            .map(|n| vec![Change::Create(set(&format!("n{n}"), 60, &["\"v\""]))])
            .collect();
        assert_eq!(batches(small).len(), 1);
        // Characters count too: 32,000 per request.
        let wide: Vec<Vec<Change>> = (0..3)
            .map(|n| {
                vec![Change::Create(set(
                    &format!("n{n}"),
                    60,
                    &[&"x".repeat(15_000)],
                ))]
            })
            .collect();
        assert_eq!(batches(wide).len(), 2);
    }

    #[test]
    fn change_request_xml() {
        let xml = change_request(
            &[
                Change::Delete(set("b.signing.test.", 300, &["\"theirs\""])),
                Change::Create(set("b.signing.test.", 60, &["\"theirs\"", "\"a<&>b\""])),
            ],
            "certorch: publish dns-01 records",
        )
        .unwrap();
        assert_eq!(
            xml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <ChangeResourceRecordSetsRequest xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\">\
             <ChangeBatch><Comment>certorch: publish dns-01 records</Comment><Changes>\
             <Change><Action>DELETE</Action><ResourceRecordSet><Name>b.signing.test</Name><Type>TXT</Type><TTL>300</TTL>\
             <ResourceRecords><ResourceRecord><Value>\"theirs\"</Value></ResourceRecord></ResourceRecords></ResourceRecordSet></Change>\
             <Change><Action>CREATE</Action><ResourceRecordSet><Name>b.signing.test</Name><Type>TXT</Type><TTL>60</TTL>\
             <ResourceRecords><ResourceRecord><Value>\"theirs\"</Value></ResourceRecord>\
             <ResourceRecord><Value>\"a&lt;&amp;&gt;b\"</Value></ResourceRecord></ResourceRecords></ResourceRecordSet></Change>\
             </Changes></ChangeBatch></ChangeResourceRecordSetsRequest>"
        );
    }

    /// An answer as AWS documents it for ListResourceRecordSets.
    const LISTED: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListResourceRecordSetsResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">
   <ResourceRecordSets>
      <ResourceRecordSet>
         <Name>www.example.org.acme.example.net.</Name>
         <Type>TXT</Type>
         <TTL>60</TTL>
         <ResourceRecords>
            <ResourceRecord><Value>"v1"</Value></ResourceRecord>
            <ResourceRecord><Value>"theirs"</Value></ResourceRecord>
         </ResourceRecords>
      </ResourceRecordSet>
   </ResourceRecordSets>
   <IsTruncated>true</IsTruncated>
   <MaxItems>1</MaxItems>
   <NextRecordName>www.example.org.acme.example.net.</NextRecordName>
   <NextRecordType>TXT</NextRecordType>
</ListResourceRecordSetsResponse>"#;

    #[test]
    fn listed_sets_are_read_at_their_name_only() {
        assert_eq!(
            listed_txt(LISTED, "WWW.example.org.acme.example.net").unwrap(),
            Some(set(
                "WWW.example.org.acme.example.net",
                60,
                &["\"v1\"", "\"theirs\""]
            ))
        );
        // The listing starts at the next name when ours has no TXT set.
        assert_eq!(listed_txt(LISTED, "a.acme.example.net").unwrap(), None);
        let other_type = LISTED.replace("<Type>TXT</Type>", "<Type>CNAME</Type>");
        assert_eq!(
            listed_txt(&other_type, "www.example.org.acme.example.net").unwrap(),
            None
        );
        let empty = r#"<ListResourceRecordSetsResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><ResourceRecordSets/><IsTruncated>false</IsTruncated><MaxItems>1</MaxItems></ListResourceRecordSetsResponse>"#;
        assert_eq!(listed_txt(empty, "x.acme.example.net").unwrap(), None);
        let weighted = LISTED.replace("<TTL>", "<SetIdentifier>eu</SetIdentifier><TTL>");
        assert!(
            listed_txt(&weighted, "www.example.org.acme.example.net")
                .unwrap_err()
                .contains("routing policy")
        );
    }

    #[test]
    fn error_answers_give_code_and_message() {
        let e = r#"<?xml version="1.0"?>
<ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><Error><Type>Sender</Type><Code>NoSuchHostedZone</Code><Message>No hosted zone found with ID: Z123</Message></Error><RequestId>abc</RequestId></ErrorResponse>"#;
        assert_eq!(
            api_error(e),
            (
                Some("NoSuchHostedZone".into()),
                "No hosted zone found with ID: Z123".into()
            )
        );
        let batch = r#"<?xml version="1.0" encoding="UTF-8"?>
<InvalidChangeBatch xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><Messages><Message>Tried to delete resource record set [name=&apos;a.acme.example.net.&apos;, type=&#39;TXT&#39;] but the values provided do not match the current values</Message></Messages><RequestId>x</RequestId></InvalidChangeBatch>"#;
        let (code, message) = api_error(batch);
        assert_eq!(code.as_deref(), Some("InvalidChangeBatch"));
        assert!(
            message.starts_with(
                "Tried to delete resource record set [name='a.acme.example.net.', type='TXT'] but"
            ),
            "{message}"
        );
        let info = change_info(r#"<?xml version="1.0"?><ChangeResourceRecordSetsResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><ChangeInfo><Id>/change/C2682N5HXP0BZ4</Id><Status>PENDING</Status><SubmittedAt>2017-03-10T01:36:41.958Z</SubmittedAt></ChangeInfo></ChangeResourceRecordSetsResponse>"#).unwrap();
        assert_eq!(
            (info.id.as_str(), info.status.as_str()),
            ("/change/C2682N5HXP0BZ4", "PENDING")
        );
    }

    /// AWS's published SigV4 test suite (aws-signing-test-suite/v4): credentials, time and
    /// requests as published, the Authorization header it expects.
    #[test]
    fn signing_matches_the_aws_test_suite() {
        let creds = |token: Option<&str>| Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into()),
            session_token: token.map(|t| Secret::new(t.to_string())),
        };
        // 2015-08-30T12:36:00Z
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160);
        let header = |headers: &[(&'static str, String)], name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no {name} in {headers:?}"))
        };
        let scope =
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request";
        let cases = [
            // get-vanilla
            (
                "GET",
                "https://example.amazonaws.com/",
                None,
                "host;x-amz-date",
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            ),
            // post-vanilla
            (
                "POST",
                "https://example.amazonaws.com/",
                None,
                "host;x-amz-date",
                "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
            ),
            // get-vanilla-query-order-key-case
            (
                "GET",
                "https://example.amazonaws.com/?Param2=value2&Param1=value1",
                None,
                "host;x-amz-date",
                "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
            ),
            // get-vanilla-with-session-token
            (
                "GET",
                "https://example.amazonaws.com/",
                Some("6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"),
                "host;x-amz-date;x-amz-security-token",
                "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8",
            ),
        ];
        for (method, url, token, signed, signature) in cases {
            let h = sign(
                method,
                url,
                b"",
                &creds(token),
                "us-east-1",
                "service",
                time,
            )
            .unwrap();
            assert_eq!(header(&h, "x-amz-date"), "20150830T123600Z");
            assert_eq!(
                header(&h, "authorization"),
                format!("{scope}, SignedHeaders={signed}, Signature={signature}"),
                "{method} {url}"
            );
            if let Some(t) = token {
                assert_eq!(header(&h, "x-amz-security-token"), t);
            }
        }
    }

    #[tokio::test]
    async fn insync_is_awaited() {
        let answers = std::sync::Mutex::new(vec!["INSYNC", "PENDING", "PENDING"]);
        let polls = until_insync(
            || {
                let next = answers.lock().unwrap().pop().unwrap().to_string();
                async move { Ok::<_, String>(next) }
            },
            Duration::from_secs(60),
            Duration::from_millis(1),
        )
        .await
        .unwrap();
        assert_eq!(polls, 3);
        match until_insync(
            || async { Ok::<_, String>("PENDING".to_string()) },
            Duration::from_millis(20),
            Duration::from_millis(5),
        )
        .await
        {
            Err(Waited::Timeout(m)) => assert!(m.starts_with("still PENDING after 0s"), "{m}"),
            other => panic!("{other:?}"),
        }
        match until_insync(
            || async { Err::<String, _>("HTTP 403 AccessDenied".to_string()) },
            Duration::from_secs(60),
            Duration::from_millis(1),
        )
        .await
        {
            Err(Waited::Failed(e)) => assert_eq!(e, "HTTP 403 AccessDenied"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn endpoints() {
        assert!(endpoint_allowed("https://route53.amazonaws.com"));
        assert!(endpoint_allowed("http://127.0.0.1:5000"));
        assert!(endpoint_allowed("http://[::1]:5000"));
        assert!(endpoint_allowed("http://localhost:5000"));
        assert!(!endpoint_allowed("http://route53.example.net"));
        assert!(!endpoint_allowed(
            "https://route53.amazonaws.com/2013-04-01"
        ));
        assert!(!endpoint_allowed("ftp://127.0.0.1"));
        assert!(!endpoint_allowed("route53.amazonaws.com"));
    }

    /// An inventory whose `dns:` publisher is `block` (YAML lines, indented two spaces).
    fn inventory(block: &str) -> Result<crate::inventory::Inventory, String> {
        let text = format!(
            "acme: {{ directory: letsencrypt-staging }}\ndns:\n  signing_zone: acme.example.net\n{block}hosts: {{}}\n"
        );
        crate::inventory::parse(&text, std::path::Path::new("/etc/certorch/inventory.yaml"))
            .map_err(|e| e.to_string())
    }

    fn route53_config(block: &str) -> Result<Config, String> {
        match inventory(block)?.dns.publisher {
            crate::inventory::model::PublisherConfig::Route53(c) => Ok(c),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn inventory_keys() {
        let c =
            route53_config("  route53: { hosted_zone_id: /hostedzone/Z0123456789ABC }\n").unwrap();
        assert_eq!(c.hosted_zone_id, "Z0123456789ABC");
        assert_eq!(
            (c.endpoint.as_str(), c.region.as_str()),
            (DEFAULT_ENDPOINT, DEFAULT_REGION)
        );
        assert!(matches!(c.credentials, CredentialSource::Standard));
        let c = route53_config(
            "  route53:\n    hosted_zone_id: Z1\n    endpoint: http://127.0.0.1:5000/\n    region: eu-west-1\n    access_key_id_env: R53_ID\n    secret_access_key_file: r53.secret\n",
        )
        .unwrap();
        assert_eq!(
            (c.endpoint.as_str(), c.region.as_str()),
            ("http://127.0.0.1:5000", "eu-west-1")
        );
        match c.credentials {
            CredentialSource::Named {
                access_key_id_env,
                secret: SecretSource::File(p),
            } => {
                assert_eq!(access_key_id_env, "R53_ID");
                assert_eq!(p, std::path::Path::new("/etc/certorch/r53.secret"));
            }
            other => panic!("{other:?}"),
        }
        let cases = [
            (
                "  route53: { hosted_zone_id: z-lower }\n",
                "/etc/certorch/inventory.yaml:4:30: `z-lower` is not a Route 53 hosted zone id",
            ),
            (
                "  route53: { hosted_zone_id: Z1, endpoint: \"http://route53.example.net\" }\n",
                "/etc/certorch/inventory.yaml:4:44: `http://route53.example.net` is not a Route 53 endpoint: write an https:// URL without a path (http:// only for a test server on a loopback address)",
            ),
            (
                "  route53: { hosted_zone_id: Z1, access_key_id_env: ID }\n",
                "/etc/certorch/inventory.yaml:4:12: give access_key_id_env with exactly one of secret_access_key_file or secret_access_key_env",
            ),
            (
                "  route53: { hosted_zone_id: Z1, secret_access_key_env: S }\n",
                "/etc/certorch/inventory.yaml:4:12: give access_key_id_env",
            ),
            (
                "  route53: { hosted_zone_id: Z1, secret: x }\n",
                "unknown field `secret`",
            ),
            (
                "  route53: { hosted_zone_id: Z1 }\n  exec: { command: [/bin/true] }\n",
                "dns has more than one publisher (rfc2136, exec, zonefile, powerdns, route53): keep one",
            ),
        ];
        for (block, want) in cases {
            let err = route53_config(block).unwrap_err();
            assert!(
                err.starts_with(want) || err.contains(want),
                "{block}: {err}"
            );
        }
    }

    #[test]
    fn credentials_come_from_the_named_places_and_are_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "s3cr3t/KEY\n").unwrap();
        // A variable every test process has (setting one would race with other tests' reads).
        let c = credentials(&CredentialSource::Named {
            access_key_id_env: "PATH".into(),
            secret: SecretSource::File(file.clone()),
        })
        .unwrap();
        assert_eq!(c.access_key_id, std::env::var("PATH").unwrap().trim());
        assert_eq!(c.secret_access_key.expose(), "s3cr3t/KEY");
        assert!(!format!("{c:?}").contains("s3cr3t"));
        let e = credentials(&CredentialSource::Named {
            access_key_id_env: "CERTORCH_TEST_R53_UNSET".into(),
            secret: SecretSource::File(file),
        })
        .unwrap_err();
        assert_eq!(
            e.message,
            "route53: the variable CERTORCH_TEST_R53_UNSET is not set"
        );
    }

    /// `moto_server`: from the virtualenv `.ci/run` makes, else from PATH. Missing is a failure,
    /// not a skip: `.ci/run` installs it.
    pub(crate) fn moto_server() -> PathBuf {
        let venv = std::path::Path::new("/opt/certorch-ci/venv/bin/moto_server");
        if venv.exists() {
            return venv.to_path_buf();
        }
        std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .map(|d| d.join("moto_server"))
            .find(|p| p.exists())
            .unwrap_or_else(|| {
                panic!(
                    "moto_server not found (neither /opt/certorch-ci/venv/bin nor PATH): run `INSTALL_ONLY=1 bash .ci/run`, which installs moto[server]"
                )
            })
    }

    /// A moto server on a free loopback port, recording every request; killed by pid on drop.
    struct Moto {
        child: std::process::Child,
        endpoint: String,
        recording: PathBuf,
        _dir: tempfile::TempDir,
    }

    impl Moto {
        fn start() -> Moto {
            let dir = tempfile::tempdir().unwrap();
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let recording = dir.path().join("recording.jsonl");
            let log = std::fs::File::create(dir.path().join("moto.log")).unwrap();
            let child = std::process::Command::new(moto_server())
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env("MOTO_ENABLE_RECORDING", "1")
                .env("MOTO_RECORDER_FILEPATH", &recording)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start moto_server");
            let moto = Moto {
                child,
                endpoint: format!("http://127.0.0.1:{port}"),
                recording,
                _dir: dir,
            };
            let start = Instant::now();
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "moto_server did not listen on 127.0.0.1:{port} within 60s: {}",
                    std::fs::read_to_string(moto._dir.path().join("moto.log")).unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            moto
        }

        /// (method, path, body) of every request recorded so far.
        fn requests(&self) -> Vec<(String, String, String)> {
            use base64::Engine;
            std::fs::read_to_string(&self.recording)
                .unwrap_or_default()
                .lines()
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    let body = v["body"].as_str().unwrap_or("");
                    let body = if v["body_encoded"] == true {
                        String::from_utf8(
                            base64::engine::general_purpose::STANDARD
                                .decode(body)
                                .unwrap(),
                        )
                        .unwrap()
                    } else {
                        body.to_string()
                    };
                    let url = v["url"].as_str().unwrap();
                    let path = url.splitn(4, '/').nth(3).unwrap_or("");
                    (
                        v["method"].as_str().unwrap().to_string(),
                        format!("/{path}"),
                        body,
                    )
                })
                .collect()
        }
    }

    impl Drop for Moto {
        fn drop(&mut self) {
            // Only this child, by its pid; a test that failed must not leave it running.
            if let Err(e) = self.child.kill() {
                eprintln!("killing moto_server {}: {e}", self.child.id());
            }
            if let Err(e) = self.child.wait() {
                eprintln!("reaping moto_server {}: {e}", self.child.id());
            }
        }
    }

    /// A publisher talking to `moto` with throwaway credentials.
    fn publisher(moto: &Moto, zone_id: &str) -> Route53 {
        let cfg = Config {
            hosted_zone_id: zone_id.into(),
            endpoint: moto.endpoint.clone(),
            region: DEFAULT_REGION.into(),
            credentials: CredentialSource::Standard,
        };
        let creds = Credentials {
            access_key_id: "AKIDMOTOTEST".into(),
            secret_access_key: Secret::new("moto-secret".into()),
            session_token: None,
        };
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .unwrap()
            .https_or_http()
            .enable_http1()
            .build();
        Route53 {
            cfg,
            creds,
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// Creates the hosted zone `name` through the API; returns its id.
    async fn create_zone(p: &Route53, name: &str) -> String {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CreateHostedZoneRequest xmlns=\"{XMLNS}\"><Name>{name}</Name><CallerReference>certorch-test-{name}</CallerReference></CreateHostedZoneRequest>"
        );
        let xml = p
            .call(
                "CreateHostedZone",
                hyper::Method::POST,
                "/2013-04-01/hostedzone",
                body.into_bytes(),
            )
            .await
            .unwrap();
        let start = xml.find("<Id>/hostedzone/").expect("zone id") + "<Id>/hostedzone/".len();
        xml[start..start + xml[start..].find('<').unwrap()].to_string()
    }

    fn txt_set(records: &[(&str, &str)]) -> TxtSet {
        let zone = hickory_proto::rr::Name::from_ascii("signing.test.").unwrap();
        let mut set = TxtSet::new(60);
        for (name, value) in records {
            set.insert(crate::dns::txt::TxtRecord {
                zone: zone.clone(),
                name: hickory_proto::rr::Name::from_ascii(name).unwrap(),
                value: value.to_string(),
            });
        }
        set
    }

    /// The TXT values at `name`, as text, and the set's TTL.
    async fn values_at(p: &Route53, name: &str) -> Option<(BTreeSet<String>, u32)> {
        p.current(name)
            .await
            .unwrap()
            .map(|s| (s.values.iter().map(|v| unquote(v)).collect(), s.ttl))
    }

    fn texts(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// The whole publisher against a real Route 53 API implementation (moto in server mode).
    #[tokio::test]
    async fn publishes_and_withdraws_in_one_batch_each_against_moto() {
        let moto = Moto::start();
        let setup = publisher(&moto, "NONE");
        let zone_id = create_zone(&setup, "signing.test.").await;
        let p = publisher(&moto, &zone_id);
        // Someone else's value at a name certorch also publishes at.
        let theirs = change_request(
            &[Change::Create(set(
                "shared.signing.test.",
                300,
                &["\"theirs\""],
            ))],
            "another tool",
        )
        .unwrap();
        let path = format!("/2013-04-01/hostedzone/{zone_id}/rrset");
        p.call(
            "ChangeResourceRecordSets",
            hyper::Method::POST,
            &path,
            theirs.into_bytes(),
        )
        .await
        .unwrap();
        let before = moto.requests().len();

        // Two orders' values at one CNAME target, and one at a name another tool also uses.
        let set = txt_set(&[
            ("many.signing.test.", "value-one"),
            ("many.signing.test.", "value-two"),
            ("shared.signing.test.", "value-three"),
        ]);
        p.publish(&set).await.unwrap();
        let published = moto.requests()[before..].to_vec();
        let posts: Vec<_> = published.iter().filter(|r| r.0 == "POST").collect();
        assert_eq!(
            posts.len(),
            1,
            "one ChangeBatch for the whole publish: {published:?}"
        );
        assert!(
            posts[0]
                .1
                .ends_with(&format!("/hostedzone/{zone_id}/rrset"))
        );
        for v in ["value-one", "value-two", "value-three", "theirs"] {
            assert!(
                posts[0].2.contains(&format!("\"{v}\"")),
                "{v} not in {}",
                posts[0].2
            );
        }
        // INSYNC awaited: the change is asked for after it was sent.
        let post_at = published.iter().position(|r| r.0 == "POST").unwrap();
        assert!(
            published[post_at..]
                .iter()
                .any(|r| r.0 == "GET" && r.1.starts_with("/2013-04-01/change/")),
            "no GetChange after the change: {published:?}"
        );
        assert_eq!(
            values_at(&p, "many.signing.test.").await,
            Some((texts(&["value-one", "value-two"]), 60))
        );
        assert_eq!(
            values_at(&p, "shared.signing.test.").await,
            Some((texts(&["theirs", "value-three"]), 60))
        );

        // Publishing what is there already changes nothing.
        let before = moto.requests().len();
        p.publish(&set).await.unwrap();
        assert!(moto.requests()[before..].iter().all(|r| r.0 == "GET"));

        let before = moto.requests().len();
        p.withdraw(&set).await.unwrap();
        let withdrawn = moto.requests()[before..].to_vec();
        let posts: Vec<_> = withdrawn.iter().filter(|r| r.0 == "POST").collect();
        assert_eq!(
            posts.len(),
            1,
            "one ChangeBatch for the whole withdraw: {withdrawn:?}"
        );
        let post_at = withdrawn.iter().position(|r| r.0 == "POST").unwrap();
        assert!(
            withdrawn[post_at..]
                .iter()
                .any(|r| r.0 == "GET" && r.1.starts_with("/2013-04-01/change/"))
        );
        assert_eq!(values_at(&p, "many.signing.test.").await, None);
        // The other tool's value survives.
        assert_eq!(
            values_at(&p, "shared.signing.test.").await,
            Some((texts(&["theirs"]), 60))
        );
        // Withdrawing again is not an error and sends nothing.
        let before = moto.requests().len();
        p.withdraw(&set).await.unwrap();
        assert!(moto.requests()[before..].iter().all(|r| r.0 == "GET"));

        // Every request was signed for route53 in us-east-1.
        let raw = std::fs::read_to_string(&moto.recording).unwrap();
        assert!(raw.contains("/us-east-1/route53/aws4_request"));
        assert!(!raw.contains("moto-secret"));

        // An unknown zone: the error names AWS's answer.
        let missing = publisher(&moto, "ZNOSUCHZONE");
        let e = missing.publish(&set).await.unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("route53 ListResourceRecordSets in hosted zone ZNOSUCHZONE: HTTP 4")
                && text.ends_with(" NoSuchHostedZone: No hosted zone found with ID: ZNOSUCHZONE"),
            "{text}"
        );
        assert_eq!(crate::problem::Problem::kind(&e), Kind::DnsConfig);
    }
}
