//! Fuzz the /dev/kmsg record decoder and the classification of the decoded record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vfguard_model::KmsgRecord;

fuzz_target!(|data: &[u8]| {
    if let Ok(rec) = KmsgRecord::decode(data) {
        let _ = vfguard_parse::kmsg(&rec);
        // Encoding a decoded record and decoding it again gives the same record.
        let again = KmsgRecord::decode(rec.encode().as_bytes()).expect("re-decode");
        assert_eq!(again.text, rec.text);
    }
});
