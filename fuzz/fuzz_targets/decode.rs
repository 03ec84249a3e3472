//! Feeds arbitrary bytes to the capture decoder: it must return records or an error, never
//! panic, and never allocate more than a chunk's declared (and capped) size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memshim_format::Reader;

fuzz_target!(|data: &[u8]| {
    // As found on disk, and behind a valid header (so the chunk decoder is reached often).
    if let Ok(reader) = Reader::new(data) {
        for record in reader {
            if record.is_err() {
                break;
            }
        }
    }
    // Behind a plain header and behind a compressed one (the zstd block decoder).
    for flags in [0, memshim_format::FLAG_ZSTD] {
        let mut framed =
            memshim_format::encode_header_with(&memshim_format::Header::default(), flags);
        framed.extend_from_slice(data);
        if let Ok(reader) = Reader::new(&framed[..]) {
            for record in reader {
                if record.is_err() {
                    break;
                }
            }
        }
    }
});
