//! Incremental fetch sessions (KIP-227), per broker, as a state machine without I/O: the Fetch
//! handler asks [`SessionCache::begin`] which partitions a request stands for and how to
//! answer, reads them, and asks [`SessionCache::finish`] which to put in the response.
//!
//! A consumer fetching many partitions sends them all once (session id 0, epoch 0) and gets a
//! session id; afterwards each request (same id, epoch + 1) carries only the partitions whose
//! fetch offset or limit changed and the ones to forget, and each response only the
//! partitions with records, an error, or a changed high watermark / log start offset.
//! Partitions that returned records move to the end of the session's order, so one busy
//! partition cannot starve the others of the response's byte budget.
//!
//! As in Kafka: session id 0 with epoch -1 is a sessionless full fetch; a request with a
//! session id and epoch 0 or -1 closes that session first (epoch 0 then opens a new one); an
//! unknown id is FETCH_SESSION_ID_NOT_FOUND (70), a wrong epoch INVALID_FETCH_SESSION_EPOCH
//! (71). The cache holds at most `slots` sessions per broker (Kafka's
//! `max.incremental.fetch.session.cache.slots`, 1,000); when full, the least recently used
//! session idle for at least `eviction_idle` (Kafka's 120 s) makes room, otherwise the new
//! fetch is served without a session (id 0), which clients handle by sending full fetches.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use indexmap::IndexMap;

pub use kafkit_protocol::codes::FETCH_SESSION_ID_NOT_FOUND;
pub use kafkit_protocol::codes::INVALID_FETCH_SESSION_EPOCH;

/// A partition a fetch asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// Topic name.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Where to read from.
    pub fetch_offset: i64,
    /// Most bytes for this partition.
    pub max_bytes: i32,
    /// The leader epoch the client knows (-1: none).
    pub current_leader_epoch: i32,
}

/// What the broker sent last for a partition of a session.
#[derive(Debug, Clone)]
struct Cached {
    fetch_offset: i64,
    max_bytes: i32,
    current_leader_epoch: i32,
    high_watermark: i64,
    log_start_offset: i64,
}

#[derive(Debug)]
struct Session {
    /// The epoch the next request must carry.
    epoch: i32,
    parts: IndexMap<(String, i32), Cached>,
    last_used: Instant,
}

/// How a fetch is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every requested partition, session id 0.
    Sessionless,
    /// Every partition, in a session just created with this id.
    Full(i32),
    /// Only what changed, in this session.
    Incremental(i32),
}

/// A request the session cache refuses: the top-level error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionError(pub i16);

/// What was read for one partition, for [`SessionCache::finish`].
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    /// Bytes of records returned.
    pub record_bytes: usize,
    /// The partition's error code.
    pub error_code: i16,
    /// High watermark returned.
    pub high_watermark: i64,
    /// Log start offset returned.
    pub log_start_offset: i64,
}

/// The fetch sessions of one broker.
#[derive(Debug)]
pub struct SessionCache {
    sessions: HashMap<i32, Session>,
    next_id: i32,
    slots: usize,
    eviction_idle: Duration,
    /// Incremental requests served, and the partitions they carried in all (what a client's
    /// steady state costs: changed partitions only).
    pub incremental: (u64, u64),
}

impl SessionCache {
    /// A cache of at most `slots` sessions.
    pub fn new(slots: usize, eviction_idle: Duration) -> Self {
        Self {
            sessions: HashMap::new(),
            next_id: 0,
            slots,
            eviction_idle,
            incremental: (0, 0),
        }
    }

    /// Forgets every session (as a restarted broker has none): their next incremental
    /// requests get FETCH_SESSION_ID_NOT_FOUND.
    pub fn clear(&mut self) {
        self.sessions.clear();
    }

    /// Sessions held now.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// True if no session is held.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Resolves a request: how to answer it and the partitions to read, in the order the
    /// response lists them.
    pub fn begin(
        &mut self,
        now: Instant,
        session_id: i32,
        epoch: i32,
        wanted: Vec<Wanted>,
        forgotten: &[(String, i32)],
    ) -> Result<(Mode, Vec<Wanted>), SessionError> {
        if epoch == 0 || epoch == -1 {
            // Full fetch: a named session ends here.
            if session_id != 0 {
                self.sessions.remove(&session_id);
            }
            if epoch == -1 || !self.make_room(now) {
                return Ok((Mode::Sessionless, wanted));
            }
            let id = self.new_id();
            let parts = wanted
                .iter()
                .map(|w| ((w.topic.clone(), w.partition), cached(w)))
                .collect();
            self.sessions.insert(
                id,
                Session {
                    epoch: 1,
                    parts,
                    last_used: now,
                },
            );
            return Ok((Mode::Full(id), wanted));
        }
        let Some(s) = self.sessions.get_mut(&session_id) else {
            return Err(SessionError(FETCH_SESSION_ID_NOT_FOUND));
        };
        if s.epoch != epoch {
            return Err(SessionError(INVALID_FETCH_SESSION_EPOCH));
        }
        s.epoch = if epoch == i32::MAX { 1 } else { epoch + 1 };
        s.last_used = now;
        self.incremental.0 += 1;
        self.incremental.1 += wanted.len() as u64;
        for key in forgotten {
            s.parts.shift_remove(key);
        }
        for w in &wanted {
            let key = (w.topic.clone(), w.partition);
            match s.parts.get_mut(&key) {
                Some(c) => {
                    c.fetch_offset = w.fetch_offset;
                    c.max_bytes = w.max_bytes;
                    c.current_leader_epoch = w.current_leader_epoch;
                }
                None => {
                    s.parts.insert(key, cached(w));
                }
            }
        }
        let all = s
            .parts
            .iter()
            .map(|((topic, partition), c)| Wanted {
                topic: topic.clone(),
                partition: *partition,
                fetch_offset: c.fetch_offset,
                max_bytes: c.max_bytes,
                current_leader_epoch: c.current_leader_epoch,
            })
            .collect();
        Ok((Mode::Incremental(session_id), all))
    }

    /// Records what was sent for the partitions `begin` returned (same order) and says which
    /// of them go in the response: all for a full fetch; for an incremental one those with
    /// records, an error, or a changed high watermark or log start offset. Partitions that
    /// returned records move to the end of the session's order.
    pub fn finish(&mut self, mode: Mode, read: &[(&str, i32)], answers: &[Answer]) -> Vec<bool> {
        let id = match mode {
            Mode::Sessionless => return vec![true; answers.len()],
            Mode::Full(id) | Mode::Incremental(id) => id,
        };
        let Some(s) = self.sessions.get_mut(&id) else {
            return vec![true; answers.len()];
        };
        let mut include = Vec::with_capacity(answers.len());
        let mut to_end = Vec::new();
        for (&(topic, partition), a) in read.iter().zip(answers) {
            let key = (topic.to_owned(), partition);
            let Some(c) = s.parts.get_mut(&key) else {
                include.push(true);
                continue;
            };
            let changed = a.record_bytes > 0
                || a.error_code != 0
                || c.high_watermark != a.high_watermark
                || c.log_start_offset != a.log_start_offset;
            c.high_watermark = a.high_watermark;
            c.log_start_offset = a.log_start_offset;
            include.push(matches!(mode, Mode::Full(_)) || changed);
            if a.record_bytes > 0 {
                to_end.push(key);
            }
        }
        for key in to_end {
            if let Some(c) = s.parts.shift_remove(&key) {
                s.parts.insert(key, c);
            }
        }
        include
    }

    fn new_id(&mut self) -> i32 {
        loop {
            self.next_id = if self.next_id == i32::MAX {
                1
            } else {
                self.next_id + 1
            };
            if !self.sessions.contains_key(&self.next_id) {
                return self.next_id;
            }
        }
    }

    /// True if a new session fits, evicting the least recently used idle one if needed.
    fn make_room(&mut self, now: Instant) -> bool {
        if self.sessions.len() < self.slots {
            return true;
        }
        let oldest = self
            .sessions
            .iter()
            .filter(|(_, s)| now.saturating_duration_since(s.last_used) >= self.eviction_idle)
            .min_by_key(|(_, s)| s.last_used)
            .map(|(id, _)| *id);
        match oldest {
            Some(id) => {
                self.sessions.remove(&id);
                true
            }
            None => false,
        }
    }
}

fn cached(w: &Wanted) -> Cached {
    Cached {
        fetch_offset: w.fetch_offset,
        max_bytes: w.max_bytes,
        current_leader_epoch: w.current_leader_epoch,
        high_watermark: -1,
        log_start_offset: -1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(p: i32, offset: i64) -> Wanted {
        Wanted {
            topic: "t".into(),
            partition: p,
            fetch_offset: offset,
            max_bytes: 1000,
            current_leader_epoch: -1,
        }
    }

    fn answer(bytes: usize, hw: i64) -> Answer {
        Answer {
            record_bytes: bytes,
            error_code: 0,
            high_watermark: hw,
            log_start_offset: 0,
        }
    }

    fn keys(v: &[Wanted]) -> Vec<(&str, i32)> {
        v.iter().map(|w| (w.topic.as_str(), w.partition)).collect()
    }

    #[test]
    fn a_session_sends_only_what_changed() {
        let now = Instant::now();
        let mut c = SessionCache::new(10, Duration::from_secs(120));
        let (mode, read) = c
            .begin(now, 0, 0, vec![w(0, 0), w(1, 0), w(2, 0)], &[])
            .unwrap();
        let Mode::Full(id) = mode else {
            panic!("{mode:?}")
        };
        // Partition 1 has records; all three go out in a full response.
        let inc = c.finish(
            mode,
            &keys(&read),
            &[answer(0, 0), answer(50, 5), answer(0, 0)],
        );
        assert_eq!(inc, vec![true, true, true]);
        // Next: only partition 1's offset changed. Every partition is read (1 now last: it
        // returned records), only the changed ones answered.
        let (mode, read) = c.begin(now, id, 1, vec![w(1, 5)], &[]).unwrap();
        assert_eq!(mode, Mode::Incremental(id));
        assert_eq!(keys(&read), vec![("t", 0), ("t", 2), ("t", 1)]);
        assert_eq!(read[2].fetch_offset, 5);
        let inc = c.finish(
            mode,
            &keys(&read),
            &[answer(0, 0), answer(0, 3), answer(0, 5)],
        );
        assert_eq!(
            inc,
            vec![false, true, false],
            "only partition 2's high watermark moved"
        );
        // Forgetting a partition removes it from the session.
        let (_, read) = c.begin(now, id, 2, vec![], &[("t".into(), 0)]).unwrap();
        assert_eq!(keys(&read), vec![("t", 2), ("t", 1)]);
    }

    #[test]
    fn wrong_ids_and_epochs_are_refused_and_full_fetches_close_sessions() {
        let now = Instant::now();
        let mut c = SessionCache::new(10, Duration::from_secs(120));
        let (Mode::Full(id), _) = c.begin(now, 0, 0, vec![w(0, 0)], &[]).unwrap() else {
            panic!()
        };
        assert_eq!(
            c.begin(now, id, 5, vec![], &[]).unwrap_err(),
            SessionError(INVALID_FETCH_SESSION_EPOCH)
        );
        assert_eq!(
            c.begin(now, id + 100, 1, vec![], &[]).unwrap_err(),
            SessionError(FETCH_SESSION_ID_NOT_FOUND)
        );
        // Epoch -1 with the id: closed, answered without a session.
        let (mode, _) = c.begin(now, id, -1, vec![w(0, 0)], &[]).unwrap();
        assert_eq!(mode, Mode::Sessionless);
        assert!(c.is_empty());
        assert_eq!(
            c.begin(now, id, 1, vec![], &[]).unwrap_err(),
            SessionError(FETCH_SESSION_ID_NOT_FOUND)
        );
    }

    #[test]
    fn a_full_cache_evicts_only_idle_sessions() {
        let t0 = Instant::now();
        let mut c = SessionCache::new(2, Duration::from_secs(120));
        for _ in 0..2 {
            assert!(matches!(
                c.begin(t0, 0, 0, vec![w(0, 0)], &[]).unwrap().0,
                Mode::Full(_)
            ));
        }
        let (mode, _) = c
            .begin(t0 + Duration::from_secs(1), 0, 0, vec![w(0, 0)], &[])
            .unwrap();
        assert_eq!(mode, Mode::Sessionless, "no room, nothing idle long enough");
        let (mode, _) = c
            .begin(t0 + Duration::from_secs(121), 0, 0, vec![w(0, 0)], &[])
            .unwrap();
        assert!(matches!(mode, Mode::Full(_)), "an idle session made room");
        assert_eq!(c.len(), 2);
    }
}
