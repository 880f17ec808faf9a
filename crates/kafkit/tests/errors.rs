//! Bad configuration and unreachable brokers give clear, typed errors quickly.

mod common;

use std::time::{Duration, Instant};

use kafkit::{Error, Message, Reader, ReaderConfig, Writer, WriterConfig};

fn field_of(e: Error) -> &'static str {
    match e {
        Error::Config { field, .. } => field,
        other => panic!("expected a config error, got {other}"),
    }
}

fn writer_field(change: impl FnOnce(&mut WriterConfig)) -> &'static str {
    let mut c = WriterConfig {
        brokers: vec!["localhost:9093".into()],
        topic: "t".into(),
        ..Default::default()
    };
    change(&mut c);
    field_of(Writer::new(c).unwrap_err())
}

fn reader_field(change: impl FnOnce(&mut ReaderConfig)) -> &'static str {
    let mut c = ReaderConfig {
        brokers: vec!["localhost:9093".into()],
        topic: "t".into(),
        ..Default::default()
    };
    change(&mut c);
    field_of(Reader::new(c).unwrap_err())
}

#[test]
fn bad_writer_config_names_the_field() {
    assert_eq!(writer_field(|c| c.brokers.clear()), "brokers");
    assert_eq!(
        writer_field(|c| c.brokers = vec!["nohostport".into()]),
        "brokers"
    );
    assert_eq!(writer_field(|c| c.topic.clear()), "topic");
    assert_eq!(writer_field(|c| c.topic = "bad topic!".into()), "topic");
    assert_eq!(writer_field(|c| c.batch_size = 0), "batch_size");
    assert_eq!(writer_field(|c| c.max_attempts = 0), "max_attempts");
    assert_eq!(writer_field(|c| c.max_in_flight = 0), "max_in_flight");
    assert_eq!(writer_field(|c| c.max_in_flight = 6), "max_in_flight");
    assert_eq!(
        writer_field(|c| c.compression_level = Some(3)),
        "compression_level"
    );
    assert_eq!(
        writer_field(|c| {
            c.compression = kafkit::Compression::Gzip;
            c.compression_level = Some(10)
        }),
        "compression_level"
    );
    let msg = Writer::new(WriterConfig {
        brokers: vec!["h:1".into()],
        topic: "t".into(),
        batch_size: 0,
        ..Default::default()
    })
    .unwrap_err()
    .to_string();
    assert!(msg.contains("batch_size"), "{msg}");
    assert_eq!(
        field_of(kafkit::RequiredAcks::from_i16(2).unwrap_err()),
        "required_acks"
    );
}

#[tokio::test]
async fn bad_reader_config_names_the_field() {
    assert_eq!(reader_field(|c| c.brokers.clear()), "brokers");
    assert_eq!(reader_field(|c| c.topic.clear()), "topic");
    assert_eq!(
        reader_field(|c| {
            c.min_bytes = 10;
            c.max_bytes = 5
        }),
        "min_bytes"
    );
    assert_eq!(
        reader_field(|c| c.group_id = Some(String::new())),
        "group_id"
    );
    assert_eq!(reader_field(|c| c.queue_capacity = 0), "queue_capacity");
    assert_eq!(
        reader_field(|c| c.heartbeat_interval = c.session_timeout),
        "heartbeat_interval"
    );
}

#[tokio::test]
async fn refused_connection_fails_fast() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    drop(l);
    let w = Writer::new(WriterConfig {
        brokers: vec![addr.clone()],
        topic: "t".into(),
        dial_timeout: Duration::from_secs(2),
        ..Default::default()
    })
    .unwrap();
    let t = Instant::now();
    let err = w
        .write_messages(vec![Message::value("x")])
        .await
        .unwrap_err();
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t.elapsed()
    );
    assert!(matches!(err, Error::NoBrokerReachable { .. }), "{err}");
    assert!(err.to_string().contains(&addr), "{err}");
}

#[tokio::test]
async fn silent_broker_fails_within_dial_timeout() {
    // Accepts TCP (the kernel completes the handshake) but never answers.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let w = Writer::new(WriterConfig {
        brokers: vec![addr],
        topic: "t".into(),
        dial_timeout: Duration::from_millis(500),
        ..Default::default()
    })
    .unwrap();
    let t = Instant::now();
    let err = common::within(
        10,
        "write to silent broker",
        w.write_messages(vec![Message::value("x")]),
    )
    .await
    .unwrap_err();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "took {took:?}"
    );
    assert!(err.to_string().contains("dial_timeout"), "{err}");
    drop(l);
}
