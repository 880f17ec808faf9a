//! Legacy message sets (magic 0/1, compressed wrappers): decoding, and conversion to a v2 batch
//! (what the broker stores for Produce v0-v2), which must then pass the broker's validation.
#![no_main]

use bytes::Bytes;
use kafkit_protocol::legacy;
use kafkit_protocol::validate::validate_batch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let set = Bytes::copy_from_slice(data);
    let _ = legacy::decode_message_set(&set);
    if let Ok(batch) = legacy::message_set_to_batch(&set, 1 << 20, 1_700_000_000_000) {
        validate_batch(&batch, 4 << 20).expect("a converted set is a valid batch");
    }
});
