//! Property tests: whatever the writer frames, the reader gives back; cut files stop cleanly.

use memshim_format::*;
use proptest::prelude::*;

fn arb_kind() -> impl Strategy<Value = AllocKind> {
    prop_oneof![
        Just(AllocKind::Malloc),
        Just(AllocKind::Calloc),
        Just(AllocKind::Realloc),
        Just(AllocKind::Aligned),
        Just(AllocKind::Mmap)
    ]
}

fn arb_record() -> impl Strategy<Value = Record> {
    prop_oneof![
        (
            any::<u64>(),
            prop::collection::vec(any::<u64>(), 0..40),
            prop::collection::vec((any::<u64>(), any::<u32>(), any::<bool>()), 0..5)
        )
            .prop_map(|(id, frames, py)| Record::Stack {
                id,
                frames,
                python: py
                    .into_iter()
                    .map(|(code, instr, entry)| PyFrame { code, instr, entry })
                    .collect()
            }),
        (
            any::<u64>(),
            any::<u32>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            arb_kind(),
            any::<bool>()
        )
            .prop_map(
                |(t, tid, addr, size, stack, kind, inherited)| Record::Alloc {
                    t,
                    tid,
                    addr,
                    size,
                    stack,
                    kind,
                    inherited
                }
            ),
        (any::<u64>(), any::<u32>(), any::<u64>(), any::<u64>())
            .prop_map(|(t, tid, addr, size)| Record::Free { t, tid, addr, size }),
        (any::<u64>(), any::<u32>(), any::<u64>(), any::<u64>())
            .prop_map(|(t, tid, addr, len)| Record::Munmap { t, tid, addr, len }),
        (any::<u32>(), ".{0,20}").prop_map(|(tid, name)| Record::Thread { tid, name }),
        (any::<u64>(), ".{0,20}", any::<u32>()).prop_map(|(t, label, thread)| Record::Marker {
            t,
            marker: Marker::User { label, thread }
        }),
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>()
        )
            .prop_map(
                |(t, rss, heap_in_use, sampled_allocated, sampled_freed, ring_full)| Record::Tick {
                    t,
                    rss,
                    heap_in_use,
                    sampled_allocated,
                    sampled_freed,
                    dropped: Drops {
                        ring_full,
                        region_full: 0
                    }
                }
            ),
        (
            ".{0,30}",
            any::<u64>(),
            prop::collection::vec((any::<u64>(), any::<u64>()), 0..4),
            prop::collection::vec(any::<u8>(), 0..20)
        )
            .prop_map(
                |(path, base, segments, build_id)| Record::Modules(vec![Module {
                    path,
                    base,
                    segments,
                    build_id
                }])
            ),
        (any::<u32>(), prop::collection::vec(any::<u8>(), 0..50))
            .prop_map(|(kind, data)| Record::Extension { kind, data }),
        any::<u64>().prop_map(|t| Record::End {
            t,
            how: EndKind::Exit,
            dropped: Drops::default()
        }),
    ]
}

fn header() -> Header {
    Header {
        pid: 42,
        exe: "/usr/bin/python3".into(),
        argv: vec!["python3".into(), "serve.py".into()],
        rate: 512 << 10,
        page_size: 4096,
        stack_depth: 128,
        ..Default::default()
    }
}

fn encode(chunks: &[Vec<Record>]) -> Vec<u8> {
    let mut out = encode_header(&header());
    for c in chunks {
        let mut b = ChunkBuilder::new();
        for r in c {
            b.push(r);
        }
        b.finish_into(&mut out);
    }
    out
}

proptest! {
    #[test]
    fn records_round_trip(chunks in prop::collection::vec(prop::collection::vec(arb_record(), 1..20), 0..5)) {
        let bytes = encode(&chunks);
        let mut r = Reader::new(&bytes[..]).unwrap();
        prop_assert_eq!(r.header(), &header());
        let got: Vec<Record> = r.by_ref().collect::<Result<_, _>>().unwrap();
        let want: Vec<Record> = chunks.into_iter().flatten().collect();
        prop_assert_eq!(got, want);
        prop_assert!(!r.truncated());
    }

    #[test]
    fn a_cut_file_yields_whole_chunks_then_stops(chunks in prop::collection::vec(prop::collection::vec(arb_record(), 1..8), 1..5), cut in any::<prop::sample::Index>()) {
        let bytes = encode(&chunks);
        let hdr_len = encode_header(&header()).len();
        // Offsets where a chunk ends: cutting there leaves a shorter but whole file.
        let mut boundaries = vec![hdr_len];
        for c in &chunks {
            let mut b = ChunkBuilder::new();
            c.iter().for_each(|r| b.push(r));
            let mut framed = Vec::new();
            b.finish_into(&mut framed);
            boundaries.push(boundaries.last().unwrap() + framed.len());
        }
        let cut_at = hdr_len + cut.index(bytes.len() - hdr_len);
        let mut r = Reader::new(&bytes[..cut_at]).unwrap();
        let got: Vec<Record> = r.by_ref().collect::<Result<_, _>>().unwrap();
        let whole = boundaries.iter().filter(|&&b| b <= cut_at).count() - 1;
        let want: Vec<Record> = chunks.into_iter().take(whole).flatten().collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(r.truncated(), !boundaries.contains(&cut_at));
    }

    #[test]
    fn arbitrary_bytes_never_panic(tail in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut bytes = encode_header(&header());
        bytes.extend_from_slice(&tail);
        if let Ok(r) = Reader::new(&bytes[..]) {
            for rec in r { if rec.is_err() { break; } }
        }
        let _ = Reader::new(&tail[..]).map(|r| r.count());
    }
}

#[test]
fn refuses_newer_version() {
    let mut bytes = encode_header(&header());
    bytes[8] = 99;
    match Reader::new(&bytes[..]) {
        Err(e @ Error::NewerVersion(99)) => assert!(e.to_string().contains("newer")),
        other => panic!("expected NewerVersion, got {:?}", other.err()),
    }
}

#[test]
fn refuses_empty_and_foreign_files() {
    assert!(matches!(Reader::new(&b""[..]), Err(Error::Empty)));
    assert!(matches!(
        Reader::new(&b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\0\0"[..]),
        Err(Error::NotACapture)
    ));
    assert!(matches!(Reader::new(&b"MEMSH"[..]), Err(Error::Truncated)));
}

#[test]
fn flipped_bit_in_a_full_chunk_is_corrupt() {
    let mut bytes = encode(&[vec![Record::Thread {
        tid: 1,
        name: "main".into(),
    }]]);
    let n = bytes.len();
    bytes[n - 2] ^= 0x40;
    let r = Reader::new(&bytes[..]).unwrap();
    let res: Result<Vec<_>, _> = r.collect();
    assert!(matches!(res, Err(Error::Corrupt(_))));
}

#[test]
fn weights_are_unbiased_in_expectation() {
    // p * weight == 1 for every size: the estimator's expectation is the truth.
    for size in [1u64, 16, 4096, 512 << 10, 64 << 20] {
        let p = sample_probability(size, 512 << 10);
        assert!((p * sample_weight(size, 512 << 10) - 1.0).abs() < 1e-9);
    }
    assert_eq!(sample_weight(100, 0), 1.0);
}

/// A compressed (version 2, FLAG_ZSTD) capture as the shim writes it: the header plain, then one
/// block per chunk. Returns the bytes and the file offset after each block.
fn encode_zstd(chunks: &[Vec<Record>]) -> (Vec<u8>, Vec<usize>) {
    encode_zstd_at(Level::Fast, chunks)
}

/// As [`encode_zstd`], compressed at `level` (Dense primes each block with the ones before).
fn encode_zstd_at(level: Level, chunks: &[Vec<Record>]) -> (Vec<u8>, Vec<usize>) {
    let mut z = memshim_format::Compressor::new(level).unwrap();
    let mut out = memshim_format::encode_header_with(&header(), z.flags());
    let mut ends = vec![out.len()];
    for c in chunks {
        let mut b = ChunkBuilder::new();
        c.iter().for_each(|r| b.push(r));
        let mut framed = Vec::new();
        b.finish_into(&mut framed);
        out.extend_from_slice(z.compress(&framed).unwrap());
        z.written(&framed);
        ends.push(out.len());
    }
    (out, ends)
}

fn level() -> impl Strategy<Value = Level> {
    prop_oneof![Just(Level::Fast), Just(Level::Dense)]
}

proptest! {
    #[test]
    fn compressed_records_round_trip(chunks in prop::collection::vec(prop::collection::vec(arb_record(), 1..20), 0..5), level in level()) {
        let (bytes, _) = encode_zstd_at(level, &chunks);
        let mut r = Reader::new(&bytes[..]).unwrap();
        let got: Vec<Record> = r.by_ref().collect::<Result<_, _>>().unwrap();
        let want: Vec<Record> = chunks.into_iter().flatten().collect();
        prop_assert_eq!(got, want);
        prop_assert!(!r.truncated());
        prop_assert_eq!(r.bytes_read(), bytes.len() as u64);
    }

    #[test]
    fn a_cut_compressed_file_yields_what_was_written_before_the_cut(chunks in prop::collection::vec(prop::collection::vec(arb_record(), 1..8), 1..5), cut in any::<prop::sample::Index>(), level in level()) {
        let (bytes, ends) = encode_zstd_at(level, &chunks);
        let hdr_len = ends[0];
        let cut_at = hdr_len + cut.index(bytes.len() - hdr_len);
        let mut r = Reader::new(&bytes[..cut_at]).unwrap();
        let got: Vec<Record> = r.by_ref().collect::<Result<_, _>>().unwrap();
        let whole = ends.iter().filter(|&&e| e <= cut_at).count() - 1;
        let want: Vec<Record> = chunks.into_iter().take(whole).flatten().collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(r.truncated(), !ends.contains(&cut_at));
    }

    #[test]
    fn arbitrary_compressed_bytes_never_panic(tail in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut bytes = memshim_format::encode_header_with(&header(), memshim_format::FLAG_ZSTD);
        bytes.extend_from_slice(&tail);
        if let Ok(r) = Reader::new(&bytes[..]) {
            for rec in r { if rec.is_err() { break; } }
        }
    }
}

#[test]
fn compression_shrinks_repetitive_chunks() {
    // Module maps resent after each dlopen: the stream's window makes the repeats nearly free.
    let map: Vec<Module> = (0..60)
        .map(|i| Module {
            path: format!("/usr/lib/python3/dist-packages/numpy/core/_multiarray_{i}.so"),
            base: 0x7f00_0000_0000 + i * 0x10_0000,
            segments: vec![(0, 0x1000), (0x1000, 0x8000)],
            build_id: vec![i as u8; 20],
        })
        .collect();
    let chunks: Vec<Vec<Record>> = (0..20)
        .map(|_| vec![Record::Modules(map.clone())])
        .collect();
    let plain = encode(&chunks).len();
    let (zstd, _) = encode_zstd(&chunks);
    assert!(zstd.len() * 10 < plain, "{} vs {plain} bytes", zstd.len());
}

#[test]
fn flipped_bit_in_a_compressed_stream_is_caught_or_harmless() {
    let records: Vec<Record> = (0..200)
        .map(|i| Record::Thread {
            tid: i,
            name: format!("worker-{i}"),
        })
        .collect();
    let (clean, ends) = encode_zstd(std::slice::from_ref(&records));
    let mut errors = 0;
    for at in ends[0]..clean.len() {
        let mut bytes = clean.clone();
        bytes[at] ^= 0x10;
        let mut r = Reader::new(&bytes[..]).unwrap();
        let got: Result<Vec<_>, _> = r.by_ref().collect();
        match got {
            // Some header bits do not change what decodes; a damaged block size can make the
            // stream look cut short (reported as truncated). Wrong records never come back.
            Ok(got) => {
                assert!(
                got == records || (r.truncated() && records.starts_with(&got)),
                "a flipped bit at {at} changed the records: got {} of {}, truncated {}, first {:?}",
                got.len(), records.len(), r.truncated(), got.first()
            )
            }
            Err(Error::Corrupt(_)) => errors += 1,
            Err(e) => panic!("at {at}: {e}"),
        }
    }
    assert!(errors > 0);
}

#[test]
fn version_1_files_still_decode() {
    // Version 1 chunks were plain postcard, as written by memshim 0.1 before compression.
    let thread = Record::Thread {
        tid: 7,
        name: "main".into(),
    };
    let mut bytes = memshim_format::encode_header(&header());
    bytes[8] = 1;
    memshim_format::encode_chunk(&postcard::to_allocvec(&thread).unwrap(), &mut bytes);
    let got: Vec<Record> = Reader::new(&bytes[..])
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        got,
        vec![Record::Thread {
            tid: 7,
            name: "main".into()
        }]
    );
    bytes[10] = 1; // a version 1 file cannot claim compression
    assert!(matches!(Reader::new(&bytes[..]), Err(Error::Corrupt(_))));
}

#[test]
fn version_2_files_still_decode() {
    // Version 2 wrote every record, allocations and frees too, as plain postcard.
    let recs = vec![
        Record::Alloc {
            t: 5,
            tid: 9,
            addr: 0x5555_0000_1000,
            size: 64,
            stack: 1,
            kind: AllocKind::Calloc,
            inherited: false,
        },
        Record::Free {
            t: 6,
            tid: 9,
            addr: 0x5555_0000_1000,
            size: 64,
        },
        Record::Munmap {
            t: 7,
            tid: 10,
            addr: 0x7f00_0000_0000,
            len: 4096,
        },
    ];
    let mut payload = Vec::new();
    for r in &recs {
        payload.extend(postcard::to_allocvec(r).unwrap());
    }
    let mut bytes = memshim_format::encode_header(&header());
    bytes[8] = 2;
    memshim_format::encode_chunk(&payload, &mut bytes);
    let got: Vec<Record> = Reader::new(&bytes[..])
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(got, recs);
}

#[test]
fn version_2_compressed_streams_still_decode() {
    // Version 2 bodies: one zstd stream over all blocks, flushed at the end of each block, its
    // records plain postcard.
    use std::io::Write;
    let recs = vec![
        Record::Thread {
            tid: 3,
            name: "worker".into(),
        },
        Record::Free {
            t: 6,
            tid: 3,
            addr: 0x5555_0000_1000,
            size: 64,
        },
    ];
    let mut bytes = memshim_format::encode_header_with(&header(), memshim_format::FLAG_ZSTD);
    bytes[8] = 2;
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    for r in &recs {
        let mut chunk = Vec::new();
        memshim_format::encode_chunk(&postcard::to_allocvec(r).unwrap(), &mut chunk);
        enc.get_mut().clear();
        enc.write_all(&chunk).unwrap();
        enc.flush().unwrap();
        let z = enc.get_ref();
        bytes.extend_from_slice(&(z.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(z).to_le_bytes());
        bytes.extend_from_slice(z);
    }
    let got: Vec<Record> = Reader::new(&bytes[..])
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(got, recs);
}

#[test]
fn version_4_hot_records_still_decode_against_the_previous_record() {
    // Three frees by threads 1, 2, 1, written as version 4 did: each address relative to the
    // previous record's. Version 5 writes thread 1's second address relative to its first.
    let payload = [
        3, 0, 1, 0x80, 0x40, 0, // tid 1 at 0x1000
        3, 0, 3, 0x20, 0, // tid 2 at 0x1000 + 0x10
        3, 0, 3, 0x20, 0, // tid 1 at 0x1010 + 0x10 (version 4), 0x1000 + 0x10 (version 5)
    ];
    let decode = |version: u8| -> Vec<u64> {
        let mut bytes = memshim_format::encode_header(&header());
        bytes[8] = version;
        memshim_format::encode_chunk(&payload, &mut bytes);
        Reader::new(&bytes[..])
            .unwrap()
            .map(|r| match r.unwrap() {
                Record::Free { addr, .. } => addr,
                other => panic!("{other:?}"),
            })
            .collect()
    };
    assert_eq!(decode(4), [0x1000, 0x1010, 0x1020]);
    assert_eq!(decode(5), [0x1000, 0x1010, 0x1010]);
}

/// One thread's malloc/free loop: sizes and addresses cycling with a period of `period` pairs.
fn loop_chunk(tid: u32, from: u64, pairs: u64, period: u64) -> Vec<Record> {
    let mut recs = Vec::new();
    for i in from..from + pairs {
        let k = i % period;
        let addr = 0x5555_0000_0000 + (k * 7919 % period) * 64;
        recs.push(Record::Alloc {
            t: i / 5000,
            tid,
            addr,
            size: 16 + (k * 104_729) % 4000,
            stack: 1 + k % 3,
            kind: AllocKind::Malloc,
            inherited: false,
        });
        recs.push(Record::Free {
            t: i / 5000,
            tid,
            addr,
            size: 0,
        });
    }
    recs
}

#[test]
fn a_primed_block_repeating_the_one_before_costs_a_fraction_of_it() {
    // Twelve chunks of one loop, one block each: unprimed, each block would relearn the period.
    let chunks: Vec<Vec<Record>> = (0..12)
        .map(|c| loop_chunk(3, c * 4096, 4096, 4096))
        .collect();
    let (bytes, ends) = encode_zstd_at(Level::Dense, &chunks);
    let first = ends[1] - ends[0];
    let rest = ends[12] - ends[1];
    assert!(
        rest * 4 < first,
        "first block {first} bytes, the 11 after {rest}"
    );
    let got: Vec<Record> = Reader::new(&bytes[..])
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(got, chunks.concat());
}

#[test]
fn a_history_starting_like_a_zstd_dictionary_is_still_raw_content() {
    // A block whose last PRIME_MAX bytes start with zstd's dictionary magic: were they given to
    // zstd as they are, it would parse them as a dictionary and fail.
    let magic = 0xEC30_A437u32.to_le_bytes();
    let thread = |name: String| Record::Thread { tid: 1, name };
    let mut b = ChunkBuilder::new();
    b.push(&thread("x".repeat(PRIME_MAX)));
    let mut first = Vec::new();
    b.finish_into(&mut first);
    let at = first.len() - PRIME_MAX;
    first[at..at + 4].copy_from_slice(&magic);
    // Not a valid chunk any more, but the compressor takes any bytes: write it raw, then a
    // second block primed with it, and decode that one with the same history.
    let mut z = Compressor::new(Level::Dense).unwrap();
    z.compress(&first).unwrap();
    z.written(&first);
    let mut b = ChunkBuilder::new();
    b.push(&thread("y".repeat(PRIME_MAX))); // as large as a whole history
    let mut second = Vec::new();
    b.finish_into(&mut second);
    let block = z.compress(&second).unwrap().to_vec();
    // A reader that had read `first` decodes the second block.
    let mut dec = zstd::zstd_safe::DCtx::create();
    let mut out = vec![0u8; second.len()];
    let dict = &first[first.len() - PRIME_MAX + 1..];
    let n = dec
        .decompress_using_dict(&mut out[..], &block[8..], dict)
        .unwrap();
    assert_eq!(&out[..n], &second[..]);
}

#[test]
fn a_block_never_written_primes_nothing() {
    // The writer compresses a block, finds it would pass MEMSHIM_MAX_SIZE, and writes smaller
    // ones instead: the block it dropped must not be in the history the next is primed with.
    let chunks: Vec<Vec<u8>> = (0..3)
        .map(|c| {
            let mut b = ChunkBuilder::new();
            loop_chunk(5, c * 512, 512, 700)
                .iter()
                .for_each(|r| b.push(r));
            let mut framed = Vec::new();
            b.finish_into(&mut framed);
            framed
        })
        .collect();
    let mut z = Compressor::new(Level::Dense).unwrap();
    let mut bytes = encode_header_with(&header(), z.flags());
    bytes.extend_from_slice(z.compress(&chunks[0]).unwrap());
    z.written(&chunks[0]);
    let _dropped = z.compress(&chunks[1]).unwrap().to_vec();
    bytes.extend_from_slice(z.compress(&chunks[2]).unwrap());
    z.written(&chunks[2]);
    let got: Vec<Record> = Reader::new(&bytes[..])
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let want = [loop_chunk(5, 0, 512, 700), loop_chunk(5, 1024, 512, 700)].concat();
    assert_eq!(got, want);
}

#[test]
fn interleaved_threads_decode_in_their_order_across_chunks() {
    // Two threads' loops, interleaved in runs of 1-4 records as `all` mode's threads are.
    let (a, b) = (loop_chunk(11, 0, 3000, 977), loop_chunk(12, 0, 3000, 613));
    let (mut ia, mut ib, mut x) = (0, 0, 12345u32);
    let mut merged = Vec::new();
    while ia < a.len() || ib < b.len() {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let run = 1 + (x >> 16) as usize % 4;
        let (src, at) = if (x >> 20) & 1 == 0 {
            (&a, &mut ia)
        } else {
            (&b, &mut ib)
        };
        let end = (*at + run).min(src.len());
        merged.extend_from_slice(&src[*at..end]);
        *at = end;
    }
    let chunks: Vec<Vec<Record>> = merged.chunks(1500).map(|c| c.to_vec()).collect();
    for bytes in [encode(&chunks), encode_zstd_at(Level::Dense, &chunks).0] {
        let got: Vec<Record> = Reader::new(&bytes[..])
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(got, merged);
    }
}
