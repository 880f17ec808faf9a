//! Which brokers are up, and between which replication is cut (fault injection through
//! [`crate::control::Control`]; everyone else only asks).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use tokio::sync::watch;

/// Broker liveness (by node id, 1..=n) and cut replication links.
#[derive(Debug)]
pub struct Liveness {
    alive: Vec<AtomicBool>,
    /// Turns true while a broker is down: its connections close.
    down: Vec<watch::Sender<bool>>,
    /// Broker pairs between which replication is cut (smaller id first).
    cut_links: Mutex<HashSet<(i32, i32)>>,
    /// Never sends: the down signal of an id that is no broker.
    never: watch::Sender<bool>,
}

impl Liveness {
    /// `brokers` brokers, all up, nothing cut.
    pub fn new(brokers: usize) -> Self {
        Self {
            alive: (0..brokers).map(|_| AtomicBool::new(true)).collect(),
            down: (0..brokers).map(|_| watch::channel(false).0).collect(),
            cut_links: Mutex::new(HashSet::new()),
            never: watch::channel(false).0,
        }
    }

    fn index(&self, id: i32) -> Option<usize> {
        usize::try_from(id - 1)
            .ok()
            .filter(|&i| i < self.alive.len())
    }

    /// Whether a broker is up.
    pub fn is_alive(&self, id: i32) -> bool {
        self.index(id)
            .is_some_and(|i| self.alive[i].load(Ordering::Acquire))
    }

    /// Marks a broker down (it stops counting as alive first, then its connections are told
    /// to close). False for an unknown id.
    pub(crate) fn set_down(&self, id: i32) -> bool {
        let Some(i) = self.index(id) else {
            return false;
        };
        self.alive[i].store(false, Ordering::Release);
        self.down[i].send_replace(true);
        true
    }

    /// Marks a broker up again.
    pub(crate) fn set_up(&self, id: i32) {
        if let Some(i) = self.index(id) {
            self.down[i].send_replace(false);
            self.alive[i].store(true, Ordering::Release);
        }
    }

    /// Turns true while broker `id` is down (a connection of that broker closes then); for an
    /// unknown id, a signal that never fires.
    pub fn down_signal(&self, id: i32) -> watch::Receiver<bool> {
        self.index(id)
            .map_or(&self.never, |i| &self.down[i])
            .subscribe()
    }

    /// Whether replication between two brokers is cut.
    pub fn is_cut(&self, a: i32, b: i32) -> bool {
        self.links().contains(&(a.min(b), a.max(b)))
    }

    /// Cuts replication between two brokers (both directions).
    pub(crate) fn cut(&self, a: i32, b: i32) {
        self.links().insert((a.min(b), a.max(b)));
    }

    /// Restores replication between two brokers.
    pub(crate) fn heal(&self, a: i32, b: i32) {
        self.links().remove(&(a.min(b), a.max(b)));
    }

    fn links(&self) -> std::sync::MutexGuard<'_, HashSet<(i32, i32)>> {
        self.cut_links.lock().expect("links lock")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_and_up_and_links() {
        let l = Liveness::new(3);
        let mut signal = l.down_signal(2);
        assert!(l.is_alive(2) && !l.is_alive(0) && !l.is_alive(4));
        assert!(l.set_down(2));
        assert!(!l.is_alive(2));
        assert!(*signal.borrow_and_update());
        l.set_up(2);
        assert!(l.is_alive(2) && !*signal.borrow_and_update());
        assert!(!l.set_down(9));
        l.cut(3, 1);
        assert!(l.is_cut(1, 3) && l.is_cut(3, 1) && !l.is_cut(1, 2));
        l.heal(1, 3);
        assert!(!l.is_cut(3, 1));
        assert!(!*l.down_signal(7).borrow(), "unknown ids are never down");
    }
}
