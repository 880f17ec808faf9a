//! The rebalance listener (issue 13): an application that commits by hand commits in
//! `on_revoked`, so the next owner starts after what it processed.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use kafkit::reader::ListenerFuture;
use kafkit::{Message, Reader, ReaderConfig, Rebalance, RebalanceListener, Writer};

/// Commits what its member processed when partitions are revoked; logs every call.
#[derive(Default)]
struct CommitOnRevoke {
    processed: Mutex<Vec<Message>>,
    events: Mutex<Vec<String>>,
}

impl RebalanceListener for CommitOnRevoke {
    fn on_assigned<'a>(&'a self, _g: &'a Rebalance, p: &'a [(String, i32)]) -> ListenerFuture<'a> {
        Box::pin(async move {
            self.events
                .lock()
                .unwrap()
                .push(format!("assigned {}", p.len()));
        })
    }

    fn on_revoked<'a>(&'a self, g: &'a Rebalance, p: &'a [(String, i32)]) -> ListenerFuture<'a> {
        Box::pin(async move {
            let done: Vec<Message> = std::mem::take(&mut *self.processed.lock().unwrap());
            let r = g.commit_messages(&done).await;
            self.events.lock().unwrap().push(format!(
                "revoked {} committed {} {:?}",
                p.len(),
                done.len(),
                r.is_ok()
            ));
        })
    }
}

fn member(c: &kafkit_broker::Cluster, l: &Arc<CommitOnRevoke>) -> Arc<Reader> {
    Arc::new(
        Reader::new(ReaderConfig {
            group_id: Some("by-hand".into()),
            heartbeat_interval: Duration::from_millis(200),
            max_wait: Duration::from_millis(200),
            rebalance_listener: Some(kafkit::reader::Listener(l.clone())),
            ..reader_config(c, "orders", None)
        })
        .unwrap(),
    )
}

async fn read(r: &Reader, l: &CommitOnRevoke, n: usize, seen: &Mutex<HashSet<String>>) {
    for _ in 0..n {
        let m = tokio::time::timeout(Duration::from_secs(30), r.fetch_message())
            .await
            .expect("records keep coming")
            .unwrap();
        let v = String::from_utf8(m.value.clone().unwrap().to_vec()).unwrap();
        assert!(
            seen.lock().unwrap().insert(v.clone()),
            "{v} delivered twice"
        );
        l.processed.lock().unwrap().push(m);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committing_in_on_revoked_hands_over_without_duplicates() {
    let c = cluster().await;
    c.create_topic("orders", 4).unwrap();
    let w = Writer::new(writer_config(&c, "orders")).unwrap();
    let batch = |from: usize| {
        (from..from + 400)
            .map(|i| Message::new(format!("k{i}"), format!("v{i}")))
            .collect::<Vec<_>>()
    };
    w.write_messages(batch(0)).await.unwrap();
    let seen = Mutex::new(HashSet::new());
    let la = Arc::new(CommitOnRevoke::default());
    let a = member(&c, &la);
    // A processes everything and commits nothing by itself.
    read(&a, &la, 400, &seen).await;
    // B joins: A's on_revoked commits A's 400, so B starts after them.
    let lb = Arc::new(CommitOnRevoke::default());
    let b = member(&c, &lb);
    let (ea, eb) = (la.clone(), lb.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !eb
        .events
        .lock()
        .unwrap()
        .iter()
        .any(|e| e.starts_with("assigned"))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "B never got partitions"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let a_events = ea.events.lock().unwrap().clone();
    assert_eq!(a_events[0], "assigned 4");
    assert_eq!(a_events[1], "revoked 4 committed 400 true", "{a_events:?}");
    w.write_messages(batch(400)).await.unwrap();
    // The 400 new records reach A or B exactly once; nothing old is read again.
    let left = Arc::new(Mutex::new(400usize));
    let seen = Arc::new(seen);
    let mut tasks = Vec::new();
    for (r, l) in [(a.clone(), la.clone()), (b.clone(), lb.clone())] {
        let (left, seen) = (left.clone(), seen.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                if *left.lock().unwrap() == 0 {
                    return;
                }
                let Ok(m) =
                    tokio::time::timeout(Duration::from_millis(300), r.fetch_message()).await
                else {
                    continue;
                };
                let m = m.unwrap();
                let v = String::from_utf8(m.value.clone().unwrap().to_vec()).unwrap();
                let i: usize = v[1..].parse().unwrap();
                assert!(i >= 400, "{v} was processed and committed by A before");
                assert!(
                    seen.lock().unwrap().insert(v.clone()),
                    "{v} delivered twice"
                );
                l.processed.lock().unwrap().push(m);
                *left.lock().unwrap() -= 1;
            }
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("the new records arrive")
            .unwrap();
    }
    assert_eq!(seen.lock().unwrap().len(), 800);
    b.close().await.unwrap();
    a.close().await.unwrap();
    c.shutdown().await;
}

/// Records every call.
#[derive(Default)]
struct Events(Mutex<Vec<String>>);

impl RebalanceListener for Events {
    fn on_assigned<'a>(&'a self, _g: &'a Rebalance, p: &'a [(String, i32)]) -> ListenerFuture<'a> {
        Box::pin(async move { self.0.lock().unwrap().push(format!("assigned {}", p.len())) })
    }
    fn on_revoked<'a>(&'a self, _g: &'a Rebalance, p: &'a [(String, i32)]) -> ListenerFuture<'a> {
        Box::pin(async move { self.0.lock().unwrap().push(format!("revoked {}", p.len())) })
    }
    fn on_lost<'a>(&'a self, _g: &'a Rebalance, p: &'a [(String, i32)]) -> ListenerFuture<'a> {
        Box::pin(async move { self.0.lock().unwrap().push(format!("lost {}", p.len())) })
    }
}

/// The coordinator answering a heartbeat with UNKNOWN_MEMBER_ID (the member's session
/// expired): `on_lost`, not `on_revoked`, then a fresh join and `on_assigned` again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_member_hears_on_lost_and_rejoins() {
    let c = cluster().await;
    c.create_topic("fenced", 3).unwrap();
    let events = Arc::new(Events::default());
    let r = Reader::new(ReaderConfig {
        group_id: Some("fenced-group".into()),
        heartbeat_interval: Duration::from_millis(100),
        rebalance_listener: Some(kafkit::reader::Listener(events.clone())),
        ..reader_config(&c, "fenced", None)
    })
    .unwrap();
    let wait = |want: Vec<&'static str>| {
        let events = events.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            loop {
                let got = events.0.lock().unwrap().clone();
                if got == want {
                    return;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "events {got:?}, want {want:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait(vec!["assigned 3"]).await;
    // The next heartbeat answer says the coordinator no longer knows this member.
    c.control().inject_error(12, 25, 1, None);
    wait(vec!["assigned 3", "lost 3", "assigned 3"]).await;
    r.close().await.unwrap();
    assert_eq!(
        events.0.lock().unwrap().last().map(String::as_str),
        Some("revoked 3"),
        "closing revokes"
    );
    c.shutdown().await;
}
