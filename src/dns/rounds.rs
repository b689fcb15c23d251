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
    let txt: usize = values.map(txt_bytes).sum();
    header + question + cname + txt + opt
}

/// Splits `values` into rounds: in each round, every target's answer (for the longest query
/// name leading to it) stays within `max_bytes`. A single value that alone exceeds the limit
/// gets a round to itself. Values keep their order; duplicates at a target share a slot.
///
/// Each round keeps, per target, its values and the bytes they add to the answer, so placing
/// a value costs a lookup per round rather than a pass over the round: a run over 1,000
/// hosts presents 2,000 values, and the pass compared names millions of times.
pub fn split(values: &[Presented], max_bytes: usize) -> Vec<Vec<Presented>> {
    // The longest query per target: the largest answer the CA can get for it.
    let mut longest: BTreeMap<&Name, &Name> = BTreeMap::new();
    for v in values {
        let q = longest.entry(&v.target).or_insert(&v.query);
        if v.query.len() > q.len() {
            *q = &v.query;
        }
    }
    // The answer's bytes without any TXT record, per target.
    let base: BTreeMap<&Name, usize> = longest
        .iter()
        .map(|(target, query)| (*target, answer_bytes(query, target, std::iter::empty())))
        .collect();
    let mut rounds: Vec<Round> = Vec::new();
    for v in values {
        let txt = txt_bytes(&v.value);
        let fits = |round: &Round| match round.at.get(&v.target) {
            None => true,
            Some(at) => {
                at.values.contains(v.value.as_str()) || base[&v.target] + at.txt + txt <= max_bytes
            }
        };
        let round = match rounds.iter().position(fits) {
            Some(i) => &mut rounds[i],
            None => {
                rounds.push(Round::default());
                rounds.last_mut().expect("just pushed")
            }
        };
        let at = round.at.entry(&v.target).or_default();
        if at.values.insert(v.value.as_str()) {
            at.txt += txt;
            round.values.push(v.clone());
        }
    }
    rounds.into_iter().map(|r| r.values).collect()
}

/// The bytes one TXT record holding `value` adds to an answer (see [`answer_bytes`]).
fn txt_bytes(value: &str) -> usize {
    2 + 10 + 1 + value.len()
}

/// One round being filled: its values in order, and per target what they add up to.
#[derive(Default)]
struct Round<'a> {
    values: Vec<Presented>,
    at: BTreeMap<&'a Name, AtTarget<'a>>,
}

#[derive(Default)]
struct AtTarget<'a> {
    values: std::collections::BTreeSet<&'a str>,
    /// The bytes of their TXT records.
    txt: usize,
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

    /// The first version of `split`: a pass over the round for every value placed.
    fn split_by_search(values: &[Presented], max_bytes: usize) -> Vec<Vec<Presented>> {
        let mut rounds: Vec<Vec<Presented>> = Vec::new();
        for v in values {
            let query = values
                .iter()
                .filter(|p| p.target == v.target)
                .map(|p| &p.query)
                .max_by_key(|q| q.len())
                .expect("v itself");
            let fits = |round: &Vec<Presented>| {
                let at: Vec<&str> = round
                    .iter()
                    .filter(|p| p.target == v.target)
                    .map(|p| p.value.as_str())
                    .collect();
                at.contains(&v.value.as_str())
                    || at.is_empty()
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

    #[test]
    fn rounds_are_those_of_a_search_through_each_round() {
        // Targets shared by up to seven names, repeated values, query names of several
        // lengths and limits from "one value per round" to "everything in one".
        let values: Vec<Presented> = (0..600usize)
            .map(|i| Presented {
                target: name(&format!("t{}.signing.test.", (i * 7919) % 97)),
                query: name(&format!(
                    "_acme-challenge.{}.example.test.",
                    "n".repeat(1 + i % 13)
                )),
                value: value((i * 31) % 450),
            })
            .collect();
        // And limits an answer meets exactly, at one target's longest query.
        let t = &values[0].target;
        let q = values
            .iter()
            .filter(|p| &p.target == t)
            .map(|p| &p.query)
            .max_by_key(|q| q.len())
            .unwrap();
        let exact = (1..=5).map(|k| answer_bytes(q, t, std::iter::repeat_n(value(0).as_str(), k)));
        for max in [10, 200, 300, 512, 1232, 4096, 65535]
            .into_iter()
            .chain(exact)
        {
            assert_eq!(
                split(&values, max),
                split_by_search(&values, max),
                "max {max}"
            );
        }
    }
}
