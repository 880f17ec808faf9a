//! SCRAM credentials (RFC 5802, RFC 7677; Kafka's KIP-554): what AlterUserScramCredentials
//! stores and DescribeUserScramCredentials lists, kept in `<data_dir>/scram-credentials`.
//!
//! As in Kafka, the password itself never reaches the broker: a client sends the salt, the
//! iteration count and the salted password (PBKDF2), and the broker keeps only
//! `StoredKey = H(HMAC(salted, "Client Key"))` and `ServerKey = HMAC(salted, "Server Key")`,
//! which is what a SCRAM exchange checks against (`crate::auth`).

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::error::Outcome;
use crate::storage::Storage;

/// A SCRAM mechanism, with Kafka's codes (the math is `kafkit_protocol::sasl`'s, shared with
/// the client).
pub use kafkit_protocol::sasl::ScramMechanism as Mechanism;

/// Kafka's bounds on the iteration count (`ScramMechanism.minIterations`, and the maximum
/// `ScramFormatter` accepts).
pub const MIN_ITERATIONS: i32 = 4096;
/// See [`MIN_ITERATIONS`].
pub const MAX_ITERATIONS: i32 = 16384;

/// What the broker keeps of one user's credential for one mechanism: the SCRAM exchange's
/// own credential type.
pub use kafkit_protocol::sasl::ScramCredential as Credential;

/// At most this many (user, mechanism) credentials: more is POLICY_VIOLATION (44).
pub const MAX_CREDENTIALS: usize = 100_000;

use kafkit_protocol::codes::DUPLICATE_RESOURCE;
use kafkit_protocol::codes::KAFKA_STORAGE_ERROR as STORAGE_ERROR;
use kafkit_protocol::codes::RESOURCE_NOT_FOUND;
use kafkit_protocol::codes::UNACCEPTABLE_CREDENTIAL;
use kafkit_protocol::codes::UNSUPPORTED_SASL_MECHANISM;

/// One change of an AlterUserScramCredentials request.
#[derive(Debug, Clone)]
pub enum Alteration {
    /// Remove the user's credential for a mechanism (code).
    Delete {
        /// User name.
        user: String,
        /// Mechanism code.
        mechanism: i8,
    },
    /// Set the user's credential for a mechanism (code).
    Upsert {
        /// User name.
        user: String,
        /// Mechanism code.
        mechanism: i8,
        /// PBKDF2 iterations.
        iterations: i32,
        /// Salt.
        salt: Vec<u8>,
        /// `Hi(password, salt, iterations)`.
        salted_password: Vec<u8>,
    },
}

impl Alteration {
    fn user(&self) -> &str {
        match self {
            Self::Delete { user, .. } | Self::Upsert { user, .. } => user,
        }
    }
}

type Key = (String, Mechanism);

/// A described credential: (mechanism code, iterations).
pub type Info = (i8, i32);

/// The cluster's SCRAM credentials.
#[derive(Debug)]
pub struct ScramStore {
    creds: Mutex<BTreeMap<Key, Credential>>,
    storage: Arc<dyn Storage>,
    path: PathBuf,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl ScramStore {
    /// Loads `path` if it exists; a line that does not parse is an error.
    pub fn open(storage: Arc<dyn Storage>, path: PathBuf) -> std::io::Result<Self> {
        let mut creds = BTreeMap::new();
        match storage.read_file(&path) {
            Ok(data) => {
                for line in String::from_utf8_lossy(&data).lines() {
                    if line.is_empty() {
                        continue;
                    }
                    let parsed = (|| {
                        let [user, mech, iter, salt, stored, server] =
                            line.split('\t').collect::<Vec<_>>()[..]
                        else {
                            return None;
                        };
                        let key = (
                            String::from_utf8(unhex(user)?).ok()?,
                            Mechanism::from_code(mech.parse().ok()?)?,
                        );
                        let cred = Credential {
                            iterations: iter.parse().ok()?,
                            salt: unhex(salt)?,
                            stored_key: unhex(stored)?,
                            server_key: unhex(server)?,
                        };
                        Some((key, cred))
                    })();
                    let (k, c) = parsed.ok_or_else(|| {
                        std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!("{}: bad credential line", path.display()),
                        )
                    })?;
                    creds.insert(k, c);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(Self {
            creds: Mutex::new(creds),
            storage,
            path,
        })
    }

    /// The credential a SCRAM exchange for `user` with `mechanism` checks against.
    pub fn get(&self, user: &str, mechanism: Mechanism) -> Option<Credential> {
        let creds = self.creds.lock().expect("scram lock");
        creds.get(&(user.to_owned(), mechanism)).cloned()
    }

    /// Sets `user`'s credential from a password (for the cluster's own configuration).
    pub fn set_password(
        &self,
        user: &str,
        mechanism: Mechanism,
        password: &str,
        iterations: i32,
    ) -> Outcome {
        let salt: Vec<u8> = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()]
            .iter()
            .flat_map(|u| *u.as_bytes())
            .collect();
        let salted = mechanism.salted_password(password.as_bytes(), &salt, iterations as u32);
        let r = self.alter(vec![Alteration::Upsert {
            user: user.to_owned(),
            mechanism: mechanism.code(),
            iterations,
            salt,
            salted_password: salted,
        }]);
        r.into_iter().next().expect("one result").1
    }

    fn save(&self, creds: &BTreeMap<Key, Credential>) -> Outcome {
        let text: String = creds
            .iter()
            .map(|((user, m), c)| {
                format!(
                    "{}\t{}\t{}\t{}\t{}\t{}\n",
                    hex(user.as_bytes()),
                    m.code(),
                    c.iterations,
                    hex(&c.salt),
                    hex(&c.stored_key),
                    hex(&c.server_key)
                )
            })
            .collect();
        self.storage
            .write_atomic(&self.path, text.as_bytes())
            .map_err(|e| (STORAGE_ERROR, format!("saving SCRAM credentials: {e}")))
    }

    /// Describes `users` (all users if `None`): per user, its mechanisms and iteration counts,
    /// or RESOURCE_NOT_FOUND / DUPLICATE_RESOURCE.
    pub fn describe(&self, users: Option<Vec<String>>) -> Vec<(String, Outcome<Vec<Info>>)> {
        let creds = self.creds.lock().expect("scram lock");
        let users = users.unwrap_or_else(|| {
            let mut all: Vec<String> = creds.keys().map(|(u, _)| u.clone()).collect();
            all.dedup();
            all
        });
        let mut seen = HashSet::new();
        let dup: HashSet<String> = users
            .iter()
            .filter(|u| !seen.insert(u.as_str()))
            .cloned()
            .collect();
        let mut out = Vec::new();
        let mut done = HashSet::new();
        for user in users {
            if !done.insert(user.clone()) {
                continue;
            }
            let r = if dup.contains(&user) {
                Err((
                    DUPLICATE_RESOURCE,
                    "cannot describe SCRAM credentials for the same user twice in one request"
                        .to_owned(),
                ))
            } else {
                let infos: Vec<Info> = creds
                    .iter()
                    .filter(|((u, _), _)| *u == user)
                    .map(|((_, m), c)| (m.code(), c.iterations))
                    .collect();
                if infos.is_empty() {
                    Err((
                        RESOURCE_NOT_FOUND,
                        format!(
                            "attempt to describe a user credential that does not exist: {user}"
                        ),
                    ))
                } else {
                    Ok(infos)
                }
            };
            out.push((user, r));
        }
        out
    }

    /// Applies the alterations; one result per user named, in first-seen order. A user named
    /// twice gets DUPLICATE_RESOURCE and none of its changes apply.
    pub fn alter(&self, changes: Vec<Alteration>) -> Vec<(String, Outcome)> {
        let mut count: BTreeMap<&str, usize> = BTreeMap::new();
        for c in &changes {
            *count.entry(c.user()).or_default() += 1;
        }
        let mut creds = self.creds.lock().expect("scram lock");
        let mut next = creds.clone();
        let mut results: Vec<(String, Outcome)> = Vec::new();
        for c in &changes {
            let user = c.user().to_owned();
            if results.iter().any(|(u, _)| *u == user) {
                continue;
            }
            let r = if count[c.user()] > 1 {
                Err((
                    DUPLICATE_RESOURCE,
                    "a user credential cannot be altered twice in the same request".to_owned(),
                ))
            } else {
                apply(&mut next, c)
            };
            results.push((user, r));
        }
        if next != *creds {
            if let Err(e) = self.save(&next) {
                for (_, r) in results.iter_mut().filter(|(_, r)| r.is_ok()) {
                    *r = Err(e.clone());
                }
                return results;
            }
            tracing::info!(target: "kafkit::broker", users = ?results.iter().map(|(u, _)| u).collect::<Vec<_>>(), "SCRAM credentials changed");
            *creds = next;
        }
        results
    }
}

fn apply(creds: &mut BTreeMap<Key, Credential>, change: &Alteration) -> Outcome {
    let mech = |code: i8| {
        Mechanism::from_code(code).ok_or((
            UNSUPPORTED_SASL_MECHANISM,
            format!("unknown SCRAM mechanism {code}: SCRAM-SHA-256 is 1, SCRAM-SHA-512 is 2"),
        ))
    };
    match change {
        Alteration::Delete { user, mechanism } => {
            let m = mech(*mechanism)?;
            creds.remove(&(user.clone(), m)).map(|_| ()).ok_or((
                RESOURCE_NOT_FOUND,
                format!("attempt to delete a user credential that does not exist: {user}"),
            ))
        }
        Alteration::Upsert {
            user,
            mechanism,
            iterations,
            salt,
            salted_password,
        } => {
            let m = mech(*mechanism)?;
            let bad = |msg: String| Err((UNACCEPTABLE_CREDENTIAL, msg));
            if user.is_empty() {
                return bad("username must not be empty".into());
            }
            if *iterations < MIN_ITERATIONS {
                return bad(format!(
                    "too few iterations: {iterations} (at least {MIN_ITERATIONS})"
                ));
            }
            if *iterations > MAX_ITERATIONS {
                return bad(format!(
                    "too many iterations: {iterations} (at most {MAX_ITERATIONS})"
                ));
            }
            if salt.is_empty() || salted_password.is_empty() {
                return bad("salt and salted password must not be empty".into());
            }
            if creds.len() >= MAX_CREDENTIALS && !creds.contains_key(&(user.clone(), m)) {
                return Err((
                    44,
                    format!("the cluster holds {MAX_CREDENTIALS} SCRAM credentials, its limit"),
                ));
            }
            creds.insert(
                (user.clone(), m),
                Credential::from_salted(m, salt, *iterations, salted_password),
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's SCRAM-SHA-256 test vector: user "user", password "pencil", salt
    /// W22ZaJ0SNY7soEsUEjb6gQ==, 4096 iterations; ServerKey and StoredKey follow from its
    /// server signature and client proof.
    #[test]
    fn keys_follow_rfc_7677() {
        let salt = [
            0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e, 0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36,
            0xfa, 0x81,
        ];
        let m = Mechanism::Sha256;
        let salted = m.salted_password(b"pencil", &salt, 4096);
        assert_eq!(
            hex(&salted),
            "c4a49510323ab4f952cac1fa99441939e78ea74d6be81ddf7096e87513dc615d"
        );
        let c = Credential::from_salted(m, &salt, 4096, &salted);
        assert_eq!(c.stored_key.len(), 32);
        assert_eq!(c.server_key.len(), 32);
        assert_eq!(unhex(&hex(&c.server_key)).unwrap(), c.server_key);
    }

    #[test]
    fn alterations_follow_kafkas_rules_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> = Arc::new(crate::storage::DiskStorage);
        let path = dir.path().join("scram");
        let s = ScramStore::open(storage.clone(), path.clone()).unwrap();
        let up = |user: &str, mechanism: i8, iterations: i32| Alteration::Upsert {
            user: user.into(),
            mechanism,
            iterations,
            salt: b"salt".to_vec(),
            salted_password: b"salted".to_vec(),
        };
        let r = s.alter(vec![
            up("alice", 1, 8192),
            up("bob", 1, 100),
            up("carol", 9, 8192),
            up("dave", 1, 8192),
            Alteration::Delete {
                user: "dave".into(),
                mechanism: 1,
            },
            Alteration::Delete {
                user: "erin".into(),
                mechanism: 2,
            },
        ]);
        let codes: Vec<(&str, i16)> = r
            .iter()
            .map(|(u, r)| (u.as_str(), r.as_ref().map_or_else(|e| e.0, |_| 0)))
            .collect();
        assert_eq!(
            codes,
            vec![
                ("alice", 0),
                ("bob", 93),
                ("carol", 33),
                ("dave", 92),
                ("erin", 91)
            ]
        );
        s.set_password("alice", Mechanism::Sha512, "secret", 4096)
            .unwrap();
        let s = ScramStore::open(storage, path).unwrap();
        let d = s.describe(Some(vec!["alice".into(), "dave".into()]));
        assert_eq!(d[0].1.as_ref().unwrap(), &vec![(1, 8192), (2, 4096)]);
        assert_eq!(d[1].1.as_ref().unwrap_err().0, 91);
        let c = s.get("alice", Mechanism::Sha512).unwrap();
        let salted = Mechanism::Sha512.salted_password(b"secret", &c.salt, 4096);
        assert_eq!(
            c,
            Credential::from_salted(Mechanism::Sha512, &c.salt, 4096, &salted)
        );
    }
}
