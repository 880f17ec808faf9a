//! Record batches: the broker's produce validation (`validate_batch`, decompression as a stream
//! under a cap) and the client's decoding (`decode_records_capped`), on the same bytes. A batch
//! the broker accepts must decode to exactly the records its header announces.
#![no_main]

use bytes::Bytes;
use kafkit_protocol::batch;
use kafkit_protocol::validate::validate_batch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cap = 1 << 20;
    let bytes = Bytes::copy_from_slice(data);
    let _ = batch::split_batches(data);
    let decoded = batch::decode_records_capped(&bytes, cap);
    if let Ok(h) = validate_batch(data, cap) {
        let records = decoded.expect("a batch the broker accepts decodes");
        assert_eq!(records.len(), h.record_count as usize);
    }
});
