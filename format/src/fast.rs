//! Hand-written encoding of the records a writer emits by the hundred thousand a second
//! (allocations, frees, unmaps): the "hot" records of format versions 3 to 5, which readers
//! still take (version 6 groups them by thread, [`crate::grouped`], with the primitives here).
//!
//! Each is written relative to the previous hot record of its chunk (the context starts at zero
//! in every chunk), with postcard's primitives (LEB128 varints, a tag byte):
//!
//! ```text
//! Alloc  := 2 zz(t - t') (tid ^ tid') zz(addr - base) size stack kind:u8 inherited:u8
//! Free   := 3 zz(t - t') (tid ^ tid') zz(addr - base) size
//! Munmap := 4 zz(t - t') (tid ^ tid') zz(addr - base) len
//! ```
//!
//! where `'` marks the previous hot record's value, differences wrap, and `zz` is the zigzag map
//! of a signed difference to an unsigned varint. Consecutive records mostly share a thread and
//! a clock tick and hold nearby addresses, so a record takes 9-12 bytes instead of postcard's
//! 18-22: the writer encodes and compresses about half as many bytes, its two largest costs.
//!
//! `base` is the previous record's address in versions 3 and 4. From version 5 it is the
//! address of the previous record of the same thread, when the record's lane (16 of them, by
//! thread id) holds that thread, else the previous record's: threads allocating side by side
//! (two `all`-mode threads interleave every few records) each keep a delta stream of their own,
//! which repeats as their loops repeat, where deltas between two threads' heaps did not. One
//! interleaved two-thread loop's capture came out a third smaller.
//! Version 2 wrote these records with plain postcard; the reader still takes them.

use core::mem::MaybeUninit;

use crate::{AllocKind, Record};

/// Variant indices of [`Record`] in declaration order (postcard's tags).
const ALLOC: u8 = 2;
const FREE: u8 = 3;
const MUNMAP: u8 = 4;

/// The longest hot record: tag, 6 varints of up to 10 bytes, a kind and a bool.
const MAX: usize = 64;

/// Thread lanes of the version 5 context.
const LANES: usize = 16;

/// What a chunk's hot records so far left for the next one: the previous record, and from
/// version 5 each lane's thread and its last address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    t: u64,
    tid: u32,
    addr: u64,
    lanes: Option<[(u32, u64); LANES]>,
}

impl Context {
    /// The context at the start of a chunk of a file of `version` (3 or later).
    pub fn for_version(version: u16) -> Context {
        Context {
            t: 0,
            tid: 0,
            addr: 0,
            lanes: (version >= 5).then_some([(0, 0); LANES]),
        }
    }

    /// The address `tid`'s next record is written relative to.
    #[inline(always)]
    fn base(&self, tid: u32) -> u64 {
        match &self.lanes {
            Some(lanes) => match lanes[tid as usize % LANES] {
                (owner, addr) if owner == tid => addr,
                _ => self.addr,
            },
            None => self.addr,
        }
    }

    /// Moves on past a record of `tid` at `addr`.
    #[inline(always)]
    fn advance(&mut self, t: u64, tid: u32, addr: u64) {
        (self.t, self.tid, self.addr) = (t, tid, addr);
        if let Some(lanes) = &mut self.lanes {
            lanes[tid as usize % LANES] = (tid, addr);
        }
    }
}

/// True when a record starting with `tag` is a hot one (version 3 encoding).
pub fn is_hot(tag: u8) -> bool {
    matches!(tag, ALLOC | FREE | MUNMAP)
}

pub(crate) fn zigzag(d: u64) -> u64 {
    let d = d as i64;
    ((d << 1) ^ (d >> 63)) as u64
}

pub(crate) fn unzigzag(v: u64) -> u64 {
    ((v >> 1) as i64 ^ -((v & 1) as i64)) as u64
}

/// Writes straight into the Vec's spare room, the length kept in a register: assembling a
/// record in a stack buffer byte by byte and copying it out stalled on store forwarding.
pub(crate) struct Put<'a> {
    room: &'a mut [MaybeUninit<u8>],
    len: usize,
}

impl Put<'_> {
    /// LEB128, as postcard writes every integer wider than a byte.
    #[inline(always)]
    pub(crate) fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.byte(v as u8 | 0x80);
            v >>= 7;
        }
        self.byte(v as u8);
    }

    #[inline(always)]
    pub(crate) fn byte(&mut self, v: u8) {
        debug_assert!(self.len < MAX);
        // SAFETY: `room` holds MAX bytes and no record writes more than MAX - 1 (a tag, six
        // varints of at most 10 bytes, two bytes): `len` stays in bounds. Unchecked, because a
        // bounds check per byte cost the encoder 29% more instructions (callgrind).
        unsafe { self.room.get_unchecked_mut(self.len).write(v) };
        self.len += 1;
    }

    /// The fields every hot record starts with, relative to `ctx`, which moves on.
    #[cfg(test)]
    fn common(&mut self, tag: u8, ctx: &mut Context, t: u64, tid: u32, addr: u64) {
        self.byte(tag);
        self.varint(zigzag(t.wrapping_sub(ctx.t)));
        self.varint((tid ^ ctx.tid) as u64);
        self.varint(zigzag(addr.wrapping_sub(ctx.base(tid))));
        ctx.advance(t, tid, addr);
    }
}

/// Appends the version 3-5 encoding of `r` to `out` when it is a hot record; false (and nothing
/// written) otherwise. Writers write version 6: this writes the older files the tests read.
#[cfg(test)]
pub fn encode(r: &Record, out: &mut Vec<u8>, ctx: &mut Context) -> bool {
    match *r {
        Record::Alloc {
            t,
            tid,
            addr,
            size,
            stack,
            kind,
            inherited,
        } => encode_alloc(out, ctx, t, tid, addr, size, stack, kind, inherited),
        Record::Free { t, tid, addr, size } => encode_free(out, ctx, t, tid, addr, size),
        Record::Munmap { t, tid, addr, len } => put(out, |p| {
            p.common(MUNMAP, ctx, t, tid, addr);
            p.varint(len);
        }),
        _ => return false,
    }
    true
}

/// Appends an Alloc record (version 3-5).
#[allow(clippy::too_many_arguments)]
#[cfg(test)]
fn encode_alloc(
    out: &mut Vec<u8>,
    ctx: &mut Context,
    t: u64,
    tid: u32,
    addr: u64,
    size: u64,
    stack: u64,
    kind: AllocKind,
    inherited: bool,
) {
    put(out, |p| {
        p.common(ALLOC, ctx, t, tid, addr);
        p.varint(size);
        p.varint(stack);
        p.byte(kind.index());
        p.byte(inherited as u8);
    })
}

/// Appends a Free record (version 3-5).
#[cfg(test)]
fn encode_free(out: &mut Vec<u8>, ctx: &mut Context, t: u64, tid: u32, addr: u64, size: u64) {
    put(out, |p| {
        p.common(FREE, ctx, t, tid, addr);
        p.varint(size);
    })
}

/// Runs `f` on the spare room of `out` (at least [`MAX`] bytes), then keeps what it wrote.
#[inline(always)]
pub(crate) fn put(out: &mut Vec<u8>, f: impl FnOnce(&mut Put<'_>)) {
    // Room first (a capacity check; the length stays): the record is written into it below.
    out.reserve(MAX);
    let mut p = Put {
        room: &mut out.spare_capacity_mut()[..MAX],
        len: 0,
    };
    f(&mut p);
    let n = p.len;
    // SAFETY: the first `n` bytes of the spare capacity were just initialised through `room`.
    unsafe { out.set_len(out.len() + n) };
}

/// Reads bytes and varints with bounds checks: a corrupt capture is an error, never a panic.
pub(crate) struct Take<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) pos: usize,
}

impl Take<'_> {
    pub(crate) fn byte(&mut self) -> Result<u8, String> {
        let b = *self.bytes.get(self.pos).ok_or("hot record cut short")?;
        self.pos += 1;
        Ok(b)
    }

    pub(crate) fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return Err("varint overflows 64 bits".into());
            }
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint longer than 10 bytes".into())
    }
}

/// Reads a hot record from the start of `bytes`; returns it and the bytes it took.
pub fn decode(bytes: &[u8], ctx: &mut Context) -> Result<(Record, usize), String> {
    let mut r = Take { bytes, pos: 0 };
    let tag = r.byte()?;
    let t = ctx.t.wrapping_add(unzigzag(r.varint()?));
    let tid = u32::try_from(r.varint()?).map_err(|_| "thread id out of range")? ^ ctx.tid;
    let addr = ctx.base(tid).wrapping_add(unzigzag(r.varint()?));
    let size = r.varint()?;
    let rec = match tag {
        ALLOC => {
            let stack = r.varint()?;
            let kind = AllocKind::from_index(r.byte()?).ok_or("unknown allocation kind")?;
            let inherited = match r.byte()? {
                0 => false,
                1 => true,
                _ => return Err("inherited flag is not a bool".into()),
            };
            Record::Alloc {
                t,
                tid,
                addr,
                size,
                stack,
                kind,
                inherited,
            }
        }
        FREE => Record::Free { t, tid, addr, size },
        MUNMAP => Record::Munmap {
            t,
            tid,
            addr,
            len: size,
        },
        _ => return Err(format!("tag {tag} is not a hot record")),
    };
    ctx.advance(t, tid, addr);
    Ok((rec, r.pos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kind() -> impl Strategy<Value = AllocKind> {
        prop_oneof![
            Just(AllocKind::Malloc),
            Just(AllocKind::Calloc),
            Just(AllocKind::Realloc),
            Just(AllocKind::Aligned),
            Just(AllocKind::Mmap),
        ]
    }

    fn hot() -> impl Strategy<Value = Record> {
        prop_oneof![
            (
                any::<u64>(),
                any::<u32>(),
                any::<u64>(),
                any::<u64>(),
                any::<u64>(),
                kind(),
                any::<bool>()
            )
                .prop_map(|(t, tid, addr, size, stack, kind, inherited)| {
                    Record::Alloc {
                        t,
                        tid,
                        addr,
                        size,
                        stack,
                        kind,
                        inherited,
                    }
                }),
            (any::<u64>(), any::<u32>(), any::<u64>(), any::<u64>())
                .prop_map(|(t, tid, addr, size)| Record::Free { t, tid, addr, size }),
            (any::<u64>(), any::<u32>(), any::<u64>(), any::<u64>())
                .prop_map(|(t, tid, addr, len)| Record::Munmap { t, tid, addr, len }),
        ]
    }

    /// Two threads alternating malloc/free pairs in heaps far apart (as glibc's arenas are).
    fn interleaved_pairs() -> Vec<Record> {
        let mut recs = Vec::new();
        for i in 0..1000u64 {
            for (tid, heap) in [(101u32, 0x5555_0000_0000u64), (202, 0x7f12_3400_0000)] {
                let addr = heap + (i * 48) % 4096;
                recs.push(Record::Alloc {
                    t: 0,
                    tid,
                    addr,
                    size: 32,
                    stack: 1,
                    kind: AllocKind::Malloc,
                    inherited: false,
                });
                recs.push(Record::Free {
                    t: 0,
                    tid,
                    addr,
                    size: 0,
                });
            }
        }
        recs
    }

    fn encoded_len(recs: &[Record], version: u16) -> usize {
        let (mut ctx, mut out) = (Context::for_version(version), vec![]);
        for r in recs {
            assert!(encode(r, &mut out, &mut ctx));
        }
        out.len()
    }

    #[test]
    fn lanes_keep_interleaved_threads_deltas_small() {
        let recs = interleaved_pairs();
        let (v4, v5) = (encoded_len(&recs, 4), encoded_len(&recs, 5));
        // Version 4 jumps between the heaps on every thread switch (7-byte deltas); version 5
        // writes each thread's address against its own previous one.
        assert!(v5 * 4 < v4 * 3, "version 5 {v5} bytes, version 4 {v4}");
    }

    #[test]
    fn threads_sharing_a_lane_still_round_trip() {
        // Thread ids 16 apart share a lane: the record falls back to the previous record's
        // address, on both sides alike.
        let recs: Vec<Record> = (0..64u32)
            .map(|i| Record::Free {
                t: i as u64,
                tid: 7 + 16 * (i % 3),
                addr: 0x1000 * (i as u64 % 5) + 0x7000_0000,
                size: 0,
            })
            .collect();
        let (mut w, mut out) = (Context::for_version(5), vec![]);
        for r in &recs {
            assert!(encode(r, &mut out, &mut w));
        }
        let (mut c, mut at) = (Context::for_version(5), 0);
        for r in &recs {
            let (got, used) = decode(&out[at..], &mut c).unwrap();
            assert_eq!(&got, r);
            at += used;
        }
    }

    proptest! {
        #[test]
        fn sequences_round_trip(recs in prop::collection::vec(hot(), 0..40), version in 3u16..=5) {
            let (mut w, mut out) = (Context::for_version(version), vec![]);
            for r in &recs {
                prop_assert!(encode(r, &mut out, &mut w));
            }
            let (mut c, mut at) = (Context::for_version(version), 0);
            for r in &recs {
                let (got, used) = decode(&out[at..], &mut c).unwrap();
                prop_assert_eq!(&got, r);
                at += used;
            }
            prop_assert_eq!(at, out.len());
        }

        #[test]
        fn any_bytes_decode_or_fail_cleanly(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
            let _ = decode(&bytes, &mut Context::for_version(5));
        }
    }

    #[test]
    fn neighbours_take_few_bytes() {
        let mut ctx = Context::for_version(5);
        let mut out = vec![];
        let base = 0x2000_0001_0000u64;
        encode(
            &Record::Free {
                t: 4_000_000,
                tid: 4242,
                addr: base,
                size: 100,
            },
            &mut out,
            &mut ctx,
        );
        let first = out.len();
        let next = Record::Alloc {
            t: 4_000_000,
            tid: 4242,
            addr: base + 8192,
            size: 2000,
            stack: 3,
            kind: AllocKind::Malloc,
            inherited: false,
        };
        encode(&next, &mut out, &mut ctx);
        // Same tick, same thread, two slots on: tag, 0, 0, 3 bytes of address, 2 of size, stack,
        // kind, flag; postcard spells out all 19.
        assert_eq!(out.len() - first, 11);
        assert_eq!(postcard::to_allocvec(&next).unwrap().len(), 19);
    }

    #[test]
    fn other_records_are_left_to_postcard() {
        let mut out = Vec::new();
        let r = Record::Thread {
            tid: 1,
            name: "x".into(),
        };
        assert!(!encode(&r, &mut out, &mut Context::for_version(5)));
        assert!(out.is_empty());
        assert!(!is_hot(postcard::to_allocvec(&r).unwrap()[0]));
    }
}
