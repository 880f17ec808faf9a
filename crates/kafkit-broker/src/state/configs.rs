//! Dynamic configs ([`DynamicConfigs`]: per-topic overrides and per-broker dynamic configs,
//! as AlterConfigs sets them) and the settings they give a topic's logs (on
//! [`ClusterState`]: they combine them with the static `ClusterConfig` and save them).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use kafkit_protocol::codes;

use super::ClusterState;

/// Config overrides by topic, and dynamic broker configs by broker id ("" for the
/// cluster-wide default).
#[derive(Debug, Default)]
pub struct DynamicConfigs {
    topics: Mutex<HashMap<String, BTreeMap<String, String>>>,
    brokers: Mutex<HashMap<String, BTreeMap<String, String>>>,
}

impl DynamicConfigs {
    /// A topic's overrides.
    pub fn topic(&self, name: &str) -> BTreeMap<String, String> {
        let topics = self.topics.lock().expect("configs lock");
        topics.get(name).cloned().unwrap_or_default()
    }

    /// A broker's dynamic configs ("" for the cluster-wide default).
    pub fn broker(&self, name: &str) -> BTreeMap<String, String> {
        let brokers = self.brokers.lock().expect("configs lock");
        brokers.get(name).cloned().unwrap_or_default()
    }

    /// The value of topic config `key` for `topic` on `broker`: the topic's override, else
    /// the broker's dynamic config of that name (`log.retention.ms` for `retention.ms`...),
    /// else the cluster-wide dynamic default; `None` means the static `ClusterConfig`.
    pub fn setting<T: std::str::FromStr>(&self, topic: &str, key: &str, broker: i32) -> Option<T> {
        let parse = |v: &String| v.trim().parse().ok();
        let topic_value = self
            .topics
            .lock()
            .expect("configs lock")
            .get(topic)
            .and_then(|m| m.get(key))
            .and_then(parse);
        topic_value.or_else(|| {
            let name = crate::topic_config::broker_synonym(key)?;
            let b = self.brokers.lock().expect("configs lock");
            b.get(&broker.to_string())
                .and_then(|m| m.get(name))
                .or_else(|| b.get("").and_then(|m| m.get(name)))
                .and_then(parse)
        })
    }

    pub(super) fn put_topic(&self, name: &str, configs: BTreeMap<String, String>) {
        let mut topics = self.topics.lock().expect("configs lock");
        topics.insert(name.to_owned(), configs);
    }

    pub(super) fn put_broker(&self, name: &str, configs: BTreeMap<String, String>) {
        let mut brokers = self.brokers.lock().expect("configs lock");
        brokers.insert(name.to_owned(), configs);
    }

    /// Forgets a deleted topic's overrides; true if it had some.
    pub(super) fn remove_topic(&self, name: &str) -> bool {
        let mut topics = self.topics.lock().expect("configs lock");
        topics.remove(name).is_some()
    }
}

impl ClusterState {
    /// A topic's config overrides.
    pub fn topic_overrides(&self, name: &str) -> BTreeMap<String, String> {
        self.configs.topic(name)
    }

    /// `max.message.bytes` for a topic on its leader `broker`.
    pub fn max_message_bytes(&self, topic: &str, broker: i32) -> usize {
        self.configs
            .setting(topic, "max.message.bytes", broker)
            .unwrap_or(self.config.message_max_bytes)
    }

    /// True if the topic's `cleanup.policy` on its leader `broker` includes `compact` (records
    /// then need keys).
    pub fn is_compacted(&self, topic: &str, broker: i32) -> bool {
        self.configs
            .setting::<String>(topic, "cleanup.policy", broker)
            .is_some_and(|p| p.contains("compact"))
    }

    /// `min.insync.replicas` for a topic on its leader `broker`.
    pub fn min_insync_replicas(&self, topic: &str, broker: i32) -> usize {
        self.configs
            .setting(topic, "min.insync.replicas", broker)
            .unwrap_or(self.config.min_insync_replicas)
    }

    /// The log settings of `topic`'s replica on `broker`: the cluster's, with the topic's (or
    /// the broker's dynamic) `retention.ms`, `retention.bytes`, `segment.bytes` and
    /// `segment.ms`.
    pub fn log_config_for(&self, topic: &str, broker: i32) -> crate::log::LogConfig {
        let mut c = self.config.log.clone();
        let ms = |v: i64| (v >= 0).then(|| Duration::from_millis(v as u64));
        if let Some(v) = self.configs.setting::<i64>(topic, "retention.ms", broker) {
            c.retention_ms = ms(v);
        }
        if let Some(v) = self
            .configs
            .setting::<i64>(topic, "retention.bytes", broker)
        {
            c.retention_bytes = (v >= 0).then_some(v as u64);
        }
        if let Some(v) = self.configs.setting::<u64>(topic, "segment.bytes", broker) {
            c.segment_bytes = v;
        }
        if let Some(v) = self
            .configs
            .setting::<i64>(topic, "segment.ms", broker)
            .and_then(ms)
        {
            c.segment_ms = v;
        }
        // No compaction here: a policy without "delete" keeps everything (see topic_config).
        let policy: Option<String> = self.configs.setting(topic, "cleanup.policy", broker);
        if policy.is_some_and(|p| !p.contains("delete")) {
            c.retention_ms = None;
            c.retention_bytes = None;
        }
        c
    }

    /// A broker's dynamic config overrides ("" for the cluster-wide default).
    pub fn broker_overrides(&self, name: &str) -> BTreeMap<String, String> {
        self.configs.broker(name)
    }

    /// Replaces the dynamic config overrides of broker `name` (an id, or "" for the
    /// cluster-wide default) after [`crate::topic_config::validate_broker`], saves them and
    /// gives every log its new settings. `Err((code, message))`: INVALID_REQUEST (42) for an
    /// unknown broker, INVALID_CONFIG (40), KAFKA_STORAGE_ERROR (56).
    pub fn set_broker_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), (i16, String)> {
        if !name.is_empty()
            && name
                .parse::<i32>()
                .ok()
                .and_then(|id| self.broker(id))
                .is_none()
        {
            return Err((
                codes::INVALID_REQUEST,
                format!("broker {name} does not exist"),
            ));
        }
        let file = if name.is_empty() { "default" } else { name };
        let Some(configs) = self.check_and_save(
            configs,
            crate::topic_config::validate_broker,
            validate_only,
            "broker-configs",
            file,
        )?
        else {
            return Ok(());
        };
        tracing::info!(target: "kafkit::broker", broker = name, ?configs, "broker configs changed");
        self.configs.put_broker(name, configs);
        let topics = self.topics.names();
        for topic in topics {
            self.apply_log_config(&topic);
        }
        Ok(())
    }

    /// Checks every config with `validate` (INVALID_CONFIG), then, unless `validate_only`,
    /// saves them in `<data_dir>/<dir>/<file>` (KAFKA_STORAGE_ERROR) and gives them back to be
    /// applied.
    fn check_and_save(
        &self,
        configs: BTreeMap<String, String>,
        validate: fn(&str, Option<&str>) -> Result<(), String>,
        validate_only: bool,
        dir: &str,
        file: &str,
    ) -> Result<Option<BTreeMap<String, String>>, (i16, String)> {
        for (k, v) in &configs {
            validate(k, Some(v)).map_err(|m| (codes::INVALID_CONFIG, m))?;
        }
        if validate_only {
            return Ok(None);
        }
        self.save_configs(&self.data_dir.join(dir), file, &configs)
            .map_err(|e| {
                let what = dir.replace('-', " ");
                (codes::KAFKA_STORAGE_ERROR, format!("saving {what}: {e}"))
            })?;
        Ok(Some(configs))
    }

    /// Writes `configs` to `dir/file` (`key=value` lines; no file when empty).
    fn save_configs(
        &self,
        dir: &Path,
        file: &str,
        configs: &BTreeMap<String, String>,
    ) -> std::io::Result<()> {
        let path = dir.join(file);
        if configs.is_empty() {
            match self.config.storage.remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        } else {
            let text: String = configs.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
            self.config
                .storage
                .create_dir_all(dir)
                .and_then(|()| self.config.storage.write_atomic(&path, text.as_bytes()))
        }
    }

    /// Gives every replica log of `topic` its current log settings.
    fn apply_log_config(&self, topic: &str) {
        if let Some(t) = self.topic(topic) {
            for p in &t.partitions {
                for (&broker, log) in p.lock().logs.iter_mut() {
                    log.set_config(self.log_config_for(topic, broker));
                }
            }
        }
    }

    /// Replaces a topic's config overrides (after [`crate::topic_config`] checks), saves them
    /// and applies the ones this cluster honours. `Err((code, message))`: UNKNOWN_TOPIC (3),
    /// INVALID_CONFIG (40), KAFKA_STORAGE_ERROR (56).
    pub fn set_topic_configs(
        &self,
        topic: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), (i16, String)> {
        if self.topic(topic).is_none() {
            return Err((
                codes::UNKNOWN_TOPIC_OR_PARTITION,
                format!("topic {topic} does not exist"),
            ));
        }
        let Some(configs) = self.check_and_save(
            configs,
            crate::topic_config::validate,
            validate_only,
            "topic-configs",
            topic,
        )?
        else {
            return Ok(());
        };
        tracing::info!(target: "kafkit::broker", topic, ?configs, "topic configs changed");
        self.configs.put_topic(topic, configs);
        self.apply_log_config(topic);
        Ok(())
    }
}
