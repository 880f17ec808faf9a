//! Starting and stopping an embedded cluster.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::state::{BrokerInfo, ClusterConfig, ClusterState};
use crate::{server, BrokerError};

/// Builds a [`Cluster`].
///
/// ```no_run
/// # async fn f() -> Result<(), kafkit_broker::BrokerError> {
/// let cluster = kafkit_broker::Cluster::builder().brokers(3).start().await?;
/// println!("bootstrap: {}", cluster.bootstrap());
/// cluster.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    brokers: usize,
    host: String,
    port_base: u16,
    config: ClusterConfig,
}

impl Default for ClusterBuilder {
    fn default() -> Self {
        Self {
            brokers: 3,
            host: "127.0.0.1".into(),
            port_base: 0,
            config: ClusterConfig::default(),
        }
    }
}

impl ClusterBuilder {
    /// The listeners' security (see [`crate::auth::Security`]).
    pub fn security(mut self, security: crate::auth::Security) -> Self {
        self.config.security = security;
        self
    }

    /// Kafka's `security.protocol` for every listener (default PLAINTEXT). SSL and SASL_SSL
    /// use a self-signed certificate unless [`tls_cert`](Self::tls_cert) gives one; its CA is
    /// `<data_dir>/tls/ca.pem` ([`Cluster::tls_ca`]).
    pub fn security_protocol(mut self, protocol: kafkit_protocol::sasl::SecurityProtocol) -> Self {
        self.config.security.protocol = protocol;
        self
    }

    /// The listeners' certificate chain and key (PEM files).
    pub fn tls_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.config.security.tls = Some(crate::auth::TlsSource::Files {
            cert: cert.into(),
            key: key.into(),
        });
        self
    }

    /// A user for SASL (PLAIN and SCRAM-SHA-256/512), stored as SCRAM credentials.
    pub fn sasl_user(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.config
            .security
            .users
            .push((user.into(), password.into()));
        self
    }

    /// Number of brokers (default 3).
    pub fn brokers(mut self, n: usize) -> Self {
        self.brokers = n;
        self
    }
    /// First port; broker `i` listens on `port_base + i`. 0 (default) picks free ports.
    pub fn port_base(mut self, port: u16) -> Self {
        self.port_base = port;
        self
    }
    /// Host to bind and advertise (default 127.0.0.1).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }
    /// Directory for data; without one, a temporary directory is used and removed on shutdown.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.data_dir = Some(dir.into());
        self
    }
    /// Partitions of auto-created topics (default 3).
    pub fn default_partitions(mut self, n: i32) -> Self {
        self.config.default_partitions = n;
        self
    }
    /// Whether unknown topics are created on first use (default true).
    pub fn auto_create_topics(mut self, on: bool) -> Self {
        self.config.auto_create_topics = on;
        self
    }
    /// Largest accepted record batch in bytes (default 1 MiB + 12).
    pub fn message_max_bytes(mut self, n: usize) -> Self {
        self.config.message_max_bytes = n;
        self
    }
    /// Replication factor of auto-created topics (default: 3, or fewer brokers).
    pub fn default_replication_factor(mut self, rf: i16) -> Self {
        self.config.default_replication_factor = Some(rf);
        self
    }
    /// `min.insync.replicas` for acks=-1 writes (default 1).
    pub fn min_insync_replicas(mut self, n: usize) -> Self {
        self.config.min_insync_replicas = n;
        self
    }
    /// How long a follower may lag before it leaves the ISR (default 10 s).
    pub fn replica_lag_time_max(mut self, d: Duration) -> Self {
        self.config.replica_lag_time_max = d;
        self
    }
    /// Segment size, retention and sync policy of partition logs.
    pub fn log_config(mut self, log: crate::log::LogConfig) -> Self {
        self.config.log = log;
        self
    }
    /// Wait for more members when a group forms (default 0).
    pub fn group_initial_rebalance_delay(mut self, d: Duration) -> Self {
        self.config.group_initial_rebalance_delay = d;
        self
    }

    /// Where the cluster stores everything (default: the real filesystem). A
    /// [`FaultyStorage`](crate::storage::FaultyStorage) gives tests a full disk and failing
    /// writes on demand.
    pub fn storage(mut self, storage: impl crate::storage::Storage + 'static) -> Self {
        self.config.storage = Arc::new(storage);
        self
    }

    /// Any other setting of [`ClusterConfig`](crate::ClusterConfig) (limits, timeouts, ...).
    pub fn configure(mut self, f: impl FnOnce(&mut crate::ClusterConfig)) -> Self {
        f(&mut self.config);
        self
    }

    /// Binds every broker's listener, opens the data directory and starts serving.
    pub async fn start(self) -> Result<Cluster, BrokerError> {
        if self.brokers == 0 {
            return Err(BrokerError::Config(
                "brokers: at least one broker is needed".into(),
            ));
        }
        if self.config.default_partitions < 1 {
            return Err(BrokerError::Config(
                "default_partitions: must be at least 1".into(),
            ));
        }
        let mut listeners = Vec::new();
        let mut infos = Vec::new();
        for i in 0..self.brokers {
            let port = if self.port_base == 0 {
                0
            } else {
                self.port_base + i as u16
            };
            let addr = format!("{}:{}", self.host, port);
            let l = TcpListener::bind(&addr)
                .await
                .map_err(|source| BrokerError::Bind {
                    addr: addr.clone(),
                    source,
                })?;
            let local = l.local_addr()?;
            infos.push(BrokerInfo {
                id: i as i32 + 1,
                host: self.host.clone(),
                port: local.port(),
            });
            listeners.push(l);
        }
        let (temp, data_dir) = match &self.config.data_dir {
            Some(d) => (None, d.clone()),
            None => {
                let t = tempfile_dir()?;
                let p = t.clone();
                (Some(t), p)
            }
        };
        let state = Arc::new(ClusterState::open(self.config, data_dir, infos.clone())?);
        let (security, tls_ca) = crate::auth::setup(
            &state.config.security,
            &state.data_dir,
            &self.host,
            &state.scram,
        )
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidInput => BrokerError::Config(e.to_string()),
            _ => BrokerError::Io(e),
        })?;
        let (tx, rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        for (l, info) in listeners.into_iter().zip(&infos) {
            tasks.spawn(server::run(
                l,
                info.id,
                state.clone(),
                rx.clone(),
                security.clone(),
            ));
        }
        tasks.spawn(crate::replication::run(state.clone(), rx.clone()));
        tasks.spawn(maintenance(state.clone(), rx.clone()));
        // Drives group timeouts (session expiry, rebalance deadlines).
        let ticker = state.clone();
        let mut trx = rx.clone();
        tasks.spawn(async move {
            let mut iv = tokio::time::interval(Duration::from_millis(50));
            loop {
                tokio::select! {
                    _ = iv.tick() => {}
                    _ = trx.changed() => break,
                }
                let mut g = ticker.groups.lock().expect("groups lock");
                let actions = g.coordinator.tick(std::time::Instant::now());
                g.dispatch(actions);
            }
        });
        tracing::info!(target: "kafkit::broker", brokers = infos.len(), data_dir = %state.data_dir.display(), security_protocol = %security.protocol, "cluster started");
        Ok(Cluster {
            tls_ca,
            state,
            brokers: infos,
            shutdown: tx,
            tasks,
            temp_dir: temp,
        })
    }
}

/// Periodic log work: syncs (for `SyncPolicy::Interval`) and retention.
async fn maintenance(state: Arc<ClusterState>, mut shutdown: watch::Receiver<bool>) {
    let sync_every = match state.config.log.sync {
        crate::log::SyncPolicy::Interval(d) => Some(d.max(Duration::from_millis(10))),
        _ => None,
    };
    let retention_every = Duration::from_secs(5);
    let mut last_retention = tokio::time::Instant::now();
    loop {
        let wait = sync_every.unwrap_or(retention_every).min(retention_every);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
        if sync_every.is_some() {
            let s = state.clone();
            let _ = tokio::task::spawn_blocking(move || s.flush_all()).await;
        }
        if last_retention.elapsed() >= retention_every {
            last_retention = tokio::time::Instant::now();
            let s = state.clone();
            let _ = tokio::task::spawn_blocking(move || s.enforce_retention()).await;
        }
    }
}

fn tempfile_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("kafkit-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A running embedded cluster.
#[derive(Debug)]
pub struct Cluster {
    tls_ca: Option<PathBuf>,
    state: Arc<ClusterState>,
    brokers: Vec<BrokerInfo>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    temp_dir: Option<PathBuf>,
}

impl Cluster {
    /// The self-signed CA's PEM file clients should trust (`<data_dir>/tls/ca.pem`), when the
    /// listeners use TLS with a self-signed certificate.
    pub fn tls_ca(&self) -> Option<&std::path::Path> {
        self.tls_ca.as_deref()
    }

    /// The listeners' security protocol.
    pub fn security_protocol(&self) -> kafkit_protocol::sasl::SecurityProtocol {
        self.state.config.security.protocol
    }

    /// A builder with defaults: 3 brokers on free ports of 127.0.0.1, temporary data.
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder::default()
    }

    /// Comma-separated `host:port` of every broker.
    pub fn bootstrap(&self) -> String {
        self.addrs().join(",")
    }

    /// `host:port` of every broker.
    pub fn addrs(&self) -> Vec<String> {
        self.brokers
            .iter()
            .map(|b| format!("{}:{}", b.host, b.port))
            .collect()
    }

    /// Where data is kept.
    pub fn data_dir(&self) -> PathBuf {
        self.state.data_dir.clone()
    }

    /// Creates a topic with the default replication factor; an existing topic is an error.
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<(), BrokerError> {
        self.create_topic_with(name, partitions, -1)
    }

    /// Creates a topic with `replication_factor` replicas per partition (-1: the default).
    pub fn create_topic_with(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
    ) -> Result<(), BrokerError> {
        self.state
            .create_topic(name, partitions, replication_factor)
            .map(|_| ())
            .map_err(|e| BrokerError::Config(format!("topic {name}: {e:?}")))
    }

    /// Creates a topic unless it exists.
    pub fn ensure_topic(&self, name: &str, partitions: i32) -> Result<(), BrokerError> {
        match self.state.create_topic(name, partitions, -1) {
            Ok(_) | Err(crate::state::CreateTopicError::AlreadyExists) => Ok(()),
            Err(e) => Err(BrokerError::Config(format!("topic {name}: {e:?}"))),
        }
    }

    /// Leader node id and high watermark of each partition of a topic.
    pub fn partitions(&self, topic: &str) -> Option<Vec<(i32, i64)>> {
        self.state.topic(topic).map(|t| {
            t.partitions
                .iter()
                .map(|p| {
                    let inner = p.lock();
                    (inner.leader, inner.high_watermark)
                })
                .collect()
        })
    }

    /// The fault-injection handle.
    pub fn control(&self) -> crate::control::Control {
        crate::control::Control {
            state: self.state.clone(),
        }
    }

    /// Incremental fetch sessions (KIP-227) the brokers hold now, in all.
    pub fn fetch_sessions(&self) -> usize {
        self.state
            .fetch_sessions
            .values()
            .map(|c| c.lock().expect("fetch sessions lock").len())
            .sum()
    }

    /// Committed offset of a group for a partition.
    pub fn committed_offset(&self, group: &str, topic: &str, partition: i32) -> Option<i64> {
        self.state
            .offsets
            .get(group, topic, partition)
            .map(|c| c.offset)
    }

    /// Stops at once, as a machine crash would: every byte the logs had not synced is dropped,
    /// nothing is flushed. Start a cluster on the same data directory to watch it recover.
    pub async fn crash(mut self) {
        let _ = self.shutdown.send(true);
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        self.state.simulate_crash();
        tracing::warn!(target: "kafkit::broker", "cluster crashed (simulated): unsynced data dropped");
        self.temp_dir = None; // keep the data for the restart
    }

    /// Stops accepting, closes connections, waits for tasks and flushes every log to disk.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        let drain = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(10), drain)
            .await
            .is_err()
        {
            tracing::warn!(target: "kafkit::broker", "shutdown: tasks did not finish in 10 s; aborting them");
            self.tasks.abort_all();
        }
        self.state.flush_all();
        tracing::info!(target: "kafkit::broker", "cluster stopped, data flushed");
        if let Some(t) = self.temp_dir.take() {
            let _ = std::fs::remove_dir_all(t);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.temp_dir.take() {
            let _ = std::fs::remove_dir_all(t);
        }
    }
}
