//! The `powerdns` publisher: PowerDNS Authoritative's HTTP API (`api=yes`, the built-in
//! webserver). Per zone and batch it reads the zone once (`GET .../zones/{zone}`) and sends one
//! `PATCH` with an rrset per name.
//!
//! A `PATCH` with `changetype: REPLACE` replaces the whole RRset, and the API offers no way to
//! add or remove one record, so the values at each name are merged here: what others put at a
//! name stays, ours are added (publish) or exactly ours removed (withdraw; `DELETE` when none
//! remain). Two writers patching the same name at the same instant can still lose a value
//! (the API has no compare-and-set); a signing zone certorch alone writes has no such writer.
//! The TXT RRset's TTL becomes `dns.ttl` on publish (one RRset has one TTL, RFC 2181 §5.2).
//!
//! Configuration (`dns.powerdns` in the inventory) and its validation live here too.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_saphyr::{Location, Spanned};

use super::{BoxFuture, Publisher};
use crate::dns::Error;
use crate::dns::txt::TxtSet;
use crate::inventory::SecretSource;
use crate::problem::{Kind, Plain};
use crate::secret::Secret;

/// How long one API request (connect, send, whole answer) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The most of an answer's text an error quotes.
const ANSWER_CHARS: usize = 300;

/// `dns.powerdns` as written in the inventory.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPowerDns {
    /// The webserver's base URL, e.g. `http://127.0.0.1:8081`.
    pub api: Spanned<String>,
    /// The API's server id (`localhost` unless PowerDNS is told otherwise).
    pub server_id: Option<Spanned<String>>,
    pub api_key_file: Option<PathBuf>,
    pub api_key_env: Option<String>,
}

/// The validated `dns.powerdns` settings.
#[derive(Debug, Clone)]
pub struct PowerDnsConfig {
    /// The base URL without a trailing `/`.
    pub api: String,
    pub server_id: String,
    /// Where the API key (`X-API-Key`) comes from; never the inventory itself.
    pub key: SecretSource,
}

/// Validates `dns.powerdns`; `resolve` makes a relative path relative to the inventory.
pub fn config(
    raw: Spanned<RawPowerDns>,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<PowerDnsConfig, (Location, String)> {
    let at = raw.referenced;
    let raw = raw.value;
    let api = raw.api.value.trim_end_matches('/').to_string();
    let authority = api
        .strip_prefix("http://")
        .or_else(|| api.strip_prefix("https://"))
        .map(|rest| rest.split('/').next().unwrap_or(""));
    let usable = match authority {
        Some(a) => {
            !a.is_empty()
                && !a.contains('@')
                && !api.contains(['?', '#'])
                && api.parse::<hyper::Uri>().is_ok()
        }
        None => false,
    };
    if !usable {
        return Err((
            raw.api.referenced,
            format!(
                "`{}` is not the PowerDNS webserver's URL: write http://ADDRESS:PORT (the webserver-address and webserver-port of pdns.conf), like http://127.0.0.1:8081; https:// through a TLS proxy",
                raw.api.value
            ),
        ));
    }
    let server_id = match raw.server_id {
        None => "localhost".to_string(),
        Some(s)
            if !s.value.is_empty()
                && s.value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) =>
        {
            s.value
        }
        Some(s) => {
            return Err((
                s.referenced,
                format!(
                    "`{}` is not a PowerDNS server id: write localhost (the default) or the id GET /api/v1/servers lists",
                    s.value
                ),
            ));
        }
    };
    let key = match (raw.api_key_file, raw.api_key_env) {
        (Some(f), None) => SecretSource::File(resolve(f)),
        (None, Some(e)) if !e.is_empty() => SecretSource::Env(e),
        _ => {
            return Err((
                at,
                "give the PowerDNS API key as exactly one of api_key_file (a file holding the api-key of pdns.conf) or api_key_env (the name of an environment variable)".into(),
            ));
        }
    };
    Ok(PowerDnsConfig {
        api,
        server_id,
        key,
    })
}

type Connector = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

/// Talks to one PowerDNS server's API.
pub struct PowerDns {
    api: String,
    server_id: String,
    /// The `X-API-Key` value, marked sensitive so no Debug of a request shows it either.
    key: Secret<hyper::header::HeaderValue>,
    /// Where the key came from, for hints: `the file …` or `$VAR`.
    key_source: String,
    client: hyper_util::client::legacy::Client<Connector, Full<Bytes>>,
}

/// Reads the API key and builds the client.
pub fn build(cfg: &PowerDnsConfig) -> Result<PowerDns, Plain> {
    let (key, key_source) = match &cfg.key {
        SecretSource::File(path) => {
            let text = crate::small_file::read(path).map_err(|e| {
                Plain::new(
                    Kind::DnsConfig,
                    format!("cannot read the PowerDNS API key {}: {e}", path.display()),
                    "point dns.powerdns.api_key_file at a file (mode 0600) holding the api-key of pdns.conf",
                )
            })?;
            (
                text.trim().to_string(),
                format!("the file {}", path.display()),
            )
        }
        SecretSource::Env(var) => match std::env::var(var) {
            Ok(v) => (v.trim().to_string(), format!("${var}")),
            Err(_) => {
                return Err(Plain::new(
                    Kind::DnsConfig,
                    format!("the PowerDNS API key variable {var} is not set"),
                    format!(
                        "export {var} with the api-key of pdns.conf before running certorch (cron: set it in the crontab or a wrapper)"
                    ),
                ));
            }
        },
    };
    let key = match hyper::header::HeaderValue::from_str(&key) {
        Ok(mut v) if !key.is_empty() => {
            v.set_sensitive(true);
            v
        }
        _ => {
            return Err(Plain::new(
                Kind::DnsConfig,
                format!(
                    "the PowerDNS API key from {key_source} is empty or holds characters an HTTP header cannot carry"
                ),
                "put the api-key of pdns.conf alone on one line",
            ));
        }
    };
    let connector = connector(cfg.api.starts_with("https://")).map_err(|e| {
        Plain::new(
            Kind::DnsConfig,
            format!("cannot set up TLS for the PowerDNS API {}: {e}", cfg.api),
            "install the system's CA certificates (ca-certificates), or reach the API over http:// on a trusted network",
        )
    })?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(connector);
    Ok(PowerDns {
        api: cfg.api.clone(),
        server_id: cfg.server_id.clone(),
        key: Secret::new(key),
        key_source,
        client,
    })
}

/// An http/https connector; https checks the server against the system's roots. Plain http
/// needs no roots, so a machine without any still reaches an API on loopback.
fn connector(https: bool) -> Result<Connector, String> {
    let builder = match hyper_rustls::HttpsConnectorBuilder::new().with_native_roots() {
        Ok(b) => b,
        Err(e) if https => return Err(format!("cannot load the system's root certificates: {e}")),
        Err(_) => {
            let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let tls = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls)
        }
    };
    Ok(builder.https_or_http().enable_http1().build())
}

/// A zone as the API returns it; only what the merge needs.
#[derive(Debug, Deserialize)]
struct Zone {
    #[serde(default)]
    rrsets: Vec<RrSet>,
}

#[derive(Debug, Clone, Deserialize)]
struct RrSet {
    name: String,
    #[serde(rename = "type")]
    rtype: String,
    ttl: Option<u32>,
    #[serde(default)]
    records: Vec<ApiRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ApiRecord {
    content: String,
    #[serde(default)]
    disabled: bool,
}

/// The body of one `PATCH`.
#[derive(Debug, Serialize)]
struct Patch {
    rrsets: Vec<Change>,
}

#[derive(Debug, Serialize)]
struct Change {
    name: String,
    #[serde(rename = "type")]
    rtype: &'static str,
    changetype: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    records: Option<Vec<ApiRecord>>,
}

/// A TXT value as PowerDNS's record content: one quoted string (RFC 1035 §5.1 escapes).
fn quoted(value: &str) -> String {
    let mut s = String::with_capacity(value.len() + 2);
    s.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

/// The changes that add (`publish`) or remove our `values` (owner name → values, names in
/// canonical form with the trailing dot) given the zone's `existing` rrsets, keeping every
/// other value at those names. Names where a withdrawal finds none of ours are left out.
fn changes(
    existing: &[RrSet],
    ours: &BTreeMap<String, Vec<&str>>,
    ttl: u32,
    publish: bool,
) -> Vec<Change> {
    let mut out = Vec::new();
    for (name, values) in ours {
        let current = existing
            .iter()
            .find(|r| r.rtype.eq_ignore_ascii_case("TXT") && r.name.eq_ignore_ascii_case(name));
        let mut records: Vec<ApiRecord> = current.map(|r| r.records.clone()).unwrap_or_default();
        let contents: Vec<String> = values.iter().map(|v| quoted(v)).collect();
        if publish {
            for c in contents {
                if !records.iter().any(|r| r.content == c) {
                    records.push(ApiRecord {
                        content: c,
                        disabled: false,
                    });
                }
            }
            out.push(Change {
                name: name.clone(),
                rtype: "TXT",
                changetype: "REPLACE",
                ttl: Some(ttl),
                records: Some(records),
            });
        } else {
            let before = records.len();
            records.retain(|r| !contents.contains(&r.content));
            if records.len() == before {
                continue;
            }
            if records.is_empty() {
                out.push(Change {
                    name: name.clone(),
                    rtype: "TXT",
                    changetype: "DELETE",
                    ttl: None,
                    records: None,
                });
            } else {
                out.push(Change {
                    name: name.clone(),
                    rtype: "TXT",
                    changetype: "REPLACE",
                    ttl: Some(current.and_then(|r| r.ttl).unwrap_or(ttl)),
                    records: Some(records),
                });
            }
        }
    }
    out
}

/// A zone name as the API's zone id: the name with its trailing dot, every character other
/// than letters, digits, `.` and `-` as `=XX` (PowerDNS's `apiZoneNameToId`).
fn zone_id(zone: &str) -> String {
    let mut id = String::new();
    for b in zone.bytes() {
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'-' {
            id.push(b as char);
        } else {
            id.push_str(&format!("={b:02X}"));
        }
    }
    id
}

/// What an error answer says: the status and the `error` field of a JSON body, or the start
/// of a body that is not JSON (PowerDNS answers 401 with plain `Unauthorized`).
fn answer(status: StatusCode, body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: String,
    }
    let detail = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => e.error,
        Err(_) => String::from_utf8_lossy(body)
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect::<String>()
            .trim()
            .to_string(),
    };
    let detail: String = detail.chars().take(ANSWER_CHARS).collect();
    if detail.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {detail}")
    }
}

impl PowerDns {
    fn zone_url(&self, zone: &str) -> String {
        format!(
            "{}/api/v1/servers/{}/zones/{}",
            self.api,
            self.server_id,
            zone_id(zone)
        )
    }

    /// One request; an answer outside 2xx is an error naming the API's answer.
    async fn request(
        &self,
        method: Method,
        url: &str,
        body: Option<Vec<u8>>,
        what: &str,
    ) -> Result<Bytes, Error> {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(url)
            .header("x-api-key", self.key.expose().clone())
            .header("accept", "application/json")
            .header(
                "user-agent",
                concat!("certorch/", env!("CARGO_PKG_VERSION")),
            );
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| self.unreachable(what, e.to_string()))?;
        let exchange = async {
            let rsp = self
                .client
                .request(req)
                .await
                .map_err(|e| self.unreachable(what, crate::acme::error_chain(&e)))?;
            let status = rsp.status();
            let body = rsp
                .into_body()
                .collect()
                .await
                .map_err(|e| self.unreachable(what, e.to_string()))?
                .to_bytes();
            Ok::<_, Error>((status, body))
        };
        let (status, body) = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| {
                self.unreachable(
                    what,
                    format!("no answer within {}s", REQUEST_TIMEOUT.as_secs()),
                )
            })??;
        if status.is_success() {
            return Ok(body);
        }
        let answer = answer(status, &body);
        Err(
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                Error::ApiRefused {
                    api: self.api.clone(),
                    what: what.to_string(),
                    answer,
                    key_source: self.key_source.clone(),
                }
            } else {
                Error::ApiFailed {
                    api: self.api.clone(),
                    what: what.to_string(),
                    status: status.as_u16(),
                    answer,
                }
            },
        )
    }

    fn unreachable(&self, what: &str, detail: String) -> Error {
        Error::ApiUnreachable {
            api: self.api.clone(),
            what: what.to_string(),
            detail,
        }
    }

    /// One GET and at most one PATCH per zone.
    async fn update(&self, set: &TxtSet, publish: bool) -> Result<(), Error> {
        for (zone, records) in set.by_zone() {
            let zone = zone.to_ascii();
            let url = self.zone_url(&zone);
            let what = format!("reading zone {zone}");
            let body = self.request(Method::GET, &url, None, &what).await?;
            let current: Zone = serde_json::from_slice(&body).map_err(|e| Error::ApiFailed {
                api: self.api.clone(),
                what: what.clone(),
                status: 200,
                answer: format!("not a zone document: {e}"),
            })?;
            let mut ours: BTreeMap<String, Vec<&str>> = BTreeMap::new();
            for r in records {
                ours.entry(r.name.to_ascii().to_ascii_lowercase())
                    .or_default()
                    .push(&r.value);
            }
            let rrsets = changes(&current.rrsets, &ours, set.ttl, publish);
            if rrsets.is_empty() {
                continue;
            }
            let n = rrsets.len();
            let patch = serde_json::to_vec(&Patch { rrsets }).map_err(|e| Error::ApiFailed {
                api: self.api.clone(),
                what: format!("encoding the change of zone {zone}"),
                status: 0,
                answer: e.to_string(),
            })?;
            let what = format!(
                "{} TXT records at {n} name(s) in zone {zone}",
                if publish { "adding" } else { "removing" }
            );
            self.request(Method::PATCH, &url, Some(patch), &what)
                .await?;
            tracing::debug!(zone = %zone, names = n, publish, "powerdns: patched");
        }
        Ok(())
    }
}

impl Publisher for PowerDns {
    fn publish<'a>(&'a self, set: &'a TxtSet) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.update(set, true))
    }

    fn withdraw<'a>(&'a self, set: &'a TxtSet) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.update(set, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rrset(name: &str, ttl: u32, contents: &[&str]) -> RrSet {
        RrSet {
            name: name.into(),
            rtype: "TXT".into(),
            ttl: Some(ttl),
            records: contents
                .iter()
                .map(|c| ApiRecord {
                    content: c.to_string(),
                    disabled: false,
                })
                .collect(),
        }
    }

    fn ours(entries: &[(&str, &[&'static str])]) -> BTreeMap<String, Vec<&'static str>> {
        entries
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_vec()))
            .collect()
    }

    fn body(changes: Vec<Change>) -> serde_json::Value {
        serde_json::to_value(Patch { rrsets: changes }).unwrap()
    }

    #[test]
    fn publishing_keeps_what_others_put_at_the_name() {
        let existing = [
            rrset("pool.acme.test.", 300, &["\"someone else\""]),
            // Another type at the same name, and TXT at another name: not ours to touch.
            RrSet {
                rtype: "A".into(),
                ..rrset("pool.acme.test.", 300, &["192.0.2.1"])
            },
            rrset("other.acme.test.", 300, &["\"x\""]),
        ];
        let ours = ours(&[
            ("pool.acme.test.", &["v1", "v2"]),
            ("new.acme.test.", &["v3"]),
        ]);
        assert_eq!(
            body(changes(&existing, &ours, 60, true)),
            serde_json::json!({"rrsets": [
                {"name": "new.acme.test.", "type": "TXT", "changetype": "REPLACE", "ttl": 60,
                 "records": [{"content": "\"v3\"", "disabled": false}]},
                {"name": "pool.acme.test.", "type": "TXT", "changetype": "REPLACE", "ttl": 60,
                 "records": [{"content": "\"someone else\"", "disabled": false},
                             {"content": "\"v1\"", "disabled": false},
                             {"content": "\"v2\"", "disabled": false}]},
            ]})
        );
    }

    #[test]
    fn publishing_a_value_already_there_adds_no_duplicate() {
        let existing = [rrset("A.acme.test.", 60, &["\"v1\""])];
        let c = changes(&existing, &ours(&[("a.acme.test.", &["v1"])]), 60, true);
        assert_eq!(c[0].records.as_ref().unwrap().len(), 1);
    }

    #[test]
    fn withdrawing_removes_exactly_ours() {
        let mut disabled = rrset("pool.acme.test.", 300, &["\"v1\"", "\"kept\"", "\"v2\""]);
        disabled.records[1].disabled = true;
        let existing = [
            disabled,
            rrset("only.acme.test.", 60, &["\"v3\""]),
            rrset("gone.acme.test.", 60, &["\"not ours\""]),
        ];
        let ours = ours(&[
            ("pool.acme.test.", &["v1", "v2"]),
            ("only.acme.test.", &["v3"]),
            // Withdrawn before (a resumed run): nothing of ours is there, no change.
            ("gone.acme.test.", &["v4"]),
            ("absent.acme.test.", &["v5"]),
        ]);
        assert_eq!(
            body(changes(&existing, &ours, 60, false)),
            serde_json::json!({"rrsets": [
                {"name": "only.acme.test.", "type": "TXT", "changetype": "DELETE"},
                {"name": "pool.acme.test.", "type": "TXT", "changetype": "REPLACE", "ttl": 300,
                 "records": [{"content": "\"kept\"", "disabled": true}]},
            ]})
        );
    }

    #[test]
    fn values_are_quoted_and_zone_ids_encoded() {
        assert_eq!(quoted("abc-_XYZ09"), "\"abc-_XYZ09\"");
        assert_eq!(quoted("certorch probe 42"), "\"certorch probe 42\"");
        assert_eq!(quoted(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(zone_id("acme.example.net."), "acme.example.net.");
        assert_eq!(zone_id("a_b/c.example."), "a=5Fb=2Fc.example.");
    }

    #[test]
    fn errors_quote_the_apis_answer() {
        assert_eq!(
            answer(
                StatusCode::UNPROCESSABLE_ENTITY,
                br#"{"error": "RRset x.other. IN TXT: Name is out of zone"}"#
            ),
            "HTTP 422 Unprocessable Entity: RRset x.other. IN TXT: Name is out of zone"
        );
        assert_eq!(
            answer(StatusCode::UNAUTHORIZED, b"Unauthorized"),
            "HTTP 401 Unauthorized: Unauthorized"
        );
        assert_eq!(answer(StatusCode::BAD_GATEWAY, b""), "HTTP 502 Bad Gateway");
        let long = "x\n".repeat(1000);
        assert!(answer(StatusCode::NOT_FOUND, long.as_bytes()).len() < 400);
    }

    fn parse(yaml: &str) -> Result<PowerDnsConfig, String> {
        let raw: Spanned<RawPowerDns> = serde_saphyr::from_str(yaml).map_err(|e| e.to_string())?;
        config(raw, &|p| PathBuf::from("/inv").join(p))
            .map_err(|(at, m)| format!("{}:{}: {m}", at.line(), at.column()))
    }

    #[test]
    fn configuration_is_validated() {
        let c = parse("{ api: 'http://127.0.0.1:8081/', api_key_file: pdns.key }").unwrap();
        assert_eq!(c.api, "http://127.0.0.1:8081");
        assert_eq!(c.server_id, "localhost");
        assert!(matches!(&c.key, SecretSource::File(p) if p == &PathBuf::from("/inv/pdns.key")));
        let c = parse("{ api: 'https://pdns.example.net', server_id: ns1, api_key_env: PDNS_KEY }")
            .unwrap();
        assert_eq!(c.server_id, "ns1");
        assert!(matches!(&c.key, SecretSource::Env(v) if v == "PDNS_KEY"));
        for (yaml, want) in [
            (
                "{ api: '127.0.0.1:8081', api_key_env: K }",
                "1:8: `127.0.0.1:8081` is not the PowerDNS webserver's URL",
            ),
            (
                "{ api: 'http://u:p@h:8081', api_key_env: K }",
                "is not the PowerDNS webserver's URL",
            ),
            (
                "{ api: 'http://h:8081', server_id: 'a/b', api_key_env: K }",
                "`a/b` is not a PowerDNS server id",
            ),
            (
                "{ api: 'http://h:8081' }",
                "1:1: give the PowerDNS API key as exactly one of api_key_file",
            ),
            (
                "{ api: 'http://h:8081', api_key_env: K, api_key_file: f }",
                "exactly one of",
            ),
        ] {
            let e = parse(yaml).unwrap_err();
            assert!(e.contains(want), "{yaml}: {e}");
        }
        assert!(
            parse("{ api: 'http://h', api_key: x }")
                .unwrap_err()
                .contains("api_key")
        );
    }
}
