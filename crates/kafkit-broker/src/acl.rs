//! Access control lists: what CreateAcls stores, DescribeAcls lists and DeleteAcls removes,
//! with Kafka's validation and filter rules (`org.apache.kafka.common.acl.AclBindingFilter`
//! and `ResourcePatternFilter.matches`), kept in `<data_dir>/acls` across restarts.
//!
//! The cluster stores ACLs but does not enforce them yet: its listeners are PLAINTEXT without
//! authentication, so every client is `User:ANONYMOUS` and is allowed everything (as Kafka is
//! with no authorizer's decision to make). Enforcement needs principals, which arrive with
//! SASL (issue 14). DescribeTopics/DescribeCluster therefore report every operation as allowed.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::error::Outcome;
use crate::storage::Storage;

/// Resource types (Kafka's `ResourceType` codes).
pub mod resource {
    /// UNKNOWN
    pub const UNKNOWN: i8 = 0;
    /// ANY (filters only)
    pub const ANY: i8 = 1;
    /// TOPIC
    pub const TOPIC: i8 = 2;
    /// GROUP
    pub const GROUP: i8 = 3;
    /// CLUSTER
    pub const CLUSTER: i8 = 4;
    /// USER (the last code Kafka defines)
    pub const USER: i8 = 7;
}

/// Pattern types (Kafka's `PatternType` codes).
pub mod pattern {
    /// UNKNOWN
    pub const UNKNOWN: i8 = 0;
    /// ANY (filters only): any pattern type, names compared exactly
    pub const ANY: i8 = 1;
    /// MATCH (filters only): the patterns that would apply to the named resource
    pub const MATCH: i8 = 2;
    /// LITERAL (`*` is the wildcard)
    pub const LITERAL: i8 = 3;
    /// PREFIXED
    pub const PREFIXED: i8 = 4;
}

/// Operation codes: UNKNOWN 0, ANY 1 (filters only), ALL 2 ... DESCRIBE_TOKENS 14.
pub mod operation {
    /// UNKNOWN
    pub const UNKNOWN: i8 = 0;
    /// ANY (filters only)
    pub const ANY: i8 = 1;
    /// The last code Kafka defines (DESCRIBE_TOKENS)
    pub const LAST: i8 = 14;
}

/// Permission codes: UNKNOWN 0, ANY 1 (filters only), DENY 2, ALLOW 3.
pub mod permission {
    /// UNKNOWN
    pub const UNKNOWN: i8 = 0;
    /// ANY (filters only)
    pub const ANY: i8 = 1;
    /// ALLOW
    pub const ALLOW: i8 = 3;
}

/// At most this many ACLs (Kafka has no limit; a peer must not grow the file and the memory
/// without one): more is POLICY_VIOLATION (44).
pub const MAX_ACLS: usize = 100_000;

use kafkit_protocol::codes::INVALID_REQUEST;
use kafkit_protocol::codes::KAFKA_STORAGE_ERROR as STORAGE_ERROR;

/// One ACL binding: a resource pattern and an access control entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Acl {
    /// Resource type code.
    pub resource_type: i8,
    /// Resource name (a topic, a group, `kafka-cluster`, a prefix, or `*`).
    pub resource_name: String,
    /// LITERAL or PREFIXED.
    pub pattern_type: i8,
    /// `Type:name`, e.g. `User:alice`.
    pub principal: String,
    /// A host, or `*`.
    pub host: String,
    /// Operation code.
    pub operation: i8,
    /// DENY or ALLOW.
    pub permission_type: i8,
}

/// A filter from DescribeAcls or DeleteAcls; `None` names match anything.
#[derive(Debug, Clone)]
pub struct AclFilter {
    /// Resource type code or ANY.
    pub resource_type: i8,
    /// Resource name, or any.
    pub resource_name: Option<String>,
    /// Pattern type code, ANY or MATCH.
    pub pattern_type: i8,
    /// Principal, or any.
    pub principal: Option<String>,
    /// Host, or any.
    pub host: Option<String>,
    /// Operation code or ANY.
    pub operation: i8,
    /// Permission code or ANY.
    pub permission_type: i8,
}

impl AclFilter {
    /// Kafka's checks on a filter: nothing UNKNOWN. `Err((code, message))`.
    pub fn validate(&self) -> Outcome {
        let bad = |what: &str, v: i8| Err((INVALID_REQUEST, format!("filter has {what} {v}")));
        if !(resource::ANY..=resource::USER).contains(&self.resource_type) {
            return bad("resource type", self.resource_type);
        }
        if !(pattern::ANY..=pattern::PREFIXED).contains(&self.pattern_type) {
            return bad("pattern type", self.pattern_type);
        }
        if !(operation::ANY..=operation::LAST).contains(&self.operation) {
            return bad("operation", self.operation);
        }
        if !(permission::ANY..=permission::ALLOW).contains(&self.permission_type) {
            return bad("permission type", self.permission_type);
        }
        Ok(())
    }

    /// `ResourcePatternFilter.matches` and `AccessControlEntryFilter.matches`.
    pub fn matches(&self, acl: &Acl) -> bool {
        if self.resource_type != resource::ANY && self.resource_type != acl.resource_type {
            return false;
        }
        if self.pattern_type != pattern::ANY
            && self.pattern_type != pattern::MATCH
            && self.pattern_type != acl.pattern_type
        {
            return false;
        }
        let name_ok = match &self.resource_name {
            None => true,
            Some(name) if self.pattern_type != pattern::MATCH => *name == acl.resource_name,
            Some(name) => match acl.pattern_type {
                pattern::LITERAL => *name == acl.resource_name || acl.resource_name == "*",
                pattern::PREFIXED => name.starts_with(&acl.resource_name),
                _ => false,
            },
        };
        name_ok
            && self.principal.as_ref().is_none_or(|p| *p == acl.principal)
            && self.host.as_ref().is_none_or(|h| *h == acl.host)
            && (self.operation == operation::ANY || self.operation == acl.operation)
            && (self.permission_type == permission::ANY
                || self.permission_type == acl.permission_type)
    }
}

impl Acl {
    /// Kafka's checks on a new binding (`AclControlManager.validateNewAcl`).
    pub fn validate(&self) -> Outcome {
        let bad = |m: String| Err((INVALID_REQUEST, m));
        if !(resource::TOPIC..=resource::USER).contains(&self.resource_type) {
            return bad(format!("invalid resource type {}", self.resource_type));
        }
        if self.pattern_type != pattern::LITERAL && self.pattern_type != pattern::PREFIXED {
            return bad(format!(
                "invalid pattern type {}: an ACL is LITERAL or PREFIXED",
                self.pattern_type
            ));
        }
        if !(2..=operation::LAST).contains(&self.operation) {
            return bad(format!("invalid operation {}", self.operation));
        }
        if self.permission_type != 2 && self.permission_type != permission::ALLOW {
            return bad(format!("invalid permission type {}", self.permission_type));
        }
        if self.resource_name.is_empty() {
            return bad("the resource name is empty".into());
        }
        if self.resource_type == resource::CLUSTER && self.resource_name != "kafka-cluster" {
            return bad("the only valid name for the CLUSTER resource is kafka-cluster".into());
        }
        match self.principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
            _ => {
                return bad(format!(
                    "could not parse principal {:?}: expected Type:name, e.g. User:alice",
                    self.principal
                ))
            }
        }
        if self.host.is_empty() {
            return bad("the host is empty (use * for any host)".into());
        }
        Ok(())
    }

    fn encode(&self) -> String {
        [
            self.resource_type.to_string(),
            escape(&self.resource_name),
            self.pattern_type.to_string(),
            escape(&self.principal),
            escape(&self.host),
            self.operation.to_string(),
            self.permission_type.to_string(),
        ]
        .join("\t")
    }

    fn decode(line: &str) -> Option<Self> {
        let f: Vec<&str> = line.split('\t').collect();
        let [rt, name, pt, principal, host, op, perm] = f[..] else {
            return None;
        };
        let acl = Acl {
            resource_type: rt.parse().ok()?,
            resource_name: unescape(name)?,
            pattern_type: pt.parse().ok()?,
            principal: unescape(principal)?,
            host: unescape(host)?,
            operation: op.parse().ok()?,
            permission_type: perm.parse().ok()?,
        };
        acl.validate().ok().map(|()| acl)
    }
}

/// Group and principal names may hold any character: `%`, tab and newline are escaped.
fn escape(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\t', "%09")
        .replace('\n', "%0A")
}

fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 3)?;
        out.push(match code {
            "25" => '%',
            "09" => '\t',
            "0A" => '\n',
            _ => return None,
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// The cluster's ACLs, saved in one file replaced atomically on every change.
#[derive(Debug)]
pub struct AclStore {
    acls: Mutex<BTreeSet<Acl>>,
    storage: Arc<dyn Storage>,
    path: PathBuf,
}

impl AclStore {
    /// Loads `path` if it exists. A line that does not parse is an error: ACLs silently lost
    /// would widen access when enforcement comes.
    pub fn open(storage: Arc<dyn Storage>, path: PathBuf) -> std::io::Result<Self> {
        let mut acls = BTreeSet::new();
        match storage.read_file(&path) {
            Ok(data) => {
                for line in String::from_utf8_lossy(&data).lines() {
                    if line.is_empty() {
                        continue;
                    }
                    let acl = Acl::decode(line).ok_or_else(|| {
                        std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!("{}: bad ACL line {line:?}", path.display()),
                        )
                    })?;
                    acls.insert(acl);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(Self {
            acls: Mutex::new(acls),
            storage,
            path,
        })
    }

    fn save(&self, acls: &BTreeSet<Acl>) -> Outcome {
        let text: String = acls.iter().map(|a| a.encode() + "\n").collect();
        self.storage
            .write_atomic(&self.path, text.as_bytes())
            .map_err(|e| (STORAGE_ERROR, format!("saving ACLs: {e}")))
    }

    /// Adds valid bindings (an existing one is not an error); one result per binding, in
    /// order. Nothing is added if the file cannot be saved.
    pub fn create(&self, new: Vec<Acl>) -> Vec<Outcome> {
        let mut results: Vec<_> = new.iter().map(Acl::validate).collect();
        let mut acls = self.acls.lock().expect("acl lock");
        let mut next = acls.clone();
        for (acl, r) in new.into_iter().zip(results.iter_mut()) {
            if r.is_ok() {
                if next.len() >= MAX_ACLS && !next.contains(&acl) {
                    *r = Err((
                        kafkit_protocol::codes::POLICY_VIOLATION,
                        format!("the cluster holds {MAX_ACLS} ACLs, its limit"),
                    ));
                } else {
                    next.insert(acl);
                }
            }
        }
        if next.len() != acls.len() {
            if let Err(e) = self.save(&next) {
                for r in results.iter_mut().filter(|r| r.is_ok()) {
                    *r = Err(e.clone());
                }
                return results;
            }
            tracing::info!(target: "kafkit::broker", count = next.len() - acls.len(), "ACLs created");
            *acls = next;
        }
        results
    }

    /// The bindings `filter` matches.
    pub fn describe(&self, filter: &AclFilter) -> Vec<Acl> {
        let acls = self.acls.lock().expect("acl lock");
        acls.iter().filter(|a| filter.matches(a)).cloned().collect()
    }

    /// Removes what each filter matches; per filter, the bindings removed (or why none were).
    pub fn delete(&self, filters: &[AclFilter]) -> Vec<Outcome<Vec<Acl>>> {
        let mut acls = self.acls.lock().expect("acl lock");
        let mut next = acls.clone();
        let mut results: Vec<_> = filters
            .iter()
            .map(|f| {
                f.validate()?;
                let matched: Vec<Acl> = acls.iter().filter(|a| f.matches(a)).cloned().collect();
                for a in &matched {
                    next.remove(a);
                }
                Ok(matched)
            })
            .collect();
        if next.len() != acls.len() {
            if let Err(e) = self.save(&next) {
                for r in results.iter_mut().filter(|r| r.is_ok()) {
                    *r = Err(e.clone());
                }
                return results;
            }
            tracing::info!(target: "kafkit::broker", count = acls.len() - next.len(), "ACLs deleted");
            *acls = next;
        }
        results
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(rt: i8, name: &str, pt: i8, principal: &str, op: i8, perm: i8) -> Acl {
        Acl {
            resource_type: rt,
            resource_name: name.into(),
            pattern_type: pt,
            principal: principal.into(),
            host: "*".into(),
            operation: op,
            permission_type: perm,
        }
    }

    fn filter(rt: i8, name: Option<&str>, pt: i8) -> AclFilter {
        AclFilter {
            resource_type: rt,
            resource_name: name.map(Into::into),
            pattern_type: pt,
            principal: None,
            host: None,
            operation: operation::ANY,
            permission_type: permission::ANY,
        }
    }

    #[test]
    fn filters_match_as_kafka_does() {
        let lit = acl(resource::TOPIC, "orders", pattern::LITERAL, "User:a", 3, 3);
        let wild = acl(resource::TOPIC, "*", pattern::LITERAL, "User:a", 3, 3);
        let pre = acl(resource::TOPIC, "ord", pattern::PREFIXED, "User:a", 3, 3);
        let f = filter(resource::TOPIC, Some("orders"), pattern::MATCH);
        assert!(f.matches(&lit) && f.matches(&wild) && f.matches(&pre));
        let f = filter(resource::TOPIC, Some("orders"), pattern::ANY);
        assert!(f.matches(&lit) && !f.matches(&wild) && !f.matches(&pre));
        let f = filter(resource::ANY, Some("ord"), pattern::PREFIXED);
        assert!(!f.matches(&lit) && f.matches(&pre));
        let f = filter(resource::GROUP, None, pattern::ANY);
        assert!(!f.matches(&lit));
        let mut f = filter(resource::ANY, None, pattern::ANY);
        f.operation = 4;
        assert!(!f.matches(&lit));
    }

    #[test]
    fn invalid_bindings_are_refused() {
        let ok = acl(resource::TOPIC, "t", pattern::LITERAL, "User:a", 3, 3);
        assert!(ok.validate().is_ok());
        for bad in [
            Acl {
                pattern_type: pattern::MATCH,
                ..ok.clone()
            },
            Acl {
                resource_type: resource::ANY,
                ..ok.clone()
            },
            Acl {
                operation: operation::ANY,
                ..ok.clone()
            },
            Acl {
                permission_type: permission::ANY,
                ..ok.clone()
            },
            Acl {
                principal: "alice".into(),
                ..ok.clone()
            },
            Acl {
                resource_type: resource::CLUSTER,
                ..ok.clone()
            },
        ] {
            assert_eq!(bad.validate().unwrap_err().0, INVALID_REQUEST, "{bad:?}");
        }
    }

    #[test]
    fn acls_survive_a_reopen_and_odd_names_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> = Arc::new(crate::storage::DiskStorage);
        let path = dir.path().join("acls");
        let store = AclStore::open(storage.clone(), path.clone()).unwrap();
        let odd = acl(
            resource::GROUP,
            "g\t%0A\nx",
            pattern::LITERAL,
            "User:a:b",
            3,
            2,
        );
        let r = store.create(vec![
            odd.clone(),
            acl(resource::TOPIC, "t", pattern::MATCH, "User:a", 3, 3),
        ]);
        assert!(r[0].is_ok() && r[1].is_err());
        let store = AclStore::open(storage, path).unwrap();
        assert_eq!(
            store.describe(&filter(resource::ANY, None, pattern::ANY)),
            vec![odd.clone()]
        );
        let deleted = store.delete(&[filter(resource::GROUP, None, pattern::ANY)]);
        assert_eq!(deleted[0].as_ref().unwrap(), &vec![odd]);
        assert!(store
            .describe(&filter(resource::ANY, None, pattern::ANY))
            .is_empty());
    }
}
