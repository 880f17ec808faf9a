//! `kafkit cluster`: run the embedded cluster, optionally taking fault-injection commands on
//! standard input (`--control`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use kafkit_broker::Control;

/// Options of `kafkit cluster`.
#[derive(Args, Debug)]
pub struct ClusterArgs {
    /// Number of brokers.
    #[arg(long, default_value_t = 3)]
    pub brokers_count: usize,
    /// Port of the first broker; broker i listens on port-base + i (0: any free ports).
    #[arg(long, default_value_t = 9093)]
    pub port_base: u16,
    /// Where the cluster keeps its data (default: <user data dir>/kafkit/cluster).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Partitions of auto-created topics.
    #[arg(long, default_value_t = 3)]
    pub partitions: i32,
    /// Create topics when a client first names them (Kafka's `auto.create.topics.enable`).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub auto_create_topics: bool,
    /// Replication factor of auto-created topics (default: 3, or fewer brokers).
    #[arg(long)]
    pub replication_factor: Option<i16>,
    /// How long a new consumer group waits for more members before its first rebalance
    /// completes (Kafka's `group.initial.rebalance.delay.ms`; Kafka's default is 3000, this
    /// cluster's 0 so tests form groups at once).
    #[arg(long, default_value_t = 0)]
    pub group_initial_rebalance_delay_ms: u64,
    /// When logs reach the disk: "interval:1s" (the default: fsync every second), "every-write"
    /// (fsync before acknowledging), "never" (leave it to the OS).
    #[arg(long, default_value = "interval:1s", value_parser = parse_sync)]
    pub sync: kafkit_broker::log::SyncPolicy,
    /// Read fault-injection commands from standard input, one per line, answering "ok" or
    /// "error: ..." on standard output: `down B`, `up B`, `move TOPIC PARTITION B`,
    /// `error API_KEY CODE COUNT [B]`, `drop API_KEY COUNT [B]`, `delay MS [API_KEY]`,
    /// `cut A B`, `heal A B`, `clear`, `leader TOPIC PARTITION`, `isr TOPIC PARTITION`, and
    /// for the disk (the cluster then runs on a fault-injecting storage): `disk full` (no
    /// space beyond what is used), `disk capacity BYTES|none`, `disk used`,
    /// `disk fail OP FAULT [TIMES [PATH-PART]]` (OP: append, sync, setlen, read, write-atomic,
    /// open, remove; FAULT: eio, enospc, short:BYTES, delay:MS), `disk clear`.
    #[arg(long)]
    pub control: bool,
    /// Keep a few requests and responses of each API key and version in this directory, as
    /// fuzzer seeds and for bug reports (`DIR/request_decoding`, `DIR/response_decoding`).
    #[arg(long, env = "KAFKIT_CAPTURE_DIR")]
    pub capture: Option<PathBuf>,
    /// The listeners' security protocol (Kafka's names): PLAINTEXT, SSL, SASL_PLAINTEXT,
    /// SASL_SSL. With SSL/SASL_SSL and no --tls-cert the certificate is self-signed and its CA
    /// is written to <data-dir>/tls/ca.pem (printed at start).
    #[arg(long, default_value = "PLAINTEXT")]
    pub security_protocol: kafkit::SecurityProtocol,
    /// Use a self-signed certificate (the default for SSL/SASL_SSL without --tls-cert).
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    pub tls_self_signed: bool,
    /// The listeners' certificate chain (PEM); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by the CAs in this PEM file (mTLS).
    #[arg(long)]
    pub tls_client_ca: Option<PathBuf>,
    /// A SASL user as USER:PASSWORD (repeatable); kept as SCRAM-SHA-256/512 credentials (salted
    /// keys, never the password), which PLAIN checks too.
    #[arg(long = "sasl-user", value_name = "USER:PASSWORD")]
    pub sasl_users: Vec<String>,
    /// Enabled SASL mechanisms, comma-separated (default: PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,
    /// OAUTHBEARER; OAUTHBEARER accepts unsecured JWS tokens, as Kafka's unsecured validator).
    #[arg(long, value_delimiter = ',')]
    pub sasl_mechanisms: Vec<String>,
    /// Kafka's connections.max.reauth.ms: a SASL session's lifetime (0: no expiry).
    #[arg(long, default_value_t = 0)]
    pub connections_max_reauth_ms: u64,
}

pub async fn run(a: ClusterArgs) -> anyhow::Result<()> {
    let dir = a
        .data_dir
        .unwrap_or_else(|| super::default_data_dir("cluster"));
    let mut builder = kafkit_broker::Cluster::builder()
        .brokers(a.brokers_count)
        .port_base(a.port_base)
        .data_dir(&dir)
        .default_partitions(a.partitions)
        .auto_create_topics(a.auto_create_topics)
        .group_initial_rebalance_delay(std::time::Duration::from_millis(
            a.group_initial_rebalance_delay_ms,
        ));
    builder = builder.log_config(kafkit_broker::log::LogConfig {
        sync: a.sync,
        ..Default::default()
    });
    if let Some(rf) = a.replication_factor {
        builder = builder.default_replication_factor(rf);
    }
    // Under --control the storage injects disk faults on command (its bookkeeping costs a
    // lock per file operation, so only then).
    let disk = a.control.then(kafkit_broker::storage::FaultyStorage::new);
    if let Some(disk) = &disk {
        builder = builder.storage(disk.clone());
    }
    if let Some(capture) = a.capture {
        builder = builder.configure(|c| c.capture_dir = Some(capture));
    }
    let mut users = Vec::new();
    for u in &a.sasl_users {
        let (user, password) = u
            .split_once(':')
            .with_context(|| "--sasl-user: expected USER:PASSWORD".to_string())?;
        users.push((user.to_owned(), password.to_owned()));
    }
    builder = builder.security(kafkit_broker::auth::Security {
        protocol: a.security_protocol,
        tls: match (a.tls_cert, a.tls_key) {
            (Some(cert), Some(key)) => Some(kafkit_broker::auth::TlsSource::Files { cert, key }),
            _ => Some(kafkit_broker::auth::TlsSource::SelfSigned),
        },
        tls_client_ca: a.tls_client_ca,
        users,
        mechanisms: a.sasl_mechanisms,
        max_reauth: (a.connections_max_reauth_ms > 0)
            .then(|| Duration::from_millis(a.connections_max_reauth_ms)),
    });
    let _ = a.tls_self_signed; // the default; the flag documents the choice
    let cluster = builder
        .start()
        .await
        .context("starting the embedded cluster")?;
    println!(
        "kafkit cluster: {} brokers, data in {}",
        a.brokers_count,
        dir.display()
    );
    println!("bootstrap: {}", cluster.bootstrap());
    if cluster.security_protocol() != kafkit::SecurityProtocol::Plaintext {
        println!("security protocol: {}", cluster.security_protocol());
    }
    if let Some(ca) = cluster.tls_ca() {
        println!("tls ca: {}", ca.display());
    }
    let control = cluster.control();
    let commands = async {
        if !a.control {
            return std::future::pending::<()>().await;
        }
        // A plain thread reads stdin: tokio's stdin blocks runtime shutdown while a read waits.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(16);
        std::thread::spawn(move || {
            for line in std::io::stdin().lines() {
                let Ok(line) = line else { break };
                if tx.blocking_send(line).is_err() {
                    break;
                }
            }
        });
        while let Some(line) = rx.recv().await {
            if line.trim().is_empty() {
                continue;
            }
            match execute(&control, disk.as_ref(), &line) {
                Ok(out) => println!("ok{}{out}", if out.is_empty() { "" } else { " " }),
                Err(e) => println!("error: {e:#}"),
            }
        }
        // stdin closed: keep running until a signal
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = super::shutdown_signal() => {}
        _ = commands => {}
    }
    eprintln!("stopping...");
    cluster.shutdown().await;
    Ok(())
}

fn num<T: std::str::FromStr>(words: &[&str], i: usize, what: &str) -> anyhow::Result<T> {
    words
        .get(i)
        .with_context(|| format!("missing {what}"))?
        .parse()
        .map_err(|_| anyhow::anyhow!("{what}: {:?} is not a number", words[i]))
}

/// Runs one control command; returns what to print after "ok".
fn execute(
    c: &Control,
    disk: Option<&kafkit_broker::storage::FaultyStorage>,
    line: &str,
) -> anyhow::Result<String> {
    let w: Vec<&str> = line.split_whitespace().collect();
    match w.first().copied() {
        Some("disk") => return disk_command(disk.context("no fault-injecting storage")?, &w[1..]),
        Some("down") => c.broker_down(num(&w, 1, "broker")?),
        Some("up") => c.broker_up(num(&w, 1, "broker")?),
        Some("move") => {
            let topic = w.get(1).context("missing topic")?;
            c.move_leader(topic, num(&w, 2, "partition")?, num(&w, 3, "broker")?)?
        }
        Some("error") => {
            let broker = if w.len() > 4 {
                Some(num(&w, 4, "broker")?)
            } else {
                None
            };
            c.inject_error(
                num(&w, 1, "api key")?,
                num(&w, 2, "error code")?,
                num(&w, 3, "count")?,
                broker,
            )
        }
        Some("drop") => {
            let broker = if w.len() > 3 {
                Some(num(&w, 3, "broker")?)
            } else {
                None
            };
            c.drop_responses(num(&w, 1, "api key")?, num(&w, 2, "count")?, broker)
        }
        Some("delay") => {
            let key = if w.len() > 2 {
                Some(num(&w, 2, "api key")?)
            } else {
                None
            };
            c.delay(
                key,
                None,
                Duration::from_millis(num(&w, 1, "milliseconds")?),
            )
        }
        Some("cut") => c.cut_replication(num(&w, 1, "broker")?, num(&w, 2, "broker")?),
        Some("heal") => c.heal_replication(num(&w, 1, "broker")?, num(&w, 2, "broker")?),
        Some("clear") => c.clear_faults(),
        Some("leader") => {
            let topic = w.get(1).context("missing topic")?;
            let l = c
                .leader(topic, num(&w, 2, "partition")?)
                .context("no such partition")?;
            return Ok(l.to_string());
        }
        Some("isr") => {
            let topic = w.get(1).context("missing topic")?;
            let isr = c
                .isr(topic, num(&w, 2, "partition")?)
                .context("no such partition")?;
            return Ok(isr
                .iter()
                .map(|b| b.to_string())
                .collect::<Vec<_>>()
                .join(","));
        }
        Some(other) => bail!("unknown command {other:?}"),
        None => bail!("empty command"),
    }
    Ok(String::new())
}

fn disk_command(
    disk: &kafkit_broker::storage::FaultyStorage,
    w: &[&str],
) -> anyhow::Result<String> {
    use kafkit_broker::storage::{Fault, FaultRule, Op};
    match w.first().copied() {
        Some("full") => disk.set_capacity(Some(disk.used())),
        Some("capacity") => match w.get(1).copied() {
            Some("none") => disk.set_capacity(None),
            _ => disk.set_capacity(Some(num(w, 1, "bytes")?)),
        },
        Some("used") => return Ok(disk.used().to_string()),
        Some("clear") => {
            disk.clear();
            disk.set_capacity(None);
        }
        Some("fail") => {
            let op = match w.get(1).copied() {
                Some("append") => Op::Append,
                Some("sync") => Op::Sync,
                Some("setlen") => Op::SetLen,
                Some("read") => Op::Read,
                Some("write-atomic") => Op::WriteAtomic,
                Some("open") => Op::Open,
                Some("remove") => Op::Remove,
                other => bail!("unknown disk operation {other:?}"),
            };
            let fault = match w.get(2).copied() {
                Some("eio") => Fault::Io,
                Some("enospc") => Fault::NoSpace,
                Some(f) if f.starts_with("short:") => {
                    Fault::Short(f[6..].parse().map_err(|_| anyhow::anyhow!("short:BYTES"))?)
                }
                Some(f) if f.starts_with("delay:") => Fault::Delay(Duration::from_millis(
                    f[6..].parse().map_err(|_| anyhow::anyhow!("delay:MS"))?,
                )),
                other => bail!("unknown disk fault {other:?}"),
            };
            let mut rule = match w.get(3) {
                Some(_) => FaultRule::times(op, fault, num(w, 3, "times")?),
                None => FaultRule::always(op, fault),
            };
            if let Some(part) = w.get(4) {
                rule = rule.on(*part);
            }
            disk.inject(rule);
        }
        other => bail!("unknown disk command {other:?}"),
    }
    Ok(String::new())
}

fn parse_sync(s: &str) -> Result<kafkit_broker::log::SyncPolicy, String> {
    use kafkit_broker::log::SyncPolicy;
    match s {
        "never" => Ok(SyncPolicy::Never),
        "every-write" => Ok(SyncPolicy::EveryWrite),
        _ => match s.strip_prefix("interval:") {
            Some(d) => Ok(SyncPolicy::Interval(super::parse_duration(d)?)),
            None => Err(format!(
                "{s:?}: use interval:<duration>, every-write or never"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafkit_broker::log::SyncPolicy;

    #[test]
    fn sync_policies_parse() {
        assert_eq!(parse_sync("never"), Ok(SyncPolicy::Never));
        assert_eq!(parse_sync("every-write"), Ok(SyncPolicy::EveryWrite));
        assert_eq!(
            parse_sync("interval:250ms"),
            Ok(SyncPolicy::Interval(std::time::Duration::from_millis(250)))
        );
        assert!(parse_sync("sometimes").is_err());
    }
}
