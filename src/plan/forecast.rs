//! Rate-limit forecast for what scheduling cannot wait out: names whose validation failed
//! repeatedly in the last hour (Let's Encrypt pauses them; DOMAIN.md). The budgets of orders,
//! registered domains and duplicate name sets are scheduled instead (`schedule.rs`). Renewals
//! the CA's ARI window asked for are exempt. Pure: history and plan in, warnings out.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::limits;

/// One order a run would open.
#[derive(Debug, Clone)]
pub struct Planned {
    pub names: Vec<String>,
    /// Asked for by ARI, so exempt from the limits.
    pub exempt: bool,
}

/// What the state says happened recently.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Identifiers whose validation failed in the last hour, once per failure.
    pub failed_1h: Vec<String>,
}

/// A limit the run would reach or breach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimitWarning {
    pub limit: &'static str,
    pub detail: String,
}

/// The registered domain of a name (public suffix plus one label); the name itself when the
/// suffix list does not know it.
pub fn registered_domain(name: &str) -> String {
    let n = name.trim_start_matches("*.");
    psl::domain_str(n).unwrap_or(n).to_string()
}

/// Checks a run's planned orders against the limits.
pub fn forecast(planned: &[Planned], history: &History) -> Vec<LimitWarning> {
    let mut out = Vec::new();
    let counted: Vec<&Planned> = planned.iter().filter(|p| !p.exempt).collect();

    let mut failed: BTreeMap<&str, usize> = BTreeMap::new();
    for id in &history.failed_1h {
        *failed.entry(id.as_str()).or_default() += 1;
    }
    for p in &counted {
        for n in &p.names {
            if let Some(&f) = failed.get(n.as_str())
                && f >= limits::FAILED_VALIDATIONS_PER_HOUR
            {
                out.push(LimitWarning {
                    limit: "failed validations per identifier per hour",
                    detail: format!("{n} failed {f} times in the last hour: fix its DNS (certorch check) before ordering again"),
                });
            }
        }
    }
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(names: &[&str], exempt: bool) -> Planned {
        Planned {
            names: names.iter().map(|s| s.to_string()).collect(),
            exempt,
        }
    }

    #[test]
    fn registered_domains() {
        assert_eq!(registered_domain("a.b.example.co.uk"), "example.co.uk");
        assert_eq!(registered_domain("*.example.org"), "example.org");
    }

    #[test]
    fn failing_names_are_flagged() {
        let h = History {
            failed_1h: vec!["a.example.org".into(); 5],
        };
        let w = forecast(&[p(&["a.example.org"], false)], &h);
        assert_eq!(w[0].limit, "failed validations per identifier per hour");
        // ARI renewals are exempt.
        assert!(forecast(&[p(&["a.example.org"], true)], &h).is_empty());
    }
}
