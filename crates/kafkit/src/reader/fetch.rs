//! Fetching: one loop per broker, as librdkafka, franz-go and the Java client do.
//!
//! Each broker that leads assigned partitions gets one loop with its own connection (a
//! long-poll Fetch holds a connection's answers for up to `max_wait`, since a broker answers a
//! connection's requests in order; the Java consumer keeps its coordinator traffic apart for
//! the same reason). One Fetch request carries every fetchable partition that broker leads,
//! with `max_partition_bytes` per partition and `max_bytes` for the response, inside an
//! incremental fetch session (KIP-227, [`ClientSession`]) so a steady state sends only the
//! partitions whose position moved. A planner task starts loops for the leaders of the
//! assigned partitions and refreshes metadata when a leader is unknown or has moved.
//!
//! Memory is bounded by configuration, not by partition count: fetched records wait for the
//! application in one queue, accounted in bytes (payload, message struct and allocation, or
//! the wire size if larger) and messages; a partition holding its share of the budget
//! (`max_buffered_bytes` / assigned partitions, at least `max_partition_bytes`), or any
//! partition while the reader holds `max_buffered_bytes` or `queue_capacity` messages, is left
//! out of the next request (and forgotten by the session) until the application catches up.
//! Every request first reserves its `max_bytes` from the budget, so all brokers' responses
//! together stay within it (a record batch larger than the limits still comes whole, KIP-74).
//!
//! Errors are per partition: NOT_LEADER_OR_FOLLOWER, fenced or unknown leader epochs,
//! unknown partitions and storage errors back off that partition and refresh metadata (the
//! planner moves it to its new leader's loop); OFFSET_OUT_OF_RANGE resets it as
//! `offset_out_of_range` says; session errors (FETCH_SESSION_ID_NOT_FOUND,
//! INVALID_FETCH_SESSION_EPOCH) start a new session with a full fetch. The other partitions
//! keep flowing.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafkit_protocol::batch::{decode_batches_each, DEFAULT_MAX_DECOMPRESSED};
use kafkit_protocol::codes;
use kafkit_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafkit_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use kafkit_protocol::topic_name;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::{list_offset, now_ms_to_time, Fetched, Shared, Tp};
use crate::config::{IsolationLevel, OffsetOutOfRange, StartOffset};
use crate::conn::Connection;
use crate::error::Error;
use crate::message::{Header, Message};

/// A partition being fetched.
#[derive(Debug)]
struct Part {
    /// Next offset to fetch.
    offset: i64,
    /// Fetch epoch: records are tagged with it (see `Shared::is_current`).
    epoch: u64,
    /// Not fetched before this instant (after an error).
    retry_at: Option<Instant>,
    /// Out of range with `OffsetOutOfRange::Error`, or resetting: not fetched.
    stopped: bool,
    /// Bytes of this partition's records waiting for the application.
    buffered: usize,
    /// Consecutive errors, for the backoff.
    errors: u32,
}

/// What every fetch loop shares: the assigned partitions and the buffer accounting.
#[derive(Debug)]
pub(super) struct Fetcher {
    /// `max_buffered_bytes`, `queue_capacity`, `max_partition_bytes`.
    budget: usize,
    max_msgs: usize,
    partition_min: usize,
    /// A loop waits for buffer room: the next release or unreserve wakes the loops.
    starved: std::sync::atomic::AtomicBool,
    parts: Mutex<BTreeMap<Tp, Part>>,
    /// Something changed: an assignment, a position, freed buffer space, a partition error.
    wake: Notify,
    /// The planner's own wake-up: assignments and partition errors only (not buffer space).
    replan: Notify,
    buffered_bytes: AtomicUsize,
    buffered_msgs: AtomicUsize,
    /// Bytes of the budget promised to fetches in flight (their `max_bytes`).
    reserved: Mutex<usize>,
    /// Running broker loops, by address.
    loops: Mutex<HashMap<String, tokio::task::JoinHandle<()>>>,
}

impl Fetcher {
    /// Accounting for a reader with these limits.
    pub fn new(budget: usize, max_msgs: usize, partition_min: usize) -> Self {
        Self {
            budget,
            max_msgs,
            partition_min,
            starved: Default::default(),
            parts: Default::default(),
            wake: Notify::new(),
            replan: Notify::new(),
            buffered_bytes: Default::default(),
            buffered_msgs: Default::default(),
            reserved: Default::default(),
            loops: Default::default(),
        }
    }

    /// How much one of `n` assigned partitions may hold: its share of the budget, at least
    /// `max_partition_bytes`, so a few partitions prefetch as deep as many do.
    fn per_partition(&self, n: usize) -> usize {
        self.partition_min.max(self.budget / n.max(1))
    }

    /// Starts (or restarts) fetching `tp` at `offset`, tagging records with `epoch`.
    pub fn assign(&self, tp: Tp, offset: i64, epoch: u64) {
        let mut parts = self.parts.lock().expect("parts lock");
        let buffered = parts.get(&tp).map_or(0, |p| p.buffered);
        parts.insert(
            tp,
            Part {
                offset,
                epoch,
                retry_at: None,
                stopped: false,
                buffered,
                errors: 0,
            },
        );
        drop(parts);
        self.wake.notify_waiters();
        self.replan.notify_waiters();
    }

    /// Stops fetching `tp`. Records already queued are dropped by their epoch.
    pub fn unassign(&self, tp: Tp) {
        self.parts.lock().expect("parts lock").remove(&tp);
        self.wake.notify_waiters();
        self.replan.notify_waiters();
    }

    /// A queued batch of `msgs` messages and `bytes` bytes of `tp` left the queue.
    /// The loops are woken only when this makes something fetchable again (a limit crossed
    /// downwards, or a loop waiting for room): waking them for every batch cost each a pass
    /// over every assigned partition, which at 1,000 partitions was most of the reader's time.
    pub fn release(&self, tp: Tp, msgs: usize, bytes: usize) {
        let before = self.buffered_bytes.fetch_sub(bytes, Ordering::AcqRel);
        let before_msgs = self.buffered_msgs.fetch_sub(msgs, Ordering::AcqRel);
        let mut wake = (before >= self.budget && before - bytes < self.budget)
            || (before_msgs >= self.max_msgs && before_msgs - msgs < self.max_msgs);
        {
            let mut parts = self.parts.lock().expect("parts lock");
            let per = self.per_partition(parts.len());
            if let Some(p) = parts.get_mut(&tp) {
                let was = p.buffered;
                p.buffered = p.buffered.saturating_sub(bytes);
                wake |= was >= per && p.buffered < per;
            }
        }
        wake |= self.starved.swap(false, Ordering::AcqRel);
        if wake {
            self.wake.notify_waiters();
        }
    }

    /// Bytes of records waiting for the application.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_bytes.load(Ordering::Acquire)
    }

    /// Takes up to `want` bytes of the budget for a fetch: `None` when the room left is below
    /// `min` (unless nothing at all is buffered or in flight, so a budget smaller than one
    /// fetch still makes progress).
    fn reserve(&self, want: usize, min: usize) -> Option<usize> {
        let mut reserved = self.reserved.lock().expect("reserved lock");
        let used = self.buffered_bytes.load(Ordering::Acquire) + *reserved;
        let room = self.budget.saturating_sub(used);
        let take = want.min(room);
        if take >= min.min(want) && take > 0 {
            *reserved += take;
            Some(take)
        } else if used == 0 {
            *reserved += want;
            Some(want)
        } else {
            self.starved.store(true, Ordering::Release);
            None
        }
    }

    fn unreserve(&self, n: usize) {
        {
            let mut reserved = self.reserved.lock().expect("reserved lock");
            *reserved = reserved.saturating_sub(n);
        }
        if self.starved.swap(false, Ordering::AcqRel) {
            self.wake.notify_waiters();
        }
    }

    fn assigned(&self) -> Vec<Tp> {
        self.parts
            .lock()
            .expect("parts lock")
            .keys()
            .copied()
            .collect()
    }

    /// Stops every loop (the reader is closing).
    pub fn stop(&self) {
        for (_, h) in self.loops.lock().expect("loops lock").drain() {
            h.abort();
        }
    }
}

/// A batch of fetched messages of one partition on its way to the application.
pub(super) struct Batch {
    pub tp: Tp,
    pub epoch: u64,
    pub msgs: VecDeque<Message>,
    /// Bytes accounted for the whole batch (released when it is used up or dropped).
    pub bytes: usize,
    pub count: usize,
}

/// The client side of an incremental fetch session (KIP-227) with one broker.
#[derive(Debug, Default)]
pub(super) struct ClientSession {
    /// Session id (0: none yet).
    id: i32,
    /// Epoch of the next request (0: a full fetch that opens a session).
    epoch: i32,
    /// What the broker's session holds: partition → (offset, max bytes) as last sent.
    sent: HashMap<Tp, (i64, i32)>,
}

/// One request's partitions: the ones to send and the ones to forget.
#[derive(Debug, PartialEq)]
pub(super) struct Plan {
    pub session_id: i32,
    pub epoch: i32,
    pub send: Vec<(Tp, i64)>,
    pub forget: Vec<Tp>,
}

impl ClientSession {
    /// The next request for `wanted` (partition → offset, all with `max_bytes`).
    pub fn plan(&mut self, wanted: &BTreeMap<Tp, i64>, max_bytes: i32) -> Plan {
        if self.epoch == 0 {
            // Full fetch: everything, and the session (if any) starts over.
            self.sent = wanted
                .iter()
                .map(|(tp, o)| (*tp, (*o, max_bytes)))
                .collect();
            return Plan {
                session_id: self.id,
                epoch: 0,
                send: wanted.iter().map(|(tp, o)| (*tp, *o)).collect(),
                forget: Vec::new(),
            };
        }
        let send: Vec<(Tp, i64)> = wanted
            .iter()
            .filter(|(tp, o)| self.sent.get(tp) != Some(&(**o, max_bytes)))
            .map(|(tp, o)| (*tp, *o))
            .collect();
        let forget: Vec<Tp> = self
            .sent
            .keys()
            .filter(|tp| !wanted.contains_key(tp))
            .copied()
            .collect();
        for tp in &forget {
            self.sent.remove(tp);
        }
        for (tp, o) in &send {
            self.sent.insert(*tp, (*o, max_bytes));
        }
        Plan {
            session_id: self.id,
            epoch: self.epoch,
            send,
            forget,
        }
    }

    /// The broker answered the request `plan` made with `session_id` and no top-level error.
    pub fn answered(&mut self, session_id: i32) {
        if session_id == 0 {
            // No session (the broker has no room, or none at all): full fetches from now on.
            *self = Self::default();
        } else if self.epoch == 0 || session_id != self.id {
            self.id = session_id;
            self.epoch = 1;
        } else {
            self.epoch = if self.epoch == i32::MAX {
                1
            } else {
                self.epoch + 1
            };
        }
    }

    /// The session is unusable (a session error, a lost connection or an abandoned request):
    /// the next request is a full one that also closes the old session on the broker.
    pub fn reset(&mut self) {
        self.epoch = 0;
        self.sent.clear();
    }
}

/// Starts and retires broker loops for the leaders of the assigned partitions, until the
/// reader closes.
pub(super) async fn planner(shared: Arc<Shared>, mut close: watch::Receiver<bool>) {
    let f = &shared.fetch;
    loop {
        let woken = f.replan.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let mut unknown_topics: BTreeSet<String> = BTreeSet::new();
        let mut leaders: BTreeSet<String> = BTreeSet::new();
        for (t, p) in f.assigned() {
            let topic = &shared.topics[t];
            match shared.client.cached_leader_addr(topic, p) {
                Some(addr) => {
                    leaders.insert(addr);
                }
                None => {
                    unknown_topics.insert(topic.clone());
                }
            }
        }
        let unknown = !unknown_topics.is_empty();
        if unknown {
            let topics: Vec<String> = unknown_topics.into_iter().collect();
            if let Err(e) = shared.client.refresh(&topics).await {
                tracing::debug!(target: "kafkit::reader", error = %e, "metadata refresh failed");
            }
        }
        {
            let mut loops = f.loops.lock().expect("loops lock");
            loops.retain(|_, h| !h.is_finished());
            for addr in leaders {
                loops.entry(addr.clone()).or_insert_with(|| {
                    tracing::debug!(target: "kafkit::reader", broker = %addr, "starting fetch loop");
                    tokio::spawn(broker_loop(shared.clone(), addr))
                });
            }
        }
        let pause = if unknown {
            Duration::from_millis(100) // leaders were unknown: look again soon
        } else {
            Duration::from_secs(1)
        };
        tokio::select! {
            _ = woken => {}
            _ = tokio::time::sleep(pause) => {}
            _ = close.changed() => {
                f.stop();
                return;
            }
        }
    }
}

/// The partitions this loop fetches now: assigned, led by `addr`, not backing off or
/// stopped, with room in the buffer. Also says whether any assigned partition is led by
/// `addr` at all.
fn fetchable(shared: &Shared, addr: &str) -> (BTreeMap<Tp, i64>, bool, Option<Instant>) {
    let f = &shared.fetch;
    let full = f.buffered_bytes.load(Ordering::Acquire) >= f.budget
        || f.buffered_msgs.load(Ordering::Acquire) >= f.max_msgs;
    let now = Instant::now();
    let mut mine = false;
    let mut out = BTreeMap::new();
    let mut next_retry: Option<Instant> = None;
    // Leaders from the metadata cache, once per topic per call (no lookup per partition).
    let node = shared.client.node_id(addr);
    let leaders: Vec<Option<Vec<i32>>> = shared
        .topics
        .iter()
        .map(|t| shared.client.cached_leaders(t))
        .collect();
    let parts = f.parts.lock().expect("parts lock");
    let per_partition = f.per_partition(parts.len());
    for (tp, p) in parts.iter() {
        let leader = leaders[tp.0]
            .as_ref()
            .and_then(|l| l.get(usize::try_from(tp.1).ok()?).copied());
        if node.is_none() || leader != node {
            continue;
        }
        mine = true;
        if let Some(at) = p.retry_at.filter(|at| *at > now) {
            next_retry = Some(next_retry.map_or(at, |n| n.min(at)));
            continue;
        }
        if p.stopped {
            continue;
        }
        if full || p.buffered >= per_partition {
            // Waiting for the application: a release below the limits wakes the loops.
            continue;
        }
        out.insert(*tp, p.offset);
    }
    (out, mine, next_retry)
}

/// One broker's fetch loop: runs while that broker leads an assigned partition.
async fn broker_loop(shared: Arc<Shared>, addr: String) {
    let cfg = &shared.config;
    let f = &shared.fetch;
    let mut conn: Option<Connection> = None;
    let mut session = ClientSession::default();
    let mut conn_backoff = Duration::from_millis(50);
    let isolation = match cfg.isolation_level {
        IsolationLevel::ReadUncommitted => 0,
        IsolationLevel::ReadCommitted => 1,
    };
    let partition_max = cfg.max_partition_bytes.min(i32::MAX as usize) as i32;
    loop {
        let woken = f.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let (wanted, mine, next_retry) = fetchable(&shared, &addr);
        if !mine {
            // Nothing here any more: leave (the planner starts a loop again when needed).
            let mut loops = f.loops.lock().expect("loops lock");
            if !fetchable(&shared, &addr).1 {
                loops.remove(&addr);
                tracing::debug!(target: "kafkit::reader", broker = %addr, "fetch loop done");
                return;
            }
            continue;
        }
        if wanted.is_empty() {
            tracing::trace!(target: "kafkit::reader", broker = %addr, buffered = f.buffered_bytes(), "nothing fetchable here now; waiting");
            // Everything here is paused (full buffer) or backing off: wait for a change.
            let until = next_retry.unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep_until(until) => {}
            }
            continue;
        }
        if conn.as_ref().is_none_or(|c| !c.is_alive()) {
            match shared.client.dedicated(&addr).await {
                Ok(c) => {
                    conn = Some(c);
                    conn_backoff = Duration::from_millis(50);
                    session.reset();
                }
                Err(e) => {
                    tracing::debug!(target: "kafkit::reader", broker = %addr, error = %e, "fetch connection failed");
                    shared.counters.fetch_errors.fetch_add(1, Ordering::Relaxed);
                    for tp in wanted.keys() {
                        shared.client.invalidate(&shared.topics[tp.0]);
                    }
                    f.wake.notify_waiters();
                    f.replan.notify_waiters();
                    tokio::time::sleep(conn_backoff).await;
                    conn_backoff = (conn_backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            }
        }
        // The response may add up to its max_bytes to the buffer: take that from the budget
        // first, so the loops of every broker together stay within max_buffered_bytes. Each
        // loop asks for at most its share, so long polls that find nothing cannot hold the
        // whole budget while another broker's partitions have records waiting.
        let loops = f.loops.lock().expect("loops lock").len().max(1);
        let share = cfg.max_bytes.min(cfg.max_buffered_bytes / loops).max(1);
        let Some(max_bytes) = f.reserve(share, cfg.max_partition_bytes.min(share)) else {
            tracing::trace!(target: "kafkit::reader", broker = %addr, buffered = f.buffered_bytes(), reserved = *f.reserved.lock().expect("reserved lock"), "buffer budget taken; waiting");
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        };
        let plan = session.plan(&wanted, partition_max);
        let req = request(&shared, &plan, partition_max, max_bytes, isolation);
        let asked: BTreeSet<Tp> = wanted.keys().copied().collect();
        let resp = {
            let c = conn.as_ref().expect("connected");
            // While the long poll waits, a partition newly fetchable here (a new assignment,
            // a resumed or moved partition) abandons it: its answers would queue behind it.
            let sent = c.send_timeout(&req, cfg.max_wait + Duration::from_secs(30));
            tokio::pin!(sent);
            loop {
                let changed = f.wake.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                tokio::select! {
                    r = &mut sent => break Some(r),
                    _ = changed => {
                        let (now_wanted, _, _) = fetchable(&shared, &addr);
                        if now_wanted.keys().any(|tp| !asked.contains(tp)) {
                            break None;
                        }
                    }
                }
            }
        };
        let resp = match resp {
            None => {
                f.unreserve(max_bytes);
                tracing::debug!(target: "kafkit::reader", broker = %addr, "new partitions: abandoning the pending fetch");
                conn = None;
                session.reset();
                continue;
            }
            Some(Ok((_, r))) => r,
            Some(Err(e)) => {
                f.unreserve(max_bytes);
                shared.counters.fetch_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(target: "kafkit::reader", broker = %addr, error = %e, "fetch failed; retrying");
                conn = None;
                session.reset();
                for tp in wanted.keys() {
                    shared.client.invalidate(&shared.topics[tp.0]);
                }
                f.wake.notify_waiters();
                f.replan.notify_waiters();
                tokio::time::sleep(conn_backoff).await;
                conn_backoff = (conn_backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        shared.counters.fetches.fetch_add(1, Ordering::Relaxed);
        if resp.error_code != codes::NONE {
            f.unreserve(max_bytes);
            tracing::debug!(target: "kafkit::reader", broker = %addr, code = resp.error_code, session = plan.session_id, epoch = plan.epoch, "fetch session error; starting a new session");
            session.reset();
            continue;
        }
        session.answered(resp.session_id);
        tracing::trace!(target: "kafkit::reader", broker = %addr, session = resp.session_id, sent = plan.send.len(), forgot = plan.forget.len(), answered = resp.responses.iter().map(|t| t.partitions.len()).sum::<usize>(), "fetch answered");
        handle_response(&shared, resp, &wanted);
        // Only now: the records are accounted as buffered, so no other loop could take the
        // same room in between.
        f.unreserve(max_bytes);
    }
}

/// Items per topic index, topics in order.
fn by_topic<T>(items: impl IntoIterator<Item = (usize, T)>) -> BTreeMap<usize, Vec<T>> {
    let mut m: BTreeMap<usize, Vec<T>> = BTreeMap::new();
    for (t, x) in items {
        m.entry(t).or_default().push(x);
    }
    m
}

fn request(
    shared: &Shared,
    plan: &Plan,
    partition_max: i32,
    max_bytes: usize,
    isolation: i8,
) -> FetchRequest {
    let cfg = &shared.config;
    let name = |t: usize| topic_name(&shared.topics[t]);
    let topics = by_topic(plan.send.iter().map(|((t, p), o)| {
        let part = FetchPartition::default()
            .with_partition(*p)
            .with_fetch_offset(*o)
            .with_partition_max_bytes(partition_max);
        (*t, part)
    }));
    let forgotten = by_topic(plan.forget.iter().copied());
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(cfg.max_wait.as_millis().min(i32::MAX as u128) as i32)
        .with_min_bytes(cfg.min_bytes as i32)
        .with_max_bytes(max_bytes.min(i32::MAX as usize) as i32)
        .with_isolation_level(isolation)
        .with_session_id(plan.session_id)
        .with_session_epoch(plan.epoch)
        .with_topics(
            topics
                .into_iter()
                .map(|(t, parts)| {
                    FetchTopic::default()
                        .with_topic(name(t))
                        .with_partitions(parts)
                })
                .collect(),
        )
        .with_forgotten_topics_data(
            forgotten
                .into_iter()
                .map(|(t, parts)| {
                    ForgottenTopic::default()
                        .with_topic(name(t))
                        .with_partitions(parts)
                })
                .collect(),
        )
}

/// Backs `tp` off after an error (50 ms doubling to 2 s) and wakes the planner.
fn back_off(shared: &Shared, tp: Tp) {
    if let Some(p) = shared.fetch.parts.lock().expect("parts lock").get_mut(&tp) {
        p.errors = (p.errors + 1).min(6);
        let delay = Duration::from_millis(50 << (p.errors - 1)).min(Duration::from_secs(2));
        p.retry_at = Some(Instant::now() + delay);
    }
    shared.fetch.wake.notify_waiters();
    shared.fetch.replan.notify_waiters();
}

fn handle_response(shared: &Arc<Shared>, resp: FetchResponse, asked: &BTreeMap<Tp, i64>) {
    for t in resp.responses {
        let Some(ti) = shared.topic_index(t.topic.as_str()) else {
            continue;
        };
        let topic = &shared.topics[ti];
        for pd in t.partitions {
            let tp = (ti, pd.partition_index);
            // The offset this response answers: what was asked, or (for a partition the
            // session carried without change) the position now.
            let (epoch, offset) = {
                let parts = shared.fetch.parts.lock().expect("parts lock");
                match parts.get(&tp) {
                    Some(p) if !p.stopped => (p.epoch, p.offset),
                    _ => continue, // revoked or stopped meanwhile
                }
            };
            if asked.get(&tp).is_some_and(|o| *o != offset) {
                continue; // sought elsewhere meanwhile
            }
            if pd.high_watermark >= 0 {
                shared
                    .high_watermarks
                    .lock()
                    .expect("hw lock")
                    .insert(tp, pd.high_watermark);
            }
            match pd.error_code {
                codes::NONE => {}
                codes::OFFSET_OUT_OF_RANGE => {
                    out_of_range(shared, tp, epoch, offset);
                    continue;
                }
                code => {
                    tracing::debug!(target: "kafkit::reader", topic = %topic, partition = tp.1, code, "fetch error; refreshing metadata");
                    shared.client.invalidate(topic);
                    back_off(shared, tp);
                    continue;
                }
            }
            let Some(data) = pd.records else { continue };
            if data.is_empty() {
                continue;
            }
            let mut msgs = VecDeque::new();
            let mut bytes = 0;
            let mut next = offset;
            // Each record becomes a message as its batch is decoded (no vector of records
            // first: at a million records a second the extra move shows).
            let decoded = decode_batches_each(&data, DEFAULT_MAX_DECOMPRESSED, |records| {
                msgs.reserve(records.len());
                for r in records {
                    if r.offset < offset {
                        continue;
                    }
                    next = r.offset + 1;
                    let msg = Message {
                        topic: topic.clone(),
                        partition: tp.1,
                        offset: r.offset,
                        key: r.key,
                        value: r.value,
                        headers: r
                            .headers
                            .into_iter()
                            .map(|(k, v)| Header {
                                key: k.to_string(),
                                value: v,
                            })
                            .collect(),
                        time: now_ms_to_time(r.timestamp),
                    };
                    // What the message holds: its payload, the struct, the topic name's copy and
                    // the allocator's share.
                    bytes += msg.size() + std::mem::size_of::<Message>() + topic.len() + 32;
                    msgs.push_back(msg);
                }
            });
            if let Err(e) = decoded {
                // Nothing of this partition's data is delivered; it is fetched again.
                tracing::error!(target: "kafkit::reader", topic = %topic, partition = tp.1, offset, error = %e, "undecodable records; retrying");
                back_off(shared, tp);
                continue;
            }
            // At least the wire size: the messages share the response's buffer.
            let bytes = bytes.max(data.len());
            {
                let mut parts = shared.fetch.parts.lock().expect("parts lock");
                let Some(p) = parts.get_mut(&tp).filter(|p| p.epoch == epoch) else {
                    continue;
                };
                p.offset = next;
                p.errors = 0;
                p.retry_at = None;
                if msgs.is_empty() {
                    continue;
                }
                p.buffered += bytes;
            }
            let count = msgs.len();
            shared
                .fetch
                .buffered_bytes
                .fetch_add(bytes, Ordering::AcqRel);
            shared
                .fetch
                .buffered_msgs
                .fetch_add(count, Ordering::AcqRel);
            let batch = Batch {
                tp,
                epoch,
                msgs,
                bytes,
                count,
            };
            if shared.tx.send(Fetched::Batch(batch)).is_err() {
                return; // the reader is gone
            }
        }
    }
}

/// OFFSET_OUT_OF_RANGE on `tp` at `offset`: reset as `offset_out_of_range` says, in the
/// background (the partition is not fetched meanwhile), or stop it with an error.
fn out_of_range(shared: &Arc<Shared>, tp: Tp, epoch: u64, offset: i64) {
    let topic = shared.topics[tp.0].clone();
    let reset = match shared.config.offset_out_of_range {
        OffsetOutOfRange::Earliest => StartOffset::First,
        OffsetOutOfRange::Latest => StartOffset::Last,
        OffsetOutOfRange::Error => {
            tracing::warn!(target: "kafkit::reader", topic = %topic, partition = tp.1, offset, "offset out of range; stopping this partition");
            if let Some(p) = shared.fetch.parts.lock().expect("parts lock").get_mut(&tp) {
                p.stopped = true;
            }
            let _ = shared.tx.send(Fetched::Error {
                tp,
                epoch,
                error: Error::kafka(
                    codes::OFFSET_OUT_OF_RANGE,
                    format!("fetch {topic}/{} at offset {offset}", tp.1),
                ),
            });
            return;
        }
    };
    if let Some(p) = shared.fetch.parts.lock().expect("parts lock").get_mut(&tp) {
        p.stopped = true;
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(50);
        loop {
            let r = list_offset(&shared.client, &topic, tp.1, reset).await;
            let done = {
                let mut parts = shared.fetch.parts.lock().expect("parts lock");
                match parts.get_mut(&tp).filter(|p| p.epoch == epoch) {
                    None => true, // revoked or sought meanwhile
                    Some(p) => match r {
                        Ok(o) => {
                            tracing::warn!(target: "kafkit::reader", topic = %topic, partition = tp.1, from = offset, to = o, "offset out of range; reset");
                            p.offset = o;
                            p.stopped = false;
                            true
                        }
                        Err(_) => false,
                    },
                }
            };
            if done {
                shared.fetch.wake.notify_waiters();
                return;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    });
}

#[cfg(test)]
#[path = "fetch_tests.rs"]
mod tests;
