//! The checkpoint reader on arbitrary bytes: `Checkpoint::from_bytes` returns a checkpoint or a
//! `Corrupt` error, never panics and never allocates from an untrusted length; what it accepts
//! re-serializes to the same bytes.
#![no_main]

use antmmf_core::checkpoint::Checkpoint;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(ckpt) = Checkpoint::from_bytes(data, Path::new("fuzz.ckpt")) {
        // Sections are verified against their checksums; the state round-trips through JSON.
        let again = Checkpoint::from_bytes(&ckpt.to_bytes(), Path::new("fuzz.ckpt"))
            .expect("a re-serialized checkpoint reads back");
        assert_eq!(again, ckpt);
    }
});
