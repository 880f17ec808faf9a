//! Kafka's topic-level config names and what their values may be, for CreateTopics (and the
//! config APIs): an unknown name or a value of the wrong kind is INVALID_CONFIG (40), and
//! nothing is created — as Kafka's `LogConfig.validate` does.
//!
//! Accepting a name is not honouring it: the cluster applies `max.message.bytes`,
//! `min.insync.replicas`, `retention.ms`, `retention.bytes`, `segment.bytes`, `segment.ms` and
//! `cleanup.policy` (`ClusterState::log_config_for` and friends); the others are validated,
//! kept and shown (docs/COMPATIBILITY.md). `cleanup.policy=compact` is accepted: there is no
//! compaction, but a policy without `delete` turns retention off, so the latest value of every
//! key stays readable.

/// What a config's value must be.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// An integer at least this.
    Int(i64),
    /// A number from 0 to 1.
    Ratio,
    /// `true` or `false`.
    Bool,
    /// One of these (case-sensitive, as Kafka).
    OneOf(&'static [&'static str]),
    /// A comma-separated list of these.
    ListOf(&'static [&'static str]),
    /// Anything (lists of replicas, versions).
    Any,
}

/// Kafka 3.9's topic configs (`TopicConfig`), with their value kinds.
const CONFIGS: &[(&str, Kind)] = &[
    ("cleanup.policy", Kind::ListOf(&["delete", "compact"])),
    (
        "compression.type",
        Kind::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
    ),
    ("compression.gzip.level", Kind::Int(-1)),
    ("compression.lz4.level", Kind::Int(1)),
    ("compression.zstd.level", Kind::Int(-131_072)),
    ("delete.retention.ms", Kind::Int(0)),
    ("file.delete.delay.ms", Kind::Int(0)),
    ("flush.messages", Kind::Int(1)),
    ("flush.ms", Kind::Int(0)),
    ("follower.replication.throttled.replicas", Kind::Any),
    ("index.interval.bytes", Kind::Int(0)),
    ("leader.replication.throttled.replicas", Kind::Any),
    ("local.retention.bytes", Kind::Int(-2)),
    ("local.retention.ms", Kind::Int(-2)),
    ("max.compaction.lag.ms", Kind::Int(1)),
    ("max.message.bytes", Kind::Int(0)),
    ("message.downconversion.enable", Kind::Bool),
    ("message.format.version", Kind::Any),
    ("message.timestamp.after.max.ms", Kind::Int(0)),
    ("message.timestamp.before.max.ms", Kind::Int(0)),
    ("message.timestamp.difference.max.ms", Kind::Int(0)),
    (
        "message.timestamp.type",
        Kind::OneOf(&["CreateTime", "LogAppendTime"]),
    ),
    ("min.cleanable.dirty.ratio", Kind::Ratio),
    ("min.compaction.lag.ms", Kind::Int(0)),
    ("min.insync.replicas", Kind::Int(1)),
    ("preallocate", Kind::Bool),
    ("remote.log.copy.disable", Kind::Bool),
    ("remote.log.delete.on.disable", Kind::Bool),
    ("remote.storage.enable", Kind::Bool),
    ("retention.bytes", Kind::Int(-1)),
    ("retention.ms", Kind::Int(-1)),
    ("segment.bytes", Kind::Int(14)),
    ("segment.index.bytes", Kind::Int(4)),
    ("segment.jitter.ms", Kind::Int(0)),
    ("segment.ms", Kind::Int(1)),
    ("unclean.leader.election.enable", Kind::Bool),
];

/// Checks one topic config: `Err` carries the message for INVALID_CONFIG.
pub fn validate(name: &str, value: Option<&str>) -> Result<(), String> {
    let Some(&(_, kind)) = CONFIGS.iter().find(|(n, _)| *n == name) else {
        return Err(format!("Unknown topic config name: {name}"));
    };
    // A null value means "the default".
    let Some(value) = value else {
        return Ok(());
    };
    let v = value.trim();
    let ok = match kind {
        Kind::Int(min) => v.parse::<i64>().is_ok_and(|n| n >= min),
        Kind::Ratio => v.parse::<f64>().is_ok_and(|x| (0.0..=1.0).contains(&x)),
        Kind::Bool => v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false"),
        Kind::OneOf(allowed) => allowed.contains(&v),
        Kind::ListOf(allowed) => v.split(',').all(|x| allowed.contains(&x.trim())),
        Kind::Any => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("Invalid value {value} for configuration {name}"))
    }
}

/// Dynamic broker configs that are the broker-wide default of a topic config (Kafka's
/// synonyms): a topic without an override of its own uses the value set for the broker that
/// holds the replica (or leads the partition), else the cluster-wide default, else the
/// cluster's static setting. These are applied wherever the topic config is.
const BROKER_SYNONYMS: &[(&str, &str)] = &[
    ("log.cleanup.policy", "cleanup.policy"),
    ("log.retention.ms", "retention.ms"),
    ("log.retention.bytes", "retention.bytes"),
    ("log.segment.bytes", "segment.bytes"),
    ("log.roll.ms", "segment.ms"),
    ("message.max.bytes", "max.message.bytes"),
    ("min.insync.replicas", "min.insync.replicas"),
    ("compression.type", "compression.type"),
    ("log.message.timestamp.type", "message.timestamp.type"),
    ("log.flush.interval.ms", "flush.ms"),
    ("log.flush.interval.messages", "flush.messages"),
    ("log.preallocate", "preallocate"),
    (
        "unclean.leader.election.enable",
        "unclean.leader.election.enable",
    ),
];

/// Dynamic broker configs Kafka accepts that have no counterpart in the embedded cluster
/// (its threads are tokio's; its listeners are PLAINTEXT): recorded and described, no effect.
const BROKER_NO_COUNTERPART: &[&str] = &[
    "background.threads",
    "num.io.threads",
    "num.network.threads",
    "num.replica.fetchers",
    "num.recovery.threads.per.data.dir",
    "log.cleaner.threads",
];

/// The dynamic broker config that is the default of topic config `topic_name`.
pub fn broker_synonym(topic_name: &str) -> Option<&'static str> {
    BROKER_SYNONYMS
        .iter()
        .find(|(_, t)| *t == topic_name)
        .map(|(b, _)| *b)
}

/// The topic config a dynamic broker config is the default of.
pub fn topic_synonym(broker_name: &str) -> Option<&'static str> {
    BROKER_SYNONYMS
        .iter()
        .find(|(b, _)| *b == broker_name)
        .map(|(_, t)| *t)
}

/// Checks one dynamic broker config (AlterConfigs on a BROKER resource): `Err` carries the
/// message for INVALID_CONFIG. Security settings (`ssl.*`, `sasl.*`, `listener.name.*`) are
/// accepted as Kafka does and recorded; the listeners they would configure do not exist yet.
pub fn validate_broker(name: &str, value: Option<&str>) -> Result<(), String> {
    if let Some(topic_name) = topic_synonym(name) {
        return validate(topic_name, value).map_err(|e| e.replace(topic_name, name));
    }
    if BROKER_NO_COUNTERPART.contains(&name) {
        return match value {
            Some(v) if v.trim().parse::<i64>().map_or(true, |n| n < 1) => {
                Err(format!("Invalid value {v} for configuration {name}"))
            }
            _ => Ok(()),
        };
    }
    if ["ssl.", "sasl.", "listener.name."]
        .iter()
        .any(|p| name.starts_with(p))
    {
        return Ok(());
    }
    Err(format!(
        "{name} is not a dynamic broker config of kafkit's embedded cluster (the others are \
         set when it starts: ClusterConfig)"
    ))
}

#[cfg(test)]
mod tests {
    use super::{validate, validate_broker};

    #[test]
    fn broker_configs_are_checked() {
        assert!(validate_broker("log.cleanup.policy", Some("compact")).is_ok());
        assert!(validate_broker("log.cleanup.policy", Some("forever")).is_err());
        assert!(validate_broker("background.threads", Some("9")).is_ok());
        assert!(validate_broker("background.threads", Some("0")).is_err());
        assert!(validate_broker("sasl.kerberos.min.time.before.relogin", Some("1")).is_ok());
        let e = validate_broker("log.dirs", Some("/x")).unwrap_err();
        assert!(e.contains("log.dirs"), "{e}");
    }

    #[test]
    fn names_and_values_are_checked() {
        assert!(validate("retention.ms", Some("86400000")).is_ok());
        assert!(validate("retention.ms", Some("-1")).is_ok());
        assert!(validate("retention.ms", Some("soon")).is_err());
        assert!(validate("cleanup.policy", Some("compact,delete")).is_ok());
        assert!(validate("cleanup.policy", Some("forever")).is_err());
        assert!(validate("min.insync.replicas", Some("0")).is_err());
        assert!(validate("preallocate", Some("TRUE")).is_ok());
        assert!(validate("segment.bytes", None).is_ok());
        let e = validate("no.such.config", Some("1")).unwrap_err();
        assert!(e.contains("no.such.config"), "{e}");
    }
}
