//! proptest round-trips for the hand-written codecs: legacy message sets (magic 0/1), their
//! conversion to v2 batches (which must pass the broker's validation), and v2 batches encoded
//! in every codec through the bounded decoder.

use bytes::Bytes;
use kafkit_protocol::batch::{decode_records, encode_records, new_record, CODECS};
use kafkit_protocol::legacy::{
    decode_message_set, encode_message_set, message_set_to_batch, LegacyRecord,
};
use kafkit_protocol::validate::validate_batch;
use proptest::prelude::*;

fn opt_bytes() -> impl Strategy<Value = Option<Bytes>> {
    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from))
}

fn legacy_records() -> impl Strategy<Value = Vec<LegacyRecord>> {
    proptest::collection::vec((0i64..1 << 40, opt_bytes(), opt_bytes()), 1..20).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (ts, key, value))| LegacyRecord {
                offset: i as i64,
                timestamp: ts,
                key,
                value,
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn legacy_sets_roundtrip_and_convert(recs in legacy_records(), magic in 0i8..=1) {
        let set = encode_message_set(&recs, magic);
        let back = decode_message_set(&set).unwrap();
        prop_assert_eq!(back.len(), recs.len());
        for (a, b) in back.iter().zip(&recs) {
            prop_assert_eq!(&a.key, &b.key);
            prop_assert_eq!(&a.value, &b.value);
            prop_assert_eq!(a.offset, b.offset);
        }
        let batch = message_set_to_batch(&set, 1 << 20, 1_700_000_000_000).unwrap();
        let h = validate_batch(&batch, 1 << 20).unwrap();
        prop_assert_eq!(h.record_count as usize, recs.len());
        let v2 = decode_records(&batch).unwrap();
        for (a, b) in v2.iter().zip(&recs) {
            prop_assert_eq!(&a.key, &b.key);
            prop_assert_eq!(&a.value, &b.value);
            if magic == 1 {
                prop_assert_eq!(a.timestamp, b.timestamp);
            }
        }
    }

    #[test]
    fn v2_batches_validate_and_decode(
        values in proptest::collection::vec((opt_bytes(), opt_bytes()), 1..30),
        codec in 0usize..5,
    ) {
        let c = CODECS[codec];
        let recs: Vec<_> = values
            .into_iter()
            .enumerate()
            .map(|(i, (k, v))| new_record(i as i64, 1_700_000_000_000 + i as i64, k, v))
            .collect();
        let batch = encode_records(&recs, c).unwrap();
        let h = validate_batch(&batch, 1 << 20).unwrap();
        prop_assert_eq!(h.record_count as usize, recs.len());
        let back = decode_records(&batch).unwrap();
        prop_assert_eq!(back.len(), recs.len());
        for (a, b) in back.iter().zip(&recs) {
            prop_assert_eq!(&a.key, &b.key);
            prop_assert_eq!(&a.value, &b.value);
        }
    }
}
