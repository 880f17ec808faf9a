//! What the broker's produce validation costs per record, against the CRC check alone (all a
//! broker did before issue 11). `cargo run --release -p kafkit-protocol --example validate_cost`
use std::time::Instant;

use bytes::Bytes;
use kafkit_protocol::batch::{encode_records, new_record, verify_crc, CODECS};
use kafkit_protocol::validate::validate_batch;

fn main() {
    let records: Vec<_> = (0..1000)
        .map(|i| {
            let v: Vec<u8> = (0..100u32)
                .map(|j| (i * 7 + j * 13) as u8 % 64 + 32)
                .collect();
            new_record(
                i as i64,
                1_700_000_000_000 + i as i64,
                None,
                Some(Bytes::from(v)),
            )
        })
        .collect();
    println!("1,000 records x 100 B per batch; ns per record (batch bytes)");
    println!("| codec | batch bytes | CRC only | validate_batch | added |");
    println!("|---|---|---|---|---|");
    // `CODEC=0..4` measures one codec only (for callgrind: counts instructions, not seconds).
    let only: Option<usize> = std::env::var("CODEC").ok().and_then(|c| c.parse().ok());
    let iters: usize = std::env::var("ITERS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(2_000);
    for (i, c) in CODECS.into_iter().enumerate() {
        if only.is_some_and(|o| o != i) {
            continue;
        }
        let batch = encode_records(&records, c).unwrap();
        let per_record = |f: &dyn Fn()| {
            f();
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_nanos() as f64 / (iters * records.len()) as f64
        };
        let crc = per_record(&|| {
            verify_crc(std::hint::black_box(&batch)).unwrap();
        });
        let full = per_record(&|| {
            validate_batch(std::hint::black_box(&batch), 64 << 20).unwrap();
        });
        println!(
            "| {c:?} | {} | {crc:.1} | {full:.1} | {:.1} |",
            batch.len(),
            full - crc
        );
    }
}
