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

#[test]
fn bad_writer_config_names_the_field() {
    let ok = WriterConfig {
        brokers: vec!["localhost:9093".into()],
        topic: "t".into(),
        ..Default::default()
    };
    assert_eq!(
        field_of(
            Writer::new(WriterConfig {
                brokers: vec![],
                ..ok.clone()
            })
            .unwrap_err()
        ),
        "brokers"
    );
    assert_eq!(
        field_of(
            Writer::new(WriterConfig {
                brokers: vec!["nohostport".into()],
                ..ok.clone()
            })
            .unwrap_err()
        ),
        "brokers"
    );
    assert_eq!(
        field_of(
            Writer::new(WriterConfig {
                topic: String::new(),
                ..ok.clone()
            })
            .unwrap_err()
        ),
        "topic"
    );
    assert_eq!(
        field_of(
            Writer::new(WriterConfig {
                topic: "bad topic!".into(),
                ..ok.clone()
            })
            .unwrap_err()
        ),
        "topic"
    );
    assert_eq!(
        field_of(
            Writer::new(WriterConfig {
                batch_size: 0,
                ..ok.clone()
            })
            .unwrap_err()
        ),
        "batch_size"
    );
    let msg = Writer::new(WriterConfig {
        batch_size: 0,
        ..ok
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
    let ok = ReaderConfig {
        brokers: vec!["localhost:9093".into()],
        topic: "t".into(),
        ..Default::default()
    };
    assert_eq!(
        field_of(
            Reader::new(ReaderConfig {
                brokers: vec![],
                ..ok.clone()
            })
            .unwrap_err()
        ),
        "brokers"
    );
    assert_eq!(
        field_of(
            Reader::new(ReaderConfig {
                topic: String::new(),
                ..ok.clone()
            })
            .unwrap_err()
        ),
        "topic"
    );
    assert_eq!(
        field_of(
            Reader::new(ReaderConfig {
                min_bytes: 10,
                max_bytes: 5,
                ..ok.clone()
            })
            .unwrap_err()
        ),
        "min_bytes"
    );
    assert_eq!(
        field_of(
            Reader::new(ReaderConfig {
                group_id: Some(String::new()),
                ..ok.clone()
            })
            .unwrap_err()
        ),
        "group_id"
    );
    assert_eq!(
        field_of(
            Reader::new(ReaderConfig {
                queue_capacity: 0,
                ..ok
            })
            .unwrap_err()
        ),
        "queue_capacity"
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
