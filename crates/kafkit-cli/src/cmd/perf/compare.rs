//! `kafkit perf compare`: kafkit and librdkafka, same workloads, same cluster, one run.

use std::time::Duration;

use clap::Args;

/// Options of `perf compare`.
#[derive(Args, Debug, Clone)]
pub struct CompareOpts {
    /// Records per produce row with 100-byte records (1 KiB rows send a fifth as many).
    #[arg(long, default_value_t = 500_000)]
    pub num_records: u64,
    /// Records in the consume rows.
    #[arg(long, default_value_t = 1_000_000)]
    pub consume_records: u64,
    /// Rate of the latency rows, records/s.
    #[arg(long, default_value_t = 10_000)]
    pub latency_rate: i64,
    /// Duration of each latency row.
    #[arg(long, default_value = "5s", value_parser = crate::cmd::parse_duration)]
    pub latency_duration: Duration,
    /// Linger for both clients.
    #[arg(long, default_value = "5ms", value_parser = crate::cmd::parse_duration)]
    pub linger: Duration,
    /// Runs per row and client; the best is kept.
    #[arg(long, default_value_t = 1)]
    pub repeat: u32,
    /// Only these rows (substring match on the row name).
    #[arg(long)]
    pub only: Vec<String>,
    /// Print rows as JSON objects.
    #[arg(long)]
    pub json: bool,
    /// Where kafkit's client runs (see `perf produce --help`).
    #[arg(long, value_enum, default_value_t = super::load::ClientRuntime::CurrentThread)]
    pub client_runtime: super::load::ClientRuntime,
}

#[cfg(not(feature = "rdkafka"))]
pub async fn run(_o: CompareOpts) -> anyhow::Result<()> {
    anyhow::bail!(
        "this kafkit was built without librdkafka; run: cargo run --release --features kafkit-cli/rdkafka -- perf compare"
    )
}

/// The settings both clients get: linger, batches of 10,000 records / 1 MB, 5 in flight, 16 MiB
/// of buffer, idempotence with acks=all, no compression.
#[cfg(feature = "rdkafka")]
fn same_settings(
    record_size: usize,
    acks: kafkit::RequiredAcks,
    linger: Duration,
) -> super::ProducerOpts {
    super::ProducerOpts {
        record_size,
        acks,
        compression: kafkit::Compression::None,
        batch_size: 10_000,
        batch_bytes: 1_000_000,
        linger,
        no_idempotence: false,
        compression_level: None,
        max_in_flight: 5,
        buffer_memory: 16 * 1024 * 1024,
    }
}

#[cfg(feature = "rdkafka")]
fn produce_opts(
    producer: &super::ProducerOpts,
    partitions: i32,
    num_records: u64,
    throughput: i64,
) -> super::ProduceOpts {
    super::ProduceOpts {
        target: super::TargetOpts {
            topic: None,
            partitions,
            replication_factor: -1,
            json: false,
            plot: None,
            client_runtime: Default::default(),
        },
        producer: producer.clone(),
        num_records,
        throughput,
    }
}

#[cfg(feature = "rdkafka")]
pub async fn run(o: CompareOpts) -> anyhow::Result<()> {
    use super::report::Report;
    use super::{load, rdk, Target};
    use kafkit::RequiredAcks;

    let t = Target::open(&crate::cmd::global().brokers).await?;
    let admin = kafkit::Admin::with_security(t.brokers.clone(), crate::cmd::security())?;
    let wanted = |name: &str| o.only.is_empty() || o.only.iter().any(|w| name.contains(w));
    let mut rows: Vec<(String, Report, Report)> = Vec::new();
    let best = |a: Option<Report>, b: Report, by_latency: bool| -> Report {
        match a {
            None => b,
            Some(a) => {
                let better = if by_latency {
                    b.quantile_ms(0.99) < a.quantile_ms(0.99)
                } else {
                    b.records_per_sec() > a.records_per_sec()
                };
                if better {
                    b
                } else {
                    a
                }
            }
        }
    };
    println!(
        "{:<40} {:>14} {:>16} {:>7}",
        "workload", "kafkit", "librdkafka", "ratio"
    );
    let print_row = |name: &str, k: &Report, r: &Report, latency: bool| {
        if o.json {
            println!(
                "{}",
                serde_json::json!({"row": name, "kafkit": k.json(), "librdkafka": r.json()})
            );
            return;
        }
        if latency {
            let (kp, rp) = (
                k.quantile_ms(0.99).unwrap_or(f64::NAN),
                r.quantile_ms(0.99).unwrap_or(f64::NAN),
            );
            println!(
                "{name:<40} {:>11.2} ms {:>13.2} ms {:>6.2}x",
                kp,
                rp,
                rp / kp
            );
        } else {
            println!(
                "{name:<40} {:>10.0} r/s {:>12.0} r/s {:>6.2}x",
                k.records_per_sec(),
                r.records_per_sec(),
                k.records_per_sec() / r.records_per_sec()
            );
        }
    };
    let mut topic_no = 0;
    let mut fresh_topic = |parts: i32| {
        topic_no += 1;
        (format!("compare-{}-{topic_no}", std::process::id()), parts)
    };
    // Throughput rows.
    for size in [100usize, 1024] {
        for acks in [RequiredAcks::One, RequiredAcks::All] {
            for parts in [1, 6] {
                let name = format!(
                    "produce {size} B acks={} partitions={parts}",
                    if acks == RequiredAcks::All {
                        "all"
                    } else {
                        "1"
                    }
                );
                if !wanted(&name) {
                    continue;
                }
                let n = if size >= 1024 {
                    o.num_records / 5
                } else {
                    o.num_records
                };
                let producer = same_settings(size, acks, o.linger);
                let (mut k, mut r) = (None, None);
                for i in 0..o.repeat {
                    // The clients take turns going first: the first run after a pause meets
                    // slower brokers (their page-cache writes cost up to twice as much CPU
                    // then, seen with `perf record`), which should not always fall on one side.
                    for kafkit_turn in [i % 2 == 0, i % 2 == 1] {
                        let (topic, p) = fresh_topic(parts);
                        t.topic(&topic, p, -1).await?;
                        if kafkit_turn {
                            let opts = produce_opts(&producer, p, n, -1);
                            let kr =
                                load::produce(o.client_runtime, &t.brokers, &topic, &opts, true)
                                    .await?;
                            k = Some(best(k, kr, false));
                        } else {
                            let rr = rdk::produce(
                                t.brokers.clone(),
                                topic.clone(),
                                producer.clone(),
                                n,
                                -1,
                            )
                            .await?;
                            r = Some(best(r, rr, false));
                        }
                        let _ = admin.delete_topic(&topic).await;
                    }
                }
                let (k, r) = (k.expect("ran"), r.expect("ran"));
                print_row(&name, &k, &r, false);
                rows.push((name, k, r));
            }
        }
    }
    // Latency rows: p99 acknowledgement latency at a fixed rate.
    for acks in [RequiredAcks::One, RequiredAcks::All] {
        let name = format!(
            "p99 latency @{}/s 100 B acks={}",
            o.latency_rate,
            if acks == RequiredAcks::All {
                "all"
            } else {
                "1"
            }
        );
        if !wanted(&name) {
            continue;
        }
        let n = (o.latency_rate as f64 * o.latency_duration.as_secs_f64()) as u64;
        let producer = same_settings(100, acks, o.linger);
        let (mut k, mut r) = (None, None);
        for i in 0..o.repeat {
            let (topic, p) = fresh_topic(6);
            t.topic(&topic, p, -1).await?;
            // Taking turns going first, as in the throughput rows.
            for kafkit_turn in [i % 2 == 0, i % 2 == 1] {
                if kafkit_turn {
                    let opts = produce_opts(&producer, p, n, o.latency_rate);
                    let kr =
                        load::produce(o.client_runtime, &t.brokers, &topic, &opts, true).await?;
                    k = Some(best(k, kr, true));
                } else {
                    let rr = rdk::produce(
                        t.brokers.clone(),
                        topic.clone(),
                        producer.clone(),
                        n,
                        o.latency_rate,
                    )
                    .await?;
                    r = Some(best(r, rr, true));
                }
            }
            let _ = admin.delete_topic(&topic).await;
        }
        let (k, r) = (k.expect("ran"), r.expect("ran"));
        print_row(&name, &k, &r, true);
        rows.push((name, k, r));
    }
    // Consume rows: the same filled topic, a new group each. Many partitions with one
    // replica each (as issue 13 measured them); peak memory per client needs a process per
    // client: benches/consume-scale.sh.
    for (parts, rf) in [(6, -1), (300, 1), (1000, 1)] {
        let name = format!("consume 100 B partitions={parts}");
        if !wanted(&name) {
            continue;
        }
        let (topic, p) = fresh_topic(parts);
        t.topic(&topic, p, rf).await?;
        load::fill(&t.brokers, &topic, o.consume_records, 100).await?;
        // librdkafka twice: at its defaults and tuned for a backlog (see `rdk::consume`).
        let (mut k, mut r, mut rt) = (None, None, None);
        for _ in 0..o.repeat {
            let kr = load::consume(
                o.client_runtime,
                &t.brokers,
                &topic,
                o.consume_records,
                true,
                (None, None),
            )
            .await?;
            let rr =
                rdk::consume(t.brokers.clone(), topic.clone(), o.consume_records, false).await?;
            let rrt =
                rdk::consume(t.brokers.clone(), topic.clone(), o.consume_records, true).await?;
            k = Some(best(k, kr, false));
            r = Some(best(r, rr, false));
            rt = Some(best(rt, rrt, false));
        }
        let (k, r, rt) = (k.expect("ran"), r.expect("ran"), rt.expect("ran"));
        let default_name = format!("{name} (librdkafka defaults)");
        print_row(&default_name, &k, &r, false);
        rows.push((default_name, k.clone(), r));
        let tuned_name = format!("{name} (librdkafka tuned)");
        print_row(&tuned_name, &k, &rt, false);
        rows.push((tuned_name, k, rt));
        let _ = admin.delete_topic(&topic).await;
    }
    if !o.json {
        println!(
            "ratio: kafkit / librdkafka records/s (throughput rows), librdkafka / kafkit p99 (latency rows); above 1 means kafkit did better"
        );
    }
    t.shutdown().await;
    Ok(())
}
