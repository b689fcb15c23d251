//! The TXT records of a run: values at one name form a set (several orders may need values at
//! the same name at once); duplicates collapse.

use std::collections::BTreeMap;

use hickory_proto::rr::Name;

/// One TXT value to publish.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TxtRecord {
    /// The zone that holds `name` (the signing zone).
    pub zone: Name,
    pub name: Name,
    pub value: String,
}

/// Every TXT value of a run.
#[derive(Debug, Clone, Default)]
pub struct TxtSet {
    pub ttl: u32,
    records: Vec<TxtRecord>,
}

impl TxtSet {
    /// An empty set whose records get `ttl`.
    pub fn new(ttl: u32) -> Self {
        TxtSet {
            ttl,
            records: Vec::new(),
        }
    }

    /// Adds a record unless the same value already stands at that name.
    pub fn insert(&mut self, r: TxtRecord) {
        if !self.records.contains(&r) {
            self.records.push(r);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &TxtRecord> {
        self.records.iter()
    }

    /// Records grouped by zone, for one update per zone.
    pub fn by_zone(&self) -> BTreeMap<&Name, Vec<&TxtRecord>> {
        let mut m: BTreeMap<&Name, Vec<&TxtRecord>> = BTreeMap::new();
        for r in &self.records {
            m.entry(&r.zone).or_default().push(r);
        }
        m
    }

    /// Expected values by owner name.
    pub fn by_name(&self) -> BTreeMap<&Name, Vec<&str>> {
        let mut m: BTreeMap<&Name, Vec<&str>> = BTreeMap::new();
        for r in &self.records {
            m.entry(&r.name).or_default().push(&r.value);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(zone: &str, name: &str, v: &str) -> TxtRecord {
        TxtRecord {
            zone: Name::from_ascii(zone).unwrap(),
            name: Name::from_ascii(name).unwrap(),
            value: v.into(),
        }
    }

    #[test]
    fn sets_and_grouping() {
        let mut s = TxtSet::new(60);
        s.insert(rec("a.test.", "x.a.test.", "1"));
        s.insert(rec("a.test.", "x.a.test.", "2"));
        s.insert(rec("a.test.", "x.a.test.", "1"));
        s.insert(rec("b.test.", "y.b.test.", "3"));
        assert_eq!(s.len(), 3);
        let z = s.by_zone();
        assert_eq!(z.len(), 2);
        assert_eq!(z[&Name::from_ascii("a.test.").unwrap()].len(), 2);
        assert_eq!(
            s.by_name()[&Name::from_ascii("x.a.test.").unwrap()],
            vec!["1", "2"]
        );
    }
}
