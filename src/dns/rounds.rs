//! Validations in rounds: names whose `_acme-challenge` CNAMEs share one target put all their
//! values in one TXT RRset there, and an answer larger than the configured size is truncated
//! or needs TCP. Values are split into rounds that keep each name's answer within the limit;
//! each round is one publish, one propagation wait and one look by the CA.

use std::collections::BTreeMap;

use hickory_proto::rr::Name;

/// One value to present: at `target`, looked up by the CA as `query` (the `_acme-challenge`
/// name that leads there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    pub target: Name,
    pub query: Name,
    pub value: String,
}

/// The bytes of a DNS answer for `query` that leads by CNAME to `target` holding `values`:
/// header, question, the CNAME, each TXT record (a compressed owner), and an OPT record. An
/// estimate from above: names are counted uncompressed where a server may compress them.
pub fn answer_bytes<'a>(
    query: &Name,
    target: &Name,
    values: impl Iterator<Item = &'a str>,
) -> usize {
    let wire = |n: &Name| n.to_ascii().trim_end_matches('.').len() + 2;
    let header = 12;
    let question = wire(query) + 4;
    let cname = 2 + 10 + wire(target);
    let opt = 11;
    let txt: usize = values.map(|v| 2 + 10 + 1 + v.len()).sum();
    header + question + cname + txt + opt
}

/// Splits `values` into rounds: in each round, every target's answer (for the longest query
/// name leading to it) stays within `max_bytes`. A single value that alone exceeds the limit
/// gets a round to itself. Values keep their order; duplicates at a target share a slot.
pub fn split(values: &[Presented], max_bytes: usize) -> Vec<Vec<Presented>> {
    // The longest query per target: the largest answer the CA can get for it.
    let mut longest: BTreeMap<&Name, &Name> = BTreeMap::new();
    for v in values {
        let q = longest.entry(&v.target).or_insert(&v.query);
        if v.query.len() > q.len() {
            *q = &v.query;
        }
    }
    let mut rounds: Vec<Vec<Presented>> = Vec::new();
    for v in values {
        let query = longest[&v.target];
        let fits = |round: &Vec<Presented>| {
            let at: Vec<&str> = round
                .iter()
                .filter(|p| p.target == v.target)
                .map(|p| p.value.as_str())
                .collect();
            if at.contains(&v.value.as_str()) {
                return true;
            }
            at.is_empty()
                || answer_bytes(
                    query,
                    &v.target,
                    at.iter().copied().chain([v.value.as_str()]),
                ) <= max_bytes
        };
        match rounds.iter_mut().find(|r| fits(r)) {
            Some(r) => {
                if !r.iter().any(|p| p.target == v.target && p.value == v.value) {
                    r.push(v.clone());
                }
            }
            None => rounds.push(vec![v.clone()]),
        }
    }
    rounds
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn value(i: usize) -> String {
        // dns-01 values are 43 characters of base64url (RFC 8555 §8.4).
        format!("{i:043}")
    }

    #[test]
    fn twenty_names_at_one_target_make_rounds_within_512_bytes() {
        let target = name("many.signing.test.");
        let values: Vec<Presented> = (1..=20)
            .map(|i| Presented {
                target: target.clone(),
                query: name(&format!("_acme-challenge.n{i}.many.example.test.")),
                value: value(i),
            })
            .collect();
        let rounds = split(&values, 512);
        assert!(rounds.len() >= 3, "{} rounds", rounds.len());
        let mut seen = 0;
        for r in &rounds {
            let bytes = answer_bytes(
                &name("_acme-challenge.n20.many.example.test."),
                &target,
                r.iter().map(|p| p.value.as_str()),
            );
            assert!(bytes <= 512, "{bytes} bytes");
            seen += r.len();
        }
        assert_eq!(seen, 20);
        // With room for all, one round.
        assert_eq!(split(&values, 4096).len(), 1);
    }

    #[test]
    fn different_targets_share_a_round_and_duplicates_one_slot() {
        let values = vec![
            Presented {
                target: name("a.signing.test."),
                query: name("_acme-challenge.a.example.test."),
                value: value(1),
            },
            Presented {
                target: name("b.signing.test."),
                query: name("_acme-challenge.b.example.test."),
                value: value(2),
            },
            Presented {
                target: name("a.signing.test."),
                query: name("_acme-challenge.a.example.test."),
                value: value(1),
            },
        ];
        let rounds = split(&values, 512);
        assert_eq!(rounds.len(), 1);
        assert_eq!(rounds[0].len(), 2);
        // A limit no value fits in still makes progress, one value per target per round.
        let two_at_a = [
            values[0].clone(),
            Presented {
                value: value(3),
                ..values[0].clone()
            },
        ];
        assert_eq!(split(&two_at_a, 10).len(), 2);
    }
}
