//! `kafkit produce`: records from stdin or a file, one per line (kcat -P).

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Args;
use kafkit::{Balancer, Compression, Header, Message, RequiredAcks, Writer, WriterConfig};

/// Options of `kafkit produce`.
#[derive(Args, Debug)]
pub struct ProduceArgs {
    /// Topic to write to.
    #[arg(short, long)]
    pub topic: String,
    /// Split each line into key and value at the first occurrence of this delimiter (kcat -K).
    #[arg(short = 'K', long = "key-delimiter")]
    pub key_delimiter: Option<String>,
    /// Header added to every record, `key=value` (repeatable).
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// Read records from this file (one per line) instead of stdin.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Required acks: 0, 1, -1/all.
    #[arg(long, default_value = "all", value_parser = super::parse_acks, allow_hyphen_values = true)]
    pub acks: RequiredAcks,
    /// Compression: none, gzip, snappy, lz4, zstd.
    #[arg(long, default_value = "none", value_parser = super::parse_compression)]
    pub compression: Compression,
    /// Write every record to this partition (default: by key, murmur2; round robin unkeyed).
    #[arg(short, long)]
    pub partition: Option<i32>,
    /// Most records per batch.
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
    /// Longest a batch waits to fill.
    #[arg(long, default_value = "10ms", value_parser = super::parse_duration)]
    pub batch_timeout: Duration,
    /// Compression level (gzip 0-9, lz4 0-16, zstd 1-22; default: the codec's).
    #[arg(long)]
    pub compression_level: Option<i32>,
    /// Create the topic if the cluster allows auto-creation (default: a missing topic is an
    /// error).
    #[arg(long)]
    pub create: bool,
}

fn parse_header(h: &str) -> anyhow::Result<Header> {
    match h.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok(Header {
            key: k.to_owned(),
            value: Some(Bytes::copy_from_slice(v.as_bytes())),
        }),
        _ => bail!("malformed header {h:?}: expected -H key=value"),
    }
}

pub async fn run(a: ProduceArgs) -> anyhow::Result<()> {
    let headers = a
        .headers
        .iter()
        .map(|h| parse_header(h))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let admin = super::admin()?;
    if !a.create {
        let parts = admin
            .describe_topic(&a.topic)
            .await
            .with_context(|| format!("topic {}", a.topic))?;
        if let Some(p) = a.partition {
            if p < 0 || p as usize >= parts.len() {
                bail!(
                    "partition {p} does not exist: {} has partitions 0..{}",
                    a.topic,
                    parts.len()
                );
            }
        }
    }
    let balancer = match a.partition {
        Some(p) => Balancer::Custom(Arc::new(move |_: &Message, _| p as usize)),
        None => Balancer::Murmur2,
    };
    let mut config = WriterConfig {
        brokers: super::brokers(),
        topic: a.topic.clone(),
        balancer,
        batch_size: a.batch_size,
        batch_timeout: a.batch_timeout,
        required_acks: a.acks,
        compression: a.compression,
        compression_level: a.compression_level,
        allow_auto_topic_creation: a.create,
        client_id: "kafkit-produce".into(),
        ..Default::default()
    };
    // -X/-F properties win over the flags' defaults.
    super::apply_writer(&mut config)?;
    let writer = Writer::new(config)?;

    // Lines are read on a plain thread: tokio's stdin would block runtime shutdown.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4096);
    let file = a.file.clone();
    std::thread::spawn(move || {
        let input: Box<dyn BufRead> = match file {
            Some(f) => match std::fs::File::open(&f) {
                Ok(h) => Box::new(std::io::BufReader::new(h)),
                Err(e) => {
                    let _ = tx.blocking_send(Err(std::io::Error::new(
                        e.kind(),
                        format!("{}: {e}", f.display()),
                    )));
                    return;
                }
            },
            None => Box::new(std::io::stdin().lock()),
        };
        for line in input.split(b'\n') {
            let line = line.map(|mut l| {
                if l.last() == Some(&b'\r') {
                    l.pop();
                }
                l
            });
            if tx.blocking_send(line).is_err() {
                return;
            }
        }
    });

    let started = Instant::now();
    let mut deliveries = Vec::new();
    let (mut count, mut bytes) = (0u64, 0u64);
    let mut chunk = Vec::new();
    loop {
        let line = tokio::select! {
            l = rx.recv() => l,
            _ = super::shutdown_signal() => None,
        };
        let Some(line) = line else { break };
        let line = line.context("reading records")?;
        let (key, value) = match &a.key_delimiter {
            Some(d) => match find(&line, d.as_bytes()) {
                Some(i) => (
                    Some(Bytes::copy_from_slice(&line[..i])),
                    Bytes::copy_from_slice(&line[i + d.len()..]),
                ),
                None => (None, Bytes::from(line)),
            },
            None => (None, Bytes::from(line)),
        };
        bytes += value.len() as u64 + key.as_ref().map_or(0, |k| k.len() as u64);
        count += 1;
        chunk.push(Message {
            key,
            value: Some(value),
            headers: headers.clone(),
            ..Default::default()
        });
        if chunk.len() >= a.batch_size || rx.is_empty() {
            let d = writer
                .write_messages_nowait(std::mem::take(&mut chunk))
                .await?;
            deliveries.push(d);
        }
    }
    if !chunk.is_empty() {
        deliveries.push(writer.write_messages_nowait(chunk).await?);
    }
    let mut failed = 0usize;
    let mut first_error = None;
    for d in deliveries {
        if let Err(e) = d.wait().await {
            if let kafkit::Error::WriteFailed { failed: f, .. } = &e {
                failed += f.iter().map(|(i, _)| i.len()).sum::<usize>();
            } else {
                failed += 1;
            }
            first_error.get_or_insert(e);
        }
    }
    writer.close().await?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "produced {} of {count} records ({bytes} bytes read) to {} in {secs:.3} s ({:.0} records/s){}",
        count - failed as u64,
        a.topic,
        (count - failed as u64) as f64 / secs.max(1e-9),
        if failed > 0 {
            format!("; {failed} failed")
        } else {
            String::new()
        }
    );
    if let Some(e) = first_error {
        bail!("{failed} records not written: {e}");
    }
    Ok(())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse() {
        let h = parse_header("a=b=c").unwrap();
        assert_eq!(h.key, "a");
        assert_eq!(h.value.as_deref(), Some(&b"b=c"[..]));
        assert!(parse_header("novalue").is_err());
        assert!(parse_header("=x").is_err());
    }
}
