//! `kafkit consume`: print records of a topic (kcat -C), as a group member or from partitions.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::Args;
use kafkit::{Message, Reader, ReaderConfig, StartOffset};

/// Options of `kafkit consume`.
#[derive(Args, Debug)]
pub struct ConsumeArgs {
    /// Topic to read.
    #[arg(short, long)]
    pub topic: String,
    /// Consume as a member of this group (offsets are committed; -o applies where the group
    /// has no committed offset).
    #[arg(short = 'G', long)]
    pub group: Option<String>,
    /// Without a group: partitions to read (repeatable; default all).
    #[arg(short, long)]
    pub partition: Vec<i32>,
    /// Where to start: beginning, end, <offset>, -<N> (N before the end), @<ms timestamp>.
    #[arg(short, long, default_value = "beginning", allow_hyphen_values = true)]
    pub offset: String,
    /// Stop after this many records.
    #[arg(short, long)]
    pub count: Option<u64>,
    /// Exit once every partition is read to the end it had when consuming started.
    #[arg(short, long)]
    pub exit: bool,
    /// Output format (kcat's): %t topic, %p partition, %o offset, %k key, %s value, %K key
    /// length, %S value length, %h headers, %T timestamp (ms), \n \t \\. Default: "%s\n".
    #[arg(short, long)]
    pub format: Option<String>,
    /// One JSON object per record (topic, partition, offset, timestamp, key, value, headers).
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
}

/// A parsed `-o` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// Earliest offset.
    Beginning,
    /// High watermark.
    End,
    /// An absolute offset.
    At(i64),
    /// N records before the end.
    FromEnd(i64),
    /// First record at or after this time (ms since the epoch).
    Time(i64),
}

impl std::str::FromStr for OffsetSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("bad offset {s:?}: use beginning, end, <offset>, -<count> or @<timestamp ms>")
        };
        Ok(match s {
            "beginning" | "earliest" | "first" => OffsetSpec::Beginning,
            "end" | "latest" | "last" => OffsetSpec::End,
            _ if s.starts_with('@') => {
                OffsetSpec::Time(s[1..].parse().ok().filter(|t| *t >= 0).ok_or_else(bad)?)
            }
            _ if s.starts_with('-') => {
                OffsetSpec::FromEnd(s[1..].parse().ok().filter(|n| *n > 0).ok_or_else(bad)?)
            }
            _ => OffsetSpec::At(s.parse().ok().filter(|n| *n >= 0).ok_or_else(bad)?),
        })
    }
}

/// Renders one record with a kcat format string.
pub fn format_record(fmt: &str, m: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chars = fmt.chars().peekable();
    let lossy = |b: &Option<bytes::Bytes>| b.as_deref().unwrap_or_default().to_vec();
    while let Some(c) = chars.next() {
        match c {
            '%' => match chars.next() {
                Some('t') => out.extend_from_slice(m.topic.as_bytes()),
                Some('p') => out.extend_from_slice(m.partition.to_string().as_bytes()),
                Some('o') => out.extend_from_slice(m.offset.to_string().as_bytes()),
                Some('k') => out.extend(lossy(&m.key)),
                Some('s') => out.extend(lossy(&m.value)),
                Some('K') => out.extend_from_slice(
                    m.key
                        .as_ref()
                        .map_or(-1, |k| k.len() as i64)
                        .to_string()
                        .as_bytes(),
                ),
                Some('S') => out.extend_from_slice(
                    m.value
                        .as_ref()
                        .map_or(-1, |k| k.len() as i64)
                        .to_string()
                        .as_bytes(),
                ),
                Some('T') => out.extend_from_slice(timestamp_ms(m).to_string().as_bytes()),
                Some('h') => {
                    let hs: Vec<String> = m
                        .headers
                        .iter()
                        .map(|h| {
                            format!(
                                "{}={}",
                                h.key,
                                String::from_utf8_lossy(h.value.as_deref().unwrap_or_default())
                            )
                        })
                        .collect();
                    out.extend_from_slice(hs.join(",").as_bytes());
                }
                Some('%') => out.push(b'%'),
                Some(other) => {
                    out.push(b'%');
                    out.extend_from_slice(other.to_string().as_bytes());
                }
                None => out.push(b'%'),
            },
            '\\' => match chars.next() {
                Some('n') => out.push(b'\n'),
                Some('t') => out.push(b'\t'),
                Some('r') => out.push(b'\r'),
                Some('\\') => out.push(b'\\'),
                Some(other) => {
                    out.push(b'\\');
                    out.extend_from_slice(other.to_string().as_bytes());
                }
                None => out.push(b'\\'),
            },
            c => {
                let mut b = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    out
}

fn timestamp_ms(m: &Message) -> i64 {
    m.time
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(-1, |d| d.as_millis() as i64)
}

/// One record as a JSON object.
pub fn json_record(m: &Message) -> serde_json::Value {
    let text = |b: &Option<bytes::Bytes>| {
        b.as_ref()
            .map(|b| serde_json::Value::String(String::from_utf8_lossy(b).into_owned()))
            .unwrap_or(serde_json::Value::Null)
    };
    let headers: serde_json::Map<String, serde_json::Value> = m
        .headers
        .iter()
        .map(|h| (h.key.clone(), text(&h.value)))
        .collect();
    serde_json::json!({
        "topic": m.topic,
        "partition": m.partition,
        "offset": m.offset,
        "timestamp": timestamp_ms(m),
        "key": text(&m.key),
        "value": text(&m.value),
        "headers": headers,
    })
}

/// Flushes what was printed, then marks it processed (a group member's `pending`; empty
/// otherwise).
fn settle(
    out: &mut impl Write,
    pending: &mut Vec<Message>,
    reader: &Reader,
) -> std::io::Result<()> {
    out.flush()?;
    for m in pending.drain(..) {
        reader.mark(&m);
    }
    Ok(())
}

/// In a group: before partitions are revoked, the printing loop flushes what it printed and
/// marks it, so the commit that follows covers every printed record and the next owner
/// prints none of them again.
struct FlushOnRevoke {
    requests: tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<()>>,
}

impl kafkit::RebalanceListener for FlushOnRevoke {
    fn on_revoked<'a>(
        &'a self,
        _group: &'a kafkit::Rebalance,
        _partitions: &'a [(String, i32)],
    ) -> kafkit::reader::ListenerFuture<'a> {
        Box::pin(async move {
            let (done, wait) = tokio::sync::oneshot::channel();
            if self.requests.send(done).await.is_ok() {
                // A printing loop stuck on a blocked stdout must not hold the group up forever.
                let _ = tokio::time::timeout(Duration::from_secs(10), wait).await;
            }
        })
    }
}

pub async fn run(a: ConsumeArgs) -> anyhow::Result<()> {
    let spec: OffsetSpec = a.offset.parse().map_err(anyhow::Error::msg)?;
    let admin = super::admin()?;
    let ends = admin
        .list_offsets(&a.topic, -1)
        .await
        .with_context(|| format!("topic {}", a.topic))?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Message>(1024);
    let (flush_tx, mut flush_rx) =
        tokio::sync::mpsc::channel::<tokio::sync::oneshot::Sender<()>>(1);
    let mut readers = Vec::new();
    let mut base = ReaderConfig {
        brokers: super::brokers(),
        topic: a.topic.clone(),
        max_wait: Duration::from_millis(500),
        client_id: "kafkit-consume".into(),
        queue_capacity: 1000,
        ..Default::default()
    };
    // -X/-F properties win over the defaults (here and for the group settings below).
    super::apply_reader(&mut base)?;
    // Next offset to print per partition (None until known) and the end to reach with -e.
    let mut positions: BTreeMap<i32, i64> = BTreeMap::new();
    if let Some(group) = &a.group {
        let start_offset = match spec {
            OffsetSpec::Beginning => StartOffset::First,
            OffsetSpec::End => StartOffset::Last,
            OffsetSpec::Time(ms) => {
                StartOffset::Timestamp(UNIX_EPOCH + Duration::from_millis(ms as u64))
            }
            _ => bail!(
                "with -G, -o must be beginning, end or @timestamp (a group starts where it committed)"
            ),
        };
        let mut config = ReaderConfig {
            group_id: Some(group.clone()),
            start_offset,
            rebalance_listener: Some(kafkit::reader::Listener(std::sync::Arc::new(
                FlushOnRevoke {
                    requests: flush_tx.clone(),
                },
            ))),
            heartbeat_interval: Duration::from_secs(1),
            session_timeout: Duration::from_secs(10),
            // Printed records are marked (below); the reader commits marks every second, before
            // a rebalance takes their partitions away, and on close.
            commit_interval: Duration::from_secs(1),
            ..base
        };
        super::apply_reader(&mut config)?;
        let r = Reader::new(config)?;
        readers.push(std::sync::Arc::new(r));
    } else {
        let parts: Vec<i32> = if a.partition.is_empty() {
            ends.keys().copied().collect()
        } else {
            for p in &a.partition {
                if !ends.contains_key(p) {
                    bail!(
                        "partition {p} does not exist: {} has partitions 0..{}",
                        a.topic,
                        ends.len()
                    );
                }
            }
            a.partition.clone()
        };
        let starts = match spec {
            OffsetSpec::Beginning | OffsetSpec::FromEnd(_) | OffsetSpec::At(_) => {
                admin.list_offsets(&a.topic, -2).await?
            }
            OffsetSpec::End => ends.clone(),
            OffsetSpec::Time(ms) => admin.list_offsets(&a.topic, ms).await?,
        };
        for p in parts {
            let (first, end) = (starts[&p], ends[&p]);
            let start = match spec {
                OffsetSpec::FromEnd(n) => (end - n).max(first),
                OffsetSpec::At(o) => o,
                _ => first,
            };
            let r = Reader::new(ReaderConfig {
                partition: p,
                ..base.clone()
            })?;
            r.set_offset(start)?;
            positions.insert(p, start);
            readers.push(std::sync::Arc::new(r));
        }
    }
    drop(flush_tx);
    // Without a group, one reader per partition feeds one channel; a group member's single
    // reader is read directly (below), so nothing it delivered waits in a channel when its
    // partitions are revoked.
    let feeders: &[std::sync::Arc<Reader>] = if a.group.is_some() { &[] } else { &readers };
    for r in feeders {
        let (r, tx) = (r.clone(), tx.clone());
        tokio::spawn(async move {
            // fetch_message: nothing is committed until the record is printed (below).
            while let Ok(m) = r.fetch_message().await {
                if tx.send(m).await.is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut printed = 0u64;
    let done = |positions: &BTreeMap<i32, i64>, readers: &[std::sync::Arc<Reader>]| {
        if a.group.is_some() {
            let r = &readers[0];
            if r.stats().rebalances == 0 {
                return false;
            }
            let assignment = r.assignment();
            return assignment.iter().all(|(p, start)| {
                positions.get(p).copied().unwrap_or(*start).max(*start) >= ends[p]
            });
        }
        positions.iter().all(|(p, pos)| *pos >= ends[p])
    };
    // Printed but not yet flushed (group mode); marked once they reach stdout.
    let mut pending: Vec<Message> = Vec::new();
    let result: anyhow::Result<()> = async {
        loop {
            if a.count.is_some_and(|c| printed >= c) {
                break;
            }
            if a.exit && done(&positions, &readers) {
                break;
            }
            // Group members flush and mark what they printed after 100 ms without a record.
            let wait = if a.exit || a.group.is_some() {
                Duration::from_millis(100)
            } else {
                Duration::from_secs(3600)
            };
            let next = async {
                match a.group {
                    Some(_) => readers[0].fetch_message().await.ok(),
                    None => rx.recv().await,
                }
            };
            let m = tokio::select! {
                m = tokio::time::timeout(wait, next) => match m {
                    Ok(Some(m)) => m,
                    Ok(None) => break,
                    Err(_) => {
                        settle(&mut out, &mut pending, &readers[0])?;
                        continue
                    }
                },
                Some(done) = flush_rx.recv() => {
                    // Partitions are being revoked: what was printed counts, now.
                    settle(&mut out, &mut pending, &readers[0])?;
                    let _ = done.send(());
                    continue;
                }
                _ = super::shutdown_signal() => break,
            };
            positions.insert(m.partition, m.offset + 1);
            if a.json {
                serde_json::to_writer(&mut out, &json_record(&m))?;
                out.write_all(b"\n")?;
            } else {
                out.write_all(&format_record(a.format.as_deref().unwrap_or("%s\\n"), &m))?;
            }
            printed += 1;
            if a.group.is_some() {
                // Printed: flushed before it counts as processed, then marked for commit.
                pending.push(m);
                if pending.len() >= 1024 {
                    settle(&mut out, &mut pending, &readers[0])?;
                }
            } else if rx.is_empty() {
                out.flush()?;
            }
        }
        out.flush()?;
        Ok(())
    }
    .await;
    // No printing loop any more: the listener must not wait for one while closing.
    drop(flush_rx);
    if result.as_ref().is_err_and(is_broken_pipe) {
        // Whoever read our output is gone (`| head`): end quietly, as other Unix tools do.
        // What was not flushed was not printed: it is not marked, the group reads it again.
        pending.clear();
        for r in &readers {
            r.close().await?;
        }
        return Ok(());
    }
    if result.is_ok() {
        // What was printed is processed; close commits the marks.
        settle(&mut out, &mut pending, &readers[0])?;
    }
    for r in &readers {
        r.close().await?;
    }
    result
}

/// A write to a closed pipe somewhere in the error's chain.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_specs() {
        assert_eq!("beginning".parse(), Ok(OffsetSpec::Beginning));
        assert_eq!("end".parse(), Ok(OffsetSpec::End));
        assert_eq!("42".parse(), Ok(OffsetSpec::At(42)));
        assert_eq!("-10".parse(), Ok(OffsetSpec::FromEnd(10)));
        assert_eq!(
            "@1700000000000".parse(),
            Ok(OffsetSpec::Time(1_700_000_000_000))
        );
        for bad in ["", "x", "-", "-0", "@", "@x", "1.5"] {
            assert!(bad.parse::<OffsetSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn kcat_format() {
        let m = Message {
            topic: "t".into(),
            partition: 2,
            offset: 7,
            key: Some("k".into()),
            value: Some("v".into()),
            headers: vec![kafkit::Header {
                key: "a".into(),
                value: Some("b".into()),
            }],
            time: Some(UNIX_EPOCH + Duration::from_millis(1234)),
        };
        assert_eq!(
            format_record("%t/%p@%o %k=%s (%K,%S) [%h] %T 100%%\\n", &m),
            b"t/2@7 k=v (1,1) [a=b] 1234 100%\n"
        );
        let j = json_record(&m);
        assert_eq!(j["offset"], 7);
        assert_eq!(j["headers"]["a"], "b");
    }
}
