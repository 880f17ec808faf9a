//! The consumer.
//!
//! With a `group_id`, a background task keeps the reader a member of its consumer group: find
//! the coordinator, JoinGroup (offering `group_balancers` in preference order), the leader
//! assigns with the protocol the group chose (range, roundrobin or cooperative-sticky),
//! SyncGroup, fetch the committed offsets (or `start_offset` where there are none), hand the
//! new partitions to the fetch loops (one per broker, see `fetch`), heartbeat.
//!
//! ## Rebalances
//! * Eager protocols (range, roundrobin): when the group rebalances, every partition is
//!   revoked before rejoining — fetchers stop, prefetched messages are dropped (they were not
//!   committed, so the next owner reads them), what the application processed is committed.
//! * cooperative-sticky (KIP-429): the reader rejoins while its fetchers keep running, and only
//!   the partitions the new assignment takes away are revoked (then it rejoins once more so the
//!   group can hand them to their new owner). Partitions that keep their owner flow through the
//!   rebalance.
//!
//! Either way nothing from a revoked partition is returned after the revocation: every
//! prefetched message carries its partition's fetch epoch, and revoking retires the epoch.
//!
//! ## When offsets are committed
//! * [`Reader::read_message`] with `commit_interval` zero (the default) commits a message
//!   when the application asks for the *next* one (or calls [`Reader::close`]): returning from
//!   `read_message` is not taken as "processed". A crash while processing a message therefore
//!   redelivers it (at-least-once), unlike kafka-go's `ReadMessage`, which commits before the
//!   application has the message. With a positive `commit_interval` the previous message is
//!   marked instead, and marked offsets are committed every interval, before partitions are
//!   revoked, and on close.
//! * [`Reader::fetch_message`] never commits; [`Reader::commit_messages`] commits exactly the
//!   messages given (offset + 1 per partition) and returns the broker's verdict.
//!
//! A [`RebalanceListener`] (`rebalance_listener`) hears `on_assigned`, `on_revoked` and
//! `on_lost` and is awaited, so an application that commits by hand commits before its
//! partitions move.
//!
//! Prefetch is bounded by bytes (`max_buffered_bytes`, `max_partition_bytes`) and messages
//! (`queue_capacity`) over all partitions, so memory stays bounded when the application is slow,
//! whatever the partition count.

pub mod assign;
mod fetch;
mod group;
mod listener;
mod membership;
mod offsets;

use group::group_loop;
use offsets::{commit_processed, list_offset};

pub use listener::{Listener, ListenerFuture, Rebalance, RebalanceListener};

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};

use crate::cluster::ClusterClient;
use crate::config::ReaderConfig;
use crate::conn::{ConnConfig, Connection};
use crate::error::{Error, Result};
use crate::message::Message;

/// A topic-partition: the topic's index in the reader's topic list, and the partition.
type Tp = (usize, i32);

/// Prefetched messages of one partition, or a partition's fatal error, with the fetch epoch
/// they belong to.
enum Fetched {
    Batch(fetch::Batch),
    Error { tp: Tp, epoch: u64, error: Error },
}

#[derive(Default)]
struct Session {
    /// Connection to the coordinator for JoinGroup, SyncGroup, Heartbeat.
    conn: Option<Arc<Connection>>,
    /// A second connection for commits: a broker answers a connection's requests in order, so
    /// a commit sent behind a JoinGroup that waits for the other members would wait as long.
    commit_conn: Option<Arc<Connection>>,
    generation: i32,
    member_id: String,
    /// Partitions being fetched, with the offset fetching started at.
    assignment: BTreeMap<Tp, i64>,
}

struct Shared {
    config: ReaderConfig,
    /// The topics read: `group_topics`, or `topic` alone.
    topics: Vec<String>,
    client: ClusterClient,
    next_epoch: AtomicU64,
    /// Fetch epoch of every partition being read; messages of other epochs are dropped.
    epochs: Mutex<HashMap<Tp, u64>>,
    /// Bumped after every change to `epochs`: the application's end re-checks its batch's
    /// epoch only when this moved (not once per message).
    epoch_changes: AtomicU64,
    session: Mutex<Session>,
    /// Processed but not yet committed: partition → next offset.
    processed: Mutex<BTreeMap<Tp, i64>>,
    /// Next offset the application gets, per partition (for `lag`); the application's end
    /// keeps its batch's counter and stores into it without taking this lock.
    positions: Mutex<BTreeMap<Tp, Arc<AtomicI64>>>,
    /// High watermark from the latest fetch response, per partition.
    high_watermarks: Mutex<BTreeMap<Tp, i64>>,
    counters: Counters,
    /// The broker fetch loops and the buffer accounting.
    fetch: fetch::Fetcher,
    tx: mpsc::UnboundedSender<Fetched>,
}

impl Shared {
    /// Starts a new fetch epoch for `partition`: messages fetched under older ones are dropped.
    fn new_epoch(&self, tp: Tp) -> u64 {
        let e = self.next_epoch.fetch_add(1, Ordering::AcqRel) + 1;
        self.epochs.lock().expect("epochs lock").insert(tp, e);
        self.epoch_changes.fetch_add(1, Ordering::AcqRel);
        e
    }

    /// Nothing fetched for `tp` so far is delivered any more.
    fn retire(&self, tp: Tp) {
        self.epochs.lock().expect("epochs lock").remove(&tp);
        self.epoch_changes.fetch_add(1, Ordering::AcqRel);
    }

    fn is_current(&self, tp: Tp, epoch: u64) -> bool {
        self.epochs.lock().expect("epochs lock").get(&tp) == Some(&epoch)
    }

    /// Sets the next offset the application gets from `tp`.
    fn set_position(&self, tp: Tp, offset: i64) {
        self.position(tp).store(offset, Ordering::Release);
    }

    /// The counter holding `tp`'s position.
    fn position(&self, tp: Tp) -> Arc<AtomicI64> {
        let mut positions = self.positions.lock().expect("positions lock");
        positions
            .entry(tp)
            .or_insert_with(|| Arc::new(AtomicI64::new(-1)))
            .clone()
    }

    fn topic_index(&self, topic: &str) -> Option<usize> {
        self.topics.iter().position(|t| t == topic)
    }
}

#[derive(Default)]
struct Counters {
    messages: AtomicU64,
    bytes: AtomicU64,
    fetches: AtomicU64,
    fetch_errors: AtomicU64,
    rebalances: AtomicU64,
    commits: AtomicU64,
}

/// What a reader has done so far (kafka-go's `Reader.Stats()`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReaderStats {
    /// Messages handed to the application.
    pub messages: u64,
    /// Key + value + header bytes handed to the application.
    pub bytes: u64,
    /// Fetch responses received.
    pub fetches: u64,
    /// Fetches that failed (retried).
    pub fetch_errors: u64,
    /// Group generations joined.
    pub rebalances: u64,
    /// Successful offset commits.
    pub commits: u64,
    /// Sum of [`Reader::lag`] over the assigned partitions.
    pub lag: i64,
    /// Bytes of fetched records waiting for the application now (at most about
    /// `max_buffered_bytes` plus one fetch response).
    pub buffered_bytes: u64,
}

/// Reads messages from a topic, alone or as a member of a consumer group (the tutorial's
/// `kafka.Reader`).
///
/// ```no_run
/// # async fn f() -> kafkit::Result<()> {
/// use kafkit::{Reader, ReaderConfig};
/// let r = Reader::new(ReaderConfig {
///     brokers: vec!["localhost:9093".into()],
///     topic: "message-log".into(),
///     group_id: Some("my-group".into()),
///     ..Default::default()
/// })?;
/// let msg = r.read_message().await?;
/// println!("received: {:?}", msg.value);
/// r.close().await?;
/// # Ok(()) }
/// ```
pub struct Reader {
    shared: Arc<Shared>,
    /// The batch being handed out. A plain lock, held for one `pop`: the per-message path
    /// takes no async lock.
    current: Mutex<Current>,
    /// Where batches arrive; held (across `await`) only by the caller waiting for the next.
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Fetched>>,
    last: Mutex<Option<Message>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    close_tx: watch::Sender<bool>,
    seek_tx: watch::Sender<Option<i64>>,
}

/// The application's end of the queue: the batch being handed out, message by message.
#[derive(Default)]
struct Current {
    batch: Option<fetch::Batch>,
    /// `epoch_changes` when the batch's epoch was last found current.
    checked: u64,
    /// The batch's partition's position counter.
    position: Option<Arc<AtomicI64>>,
}

impl Current {
    /// Gives the current batch's accounting back (used up or dropped).
    fn release(&mut self, shared: &Shared) {
        if let Some(b) = self.batch.take() {
            shared.fetch.release(b.tp, b.count, b.bytes);
        }
        self.position = None;
    }

    /// The next message of the current batch, if it still belongs to its partition's epoch.
    fn pop(&mut self, shared: &Shared) -> Option<Message> {
        loop {
            let b = self.batch.as_mut()?;
            let changes = shared.epoch_changes.load(Ordering::Acquire);
            if changes != self.checked {
                if !shared.is_current(b.tp, b.epoch) {
                    self.release(shared); // fetched before a revocation or a seek
                    continue;
                }
                self.checked = changes;
            }
            let Some(m) = b.msgs.pop_front() else {
                self.release(shared);
                continue;
            };
            if let Some(p) = &self.position {
                p.store(m.offset + 1, Ordering::Release);
            }
            if b.msgs.is_empty() {
                self.release(shared);
            }
            let c = &shared.counters;
            c.messages.fetch_add(1, Ordering::Relaxed);
            c.bytes.fetch_add(m.size() as u64, Ordering::Relaxed);
            return Some(m);
        }
    }

    /// Makes `b` the batch handed out next.
    fn install(&mut self, shared: &Shared, b: fetch::Batch) {
        self.release(shared);
        self.position = Some(shared.position(b.tp));
        self.checked = shared.epoch_changes.load(Ordering::Acquire);
        if !shared.is_current(b.tp, b.epoch) {
            shared.fetch.release(b.tp, b.count, b.bytes);
            self.position = None;
            return;
        }
        self.batch = Some(b);
    }
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("topics", &self.shared.topics)
            .field("group_id", &self.shared.config.group_id)
            .finish()
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        // A reader dropped without `close` still leaves its group (in the background).
        self.close_tx.send_replace(true);
    }
}

impl Reader {
    /// Validates the config and starts the reader (group membership or partition fetcher) in the
    /// background. Must be called inside a tokio runtime.
    pub fn new(config: ReaderConfig) -> Result<Self> {
        config.validate()?;
        let client = ClusterClient::new(
            config.brokers.clone(),
            ConnConfig {
                client_id: config.client_id.clone(),
                dial_timeout: config.dial_timeout,
                security: Arc::new(config.security.clone().into()),
                request_timeout: Duration::from_secs(30),
            },
            true,
        );
        // Unbounded in items, bounded by the fetch loops' accounting (max_buffered_bytes,
        // queue_capacity, max_partition_bytes): see `fetch`.
        let (tx, rx) = mpsc::unbounded_channel();
        let topics = if config.group_topics.is_empty() {
            vec![config.topic.clone()]
        } else {
            config.group_topics.clone()
        };
        let fetch = fetch::Fetcher::new(
            config.max_buffered_bytes,
            config.queue_capacity,
            config.max_partition_bytes,
        );
        let shared = Arc::new(Shared {
            topics,
            config,
            client,
            next_epoch: AtomicU64::new(0),
            epochs: Mutex::new(HashMap::new()),
            epoch_changes: AtomicU64::new(0),
            session: Mutex::new(Session::default()),
            processed: Mutex::new(BTreeMap::new()),
            positions: Mutex::new(BTreeMap::new()),
            high_watermarks: Mutex::new(BTreeMap::new()),
            counters: Counters::default(),
            fetch,
            tx,
        });
        let (close_tx, close_rx) = watch::channel(false);
        let (seek_tx, seek_rx) = watch::channel(None);
        tokio::spawn(fetch::planner(shared.clone(), close_rx.clone()));
        let task = if shared.config.group_id.is_some() {
            tokio::spawn(group_loop(shared.clone(), close_rx))
        } else {
            tokio::spawn(partition_loop(shared.clone(), close_rx, seek_rx))
        };
        Ok(Self {
            shared,
            current: Mutex::new(Current::default()),
            rx: tokio::sync::Mutex::new(rx),
            last: Mutex::new(None),
            task: Mutex::new(Some(task)),
            close_tx,
            seek_tx,
        })
    }

    /// The next message; blocks until there is one. In a group, the message returned by the
    /// previous call is committed (or marked for the next periodic commit) first; see the
    /// module docs.
    pub async fn read_message(&self) -> Result<Message> {
        let prev = self.last.lock().expect("last lock").take();
        if let Some(prev) = prev {
            self.mark(&prev);
            if self.shared.config.commit_interval.is_zero() {
                if let Err(e) = commit_processed(&self.shared).await {
                    tracing::warn!(target: "kafkit::reader", error = %e, "commit failed; the messages will be delivered again after the rebalance");
                }
            }
        }
        let m = self.fetch_message().await?;
        *self.last.lock().expect("last lock") = Some(m.clone());
        Ok(m)
    }

    /// The next message, without committing anything.
    pub async fn fetch_message(&self) -> Result<Message> {
        loop {
            if let Some(m) = self.current.lock().expect("current lock").pop(&self.shared) {
                return Ok(m);
            }
            let mut rx = self.rx.lock().await;
            // Another caller may have installed a batch while this one waited for `rx`.
            if self.current.lock().expect("current lock").batch.is_some() {
                continue;
            }
            // Cancel-safe: a message is only taken out of the channel by a `recv` that
            // returns, and installed before the next `await`.
            match rx.recv().await.ok_or(Error::Closed)? {
                Fetched::Batch(b) => self
                    .current
                    .lock()
                    .expect("current lock")
                    .install(&self.shared, b),
                Fetched::Error { tp, epoch, error } => {
                    if self.shared.is_current(tp, epoch) {
                        return Err(error);
                    }
                }
            }
        }
    }

    /// The messages as a `Stream` (each item as [`read_message`](Self::read_message) returns
    /// it, so commits follow the same rule); it ends when the reader is closed.
    pub fn stream(&self) -> impl futures_core::Stream<Item = Result<Message>> + '_ {
        futures_util::stream::unfold(self, |r| async move {
            match r.read_message().await {
                Err(Error::Closed) => None,
                other => Some((other, r)),
            }
        })
    }

    /// Marks a message processed without committing now: its offset + 1 is committed by the
    /// next periodic commit (`commit_interval`), before its partition is revoked in a
    /// rebalance, by [`commit_messages`](Self::commit_messages), or on [`close`](Self::close)
    /// (librdkafka's `offsets_store`, franz-go's `MarkCommitRecords`). Marks only move forward.
    pub fn mark(&self, m: &Message) {
        mark(&self.shared, m);
    }

    /// Partitions of the first topic (`topic`, or the first of `group_topics`) assigned to
    /// this reader, with the offsets their fetchers started at (empty while joining). See
    /// [`assignments`](Self::assignments) for all topics.
    pub fn assignment(&self) -> BTreeMap<i32, i64> {
        self.shared
            .session
            .lock()
            .expect("session lock")
            .assignment
            .iter()
            .filter(|((t, _), _)| *t == 0)
            .map(|((_, p), o)| (*p, *o))
            .collect()
    }

    /// Every assigned (topic, partition) with the offset its fetcher started at.
    pub fn assignments(&self) -> BTreeMap<(String, i32), i64> {
        self.shared
            .session
            .lock()
            .expect("session lock")
            .assignment
            .iter()
            .map(|((t, p), o)| ((self.shared.topics[*t].clone(), *p), *o))
            .collect()
    }

    /// Without a group: continue reading `partition` from `offset` (kafka-go's `SetOffset`).
    /// Nothing fetched before the call is returned after it.
    pub fn set_offset(&self, offset: i64) -> Result<()> {
        if self.shared.config.group_id.is_some() {
            return Err(Error::config(
                "group_id",
                "set_offset is for readers without a group (a group decides offsets)",
            ));
        }
        if offset < 0 {
            return Err(Error::config(
                "offset",
                format!("{offset} is negative; use start_offset for first/last"),
            ));
        }
        // A new epoch now, not in the background task: a read right after this call must not
        // return a message prefetched from the old position.
        self.shared.new_epoch((0, self.shared.config.partition));
        self.seek_tx.send_replace(Some(offset));
        Ok(())
    }

    /// Messages between the application's position and the high watermark, per assigned
    /// partition of the first topic (known once a fetch of that partition was answered).
    pub fn lag(&self) -> BTreeMap<i32, i64> {
        self.lags()
            .into_iter()
            .filter(|((t, _), _)| *t == self.shared.topics[0])
            .map(|((_, p), l)| (p, l))
            .collect()
    }

    /// [`lag`](Self::lag) for every assigned (topic, partition).
    pub fn lags(&self) -> BTreeMap<(String, i32), i64> {
        let assignment = self
            .shared
            .session
            .lock()
            .expect("session lock")
            .assignment
            .clone();
        let positions = self.shared.positions.lock().expect("positions lock");
        let hws = self.shared.high_watermarks.lock().expect("hw lock");
        assignment
            .iter()
            .filter_map(|(tp, start)| {
                let hw = *hws.get(tp)?;
                let pos = positions
                    .get(tp)
                    .map_or(*start, |p| p.load(Ordering::Acquire))
                    .max(*start);
                Some(((self.shared.topics[tp.0].clone(), tp.1), (hw - pos).max(0)))
            })
            .collect()
    }

    /// Counters of what this reader has done.
    pub fn stats(&self) -> ReaderStats {
        let c = &self.shared.counters;
        ReaderStats {
            messages: c.messages.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            fetches: c.fetches.load(Ordering::Relaxed),
            fetch_errors: c.fetch_errors.load(Ordering::Relaxed),
            rebalances: c.rebalances.load(Ordering::Relaxed),
            commits: c.commits.load(Ordering::Relaxed),
            lag: self.lags().values().sum(),
            buffered_bytes: self.shared.fetch.buffered_bytes() as u64,
        }
    }

    /// Commits these messages (offset + 1 for each partition's latest) and waits for the answer.
    pub async fn commit_messages(&self, messages: &[Message]) -> Result<()> {
        if self.shared.config.group_id.is_none() {
            return Err(Error::config(
                "group_id",
                "commit_messages needs a consumer group",
            ));
        }
        for m in messages {
            self.mark(m);
        }
        commit_processed(&self.shared).await
    }

    /// Commits the last message returned by `read_message` (and anything marked), leaves the
    /// group (unless it is a static member) and stops. Returns within a few seconds even during
    /// a rebalance.
    pub async fn close(&self) -> Result<()> {
        if let Some(prev) = self.last.lock().expect("last lock").take() {
            self.mark(&prev);
        }
        let _ = self.close_tx.send(true);
        let task = self.task.lock().expect("task lock").take();
        if let Some(mut t) = task {
            if tokio::time::timeout(Duration::from_secs(10), &mut t)
                .await
                .is_err()
            {
                t.abort();
            }
        }
        Ok(())
    }
}

/// Marks `m` processed (see [`Reader::mark`]).
fn mark(shared: &Shared, m: &Message) {
    let Some(t) = shared.topic_index(&m.topic) else {
        return; // not a message of this reader
    };
    let mut p = shared.processed.lock().expect("processed lock");
    let e = p.entry((t, m.partition)).or_insert(m.offset + 1);
    *e = (*e).max(m.offset + 1);
}

fn now_ms_to_time(ms: i64) -> Option<SystemTime> {
    (ms >= 0).then(|| UNIX_EPOCH + Duration::from_millis(ms as u64))
}

/// Without a group: read one partition from `start_offset`, or from where `set_offset` says.
async fn partition_loop(
    shared: Arc<Shared>,
    mut close: watch::Receiver<bool>,
    mut seek: watch::Receiver<Option<i64>>,
) {
    let cfg = &shared.config;
    let p = cfg.partition;
    let tp: Tp = (0, p);
    let mut start = loop {
        if let Some(o) = *seek.borrow_and_update() {
            break o;
        }
        match list_offset(&shared.client, &cfg.topic, p, cfg.start_offset).await {
            Ok(o) => break o,
            Err(e) => {
                tracing::warn!(target: "kafkit::reader", error = %e, "cannot find start offset; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = close.changed() => return,
                    _ = seek.changed() => {}
                }
            }
        }
    };
    loop {
        // A fresh epoch per (re)start: whatever was queued before is dropped.
        let epoch = shared.new_epoch(tp);
        shared.session.lock().expect("session lock").assignment = BTreeMap::from([(tp, start)]);
        shared.set_position(tp, start);
        tracing::info!(target: "kafkit::reader", "initializing kafka reader for partition {p} of {} starting at offset {start}", cfg.topic);
        shared.fetch.assign(tp, start, epoch);
        loop {
            tokio::select! {
                _ = close.changed() => {
                    shared.fetch.unassign(tp);
                    return;
                }
                r = seek.changed() => {
                    if r.is_err() {
                        return;
                    }
                    if let Some(o) = *seek.borrow_and_update() {
                        tracing::info!(target: "kafkit::reader", partition = p, offset = o, "seeking");
                        start = o;
                        break;
                    }
                }
            }
        }
    }
}
