//! Issue 11's memory attacks, with the process's RSS read from /proc while they run. One test
//! in its own binary, so the peak (VmHWM) is this test's alone.
//!
//! Bound asserted: the peak stays under the RSS before the attacks + 300 MiB. Before issue 11
//! the same attacks took a broker from 19 MB to 499 MB (half-sent frames) and 2,005 MB (four
//! legacy gzip bombs).

mod common;

use std::io::Write;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::*;
use kafkit::conn::Connection;
use kafkit_protocol::batch::{put_record_head, seal, BatchHeader, BATCH_HEADER_LEN};
use kafkit_protocol::legacy::{self, LegacyRecord};
use kafkit_protocol::messages::MetadataRequest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Uncompressed records: one record whose value is `value_len` zeros (head only).
fn record_prefix(value_len: u64) -> Vec<u8> {
    let mut b = BytesMut::new();
    put_record_head(&mut b, 0, 0, None, Some(value_len as usize));
    b.to_vec()
}

/// A v2 batch (one record) around a compressed payload.
fn batch(codec: i16, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::zeroed(BATCH_HEADER_LEN);
    BatchHeader::client(codec, 1, 1_700_000_000_000, 1_700_000_000_000).write(&mut b);
    b.put_slice(payload);
    seal(&mut b);
    b.freeze()
}

/// `total` bytes of zeros (one record) as concatenated 1 MiB gzip members or zstd frames.
fn bomb(codec: i16, total: u64) -> Vec<u8> {
    let mut first = record_prefix(total);
    first.resize(1 << 20, 0);
    let zeros = vec![0u8; 1 << 20];
    let pack = |data: &[u8]| -> Vec<u8> {
        if codec == 1 {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        } else {
            zstd::encode_all(data, 19).unwrap()
        }
    };
    let mut out = pack(&first);
    let member = pack(&zeros);
    for _ in 1..total >> 20 {
        out.extend_from_slice(&member);
    }
    out
}

/// A Produce v2 frame carrying a magic-1 gzip wrapper around `n` empty messages.
fn legacy_bomb(topic: &str, n: usize) -> Vec<u8> {
    let empty = LegacyRecord {
        offset: 0,
        timestamp: 1_700_000_000_000,
        key: None,
        value: None,
    };
    let mut one = BytesMut::new();
    legacy::put_message(&mut one, &empty, 1, 0);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    for _ in 0..n {
        gz.write_all(&one).unwrap();
    }
    let wrapper = LegacyRecord {
        offset: n as i64 - 1,
        value: Some(Bytes::from(gz.finish().unwrap())),
        ..empty
    };
    let mut set = BytesMut::new();
    legacy::put_message(&mut set, &wrapper, 1, 1);
    let body = legacy::encode_produce_request(&legacy::ProduceRequest {
        acks: 1,
        timeout_ms: 10_000,
        topics: vec![(topic.to_owned(), vec![(0, set.freeze())])],
    });
    let mut f = BytesMut::new();
    f.put_i16(0);
    f.put_i16(2);
    f.put_i32(9);
    f.put_i16(-1);
    f.put_slice(&body);
    let mut out = (f.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&f);
    out
}

/// The error code in a Produce v2 response frame (after size, correlation id, topics).
fn legacy_code(resp: &[u8], topic: &str) -> i16 {
    let at = 4 + 4 + 4 + 2 + topic.len() + 4 + 4;
    i16::from_be_bytes([resp[at], resp[at + 1]])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bombs_and_half_sent_frames_stay_within_a_memory_bound() {
    let c = cluster_with(|cfg| {
        // Large enough that only decompression can refuse the bombs.
        cfg.message_max_bytes = 4 << 20;
        cfg.request_read_timeout = Duration::from_secs(4);
    })
    .await;
    c.create_topic("bombs", 1).unwrap();
    let leader = c.partitions("bombs").unwrap()[0].0;
    let addr = c.addrs()[(leader - 1) as usize].clone();
    let conn = Connection::connect(&addr, conn_config()).await.unwrap();

    // Build every attack before measuring (the test's own buffers are not the broker's).
    let gz = batch(1, &bomb(1, 1 << 30));
    let zs = batch(4, &bomb(4, 1 << 30));
    println!(
        "gzip bomb {} bytes, zstd bomb {} bytes (1 GiB each)",
        gz.len(),
        zs.len()
    );
    let one = legacy_bomb("bombs", 4_000_000);
    let legacy: Vec<Vec<u8>> = (0..4).map(|_| one.clone()).collect();
    println!("legacy bomb {} bytes (4,000,000 messages)", legacy[0].len());
    let before = status_kib("VmRSS:");

    for (what, b) in [("gzip", gz), ("zstd", zs)] {
        let (_, resp) = within(30, what, conn.send(&produce_request("bombs", 1, b)))
            .await
            .unwrap();
        assert_eq!(
            resp.responses[0].partition_responses[0].error_code, 10,
            "{what} bomb: MESSAGE_TOO_LARGE"
        );
    }

    // Four legacy bombs at once.
    let tasks: Vec<_> = legacy
        .into_iter()
        .map(|f| {
            let addr = addr.clone();
            tokio::spawn(async move {
                let mut s = TcpStream::connect(&addr).await.unwrap();
                s.write_all(&f).await.unwrap();
                let mut resp = vec![0u8; 256];
                let mut n = 0;
                while n < 30 {
                    let k = s.read(&mut resp[n..]).await.unwrap();
                    assert!(k > 0, "closed before answering");
                    n += k;
                }
                legacy_code(&resp[..n], "bombs")
            })
        })
        .collect();
    for t in tasks {
        let code = within(60, "legacy bomb answered", t).await.unwrap();
        assert_eq!(code, 10, "legacy bomb: MESSAGE_TOO_LARGE");
    }
    assert_eq!(c.partitions("bombs").unwrap()[0].1, 0, "nothing stored");

    // Eight connections, each sending 60 MiB of a declared 99 MiB frame.
    let chunk = Bytes::from(vec![0u8; 1 << 20]);
    let mut senders = Vec::new();
    for _ in 0..8 {
        let addr = addr.clone();
        let chunk = chunk.clone();
        senders.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(&addr).await.unwrap();
            s.write_all(&(99i32 << 20).to_be_bytes()).await.unwrap();
            for _ in 0..60 {
                if s.write_all(&chunk).await.is_err() {
                    return;
                }
            }
            let mut b = [0u8; 8];
            let _ = s.read(&mut b).await;
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = status_kib("VmRSS:");
    // The read timeout (4 s here) closes them; the broker serves others meanwhile.
    let md = within(10, "metadata during the attack", async {
        let other = Connection::connect(&c.addrs()[leader as usize % 3], conn_config())
            .await
            .unwrap();
        other.send(&MetadataRequest::default()).await.unwrap()
    })
    .await;
    assert_eq!(md.1.brokers.len(), 3);
    for s in senders {
        within(20, "half-sent connections closed", s).await.unwrap();
    }
    let peak = status_kib("VmHWM:");
    println!(
        "RSS before {} MiB, during half-sent frames {} MiB, peak {} MiB",
        before / 1024,
        during / 1024,
        peak / 1024
    );
    assert!(
        peak < before + 300 * 1024,
        "peak RSS {} MiB vs {} MiB before the attacks",
        peak / 1024,
        before / 1024
    );
    c.shutdown().await;
}
