//! Hand-written postcard encodings of the records a writer emits by the hundred thousand a second
//! (allocations, frees, unmaps). The bytes are exactly what `postcard::to_slice` produces for the
//! same [`Record`] (a test checks it), so readers see no difference; serde's generic path spent
//! about 50 ns on each of these 20-byte records, a fifth of the writer's time on a busy process.

use core::mem::MaybeUninit;

use crate::{AllocKind, Record};

/// Variant indices of [`Record`] in declaration order (postcard writes them as varints).
const ALLOC: u8 = 2;
const FREE: u8 = 3;
const MUNMAP: u8 = 4;

/// The longest hot record: tag, 6 varints of up to 10 bytes, a kind and a bool.
const MAX: usize = 64;

/// Writes straight into the Vec's spare room, the length kept in a register: assembling a
/// record in a stack buffer byte by byte and copying it out stalled on store forwarding.
struct Put<'a> {
    room: &'a mut [MaybeUninit<u8>],
    len: usize,
}

impl Put<'_> {
    /// LEB128, as postcard writes every integer wider than a byte.
    #[inline(always)]
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.room[self.len].write(v as u8 | 0x80);
            self.len += 1;
            v >>= 7;
        }
        self.byte(v as u8);
    }

    #[inline(always)]
    fn byte(&mut self, v: u8) {
        self.room[self.len].write(v);
        self.len += 1;
    }
}

fn kind_index(k: AllocKind) -> u8 {
    match k {
        AllocKind::Malloc => 0,
        AllocKind::Calloc => 1,
        AllocKind::Realloc => 2,
        AllocKind::Aligned => 3,
        AllocKind::Mmap => 4,
    }
}

/// Appends the postcard encoding of `r` to `out` when it is one of the hot kinds; false (and
/// nothing written) otherwise.
pub fn encode(r: &Record, out: &mut Vec<u8>) -> bool {
    // Room first (a capacity check; the length stays): the record is written into it below.
    out.reserve(MAX);
    let mut p = Put {
        room: &mut out.spare_capacity_mut()[..MAX],
        len: 0,
    };
    match *r {
        Record::Alloc {
            t,
            tid,
            addr,
            size,
            stack,
            kind,
            inherited,
        } => {
            p.byte(ALLOC);
            p.varint(t);
            p.varint(tid as u64);
            p.varint(addr);
            p.varint(size);
            p.varint(stack);
            p.byte(kind_index(kind));
            p.byte(inherited as u8);
        }
        Record::Free {
            t,
            tid,
            addr,
            size,
        } => {
            p.byte(FREE);
            p.varint(t);
            p.varint(tid as u64);
            p.varint(addr);
            p.varint(size);
        }
        Record::Munmap { t, tid, addr, len } => {
            p.byte(MUNMAP);
            p.varint(t);
            p.varint(tid as u64);
            p.varint(addr);
            p.varint(len);
        }
        _ => return false,
    }
    let n = p.len;
    // SAFETY: the first `n` bytes of the spare capacity were just initialised through `room`.
    unsafe { out.set_len(out.len() + n) };
    true
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
            (any::<u64>(), any::<u32>(), any::<u64>(), any::<u64>(), any::<u64>(), kind(), any::<bool>())
                .prop_map(|(t, tid, addr, size, stack, kind, inherited)| Record::Alloc {
                    t,
                    tid,
                    addr,
                    size,
                    stack,
                    kind,
                    inherited
                }),
            (any::<u64>(), any::<u32>(), any::<u64>(), any::<u64>())
                .prop_map(|(t, tid, addr, size)| Record::Free { t, tid, addr, size }),
            (any::<u64>(), any::<u32>(), any::<u64>(), any::<u64>())
                .prop_map(|(t, tid, addr, len)| Record::Munmap { t, tid, addr, len }),
        ]
    }

    proptest! {
        #[test]
        fn bytes_are_postcards(r in hot()) {
            let mut ours = vec![7u8];
            prop_assert!(encode(&r, &mut ours));
            let theirs = postcard::to_allocvec(&r).unwrap();
            prop_assert_eq!(&ours[1..], &theirs[..]);
        }
    }

    #[test]
    fn other_records_are_left_to_postcard() {
        let mut out = Vec::new();
        let r = Record::Thread {
            tid: 1,
            name: "x".into(),
        };
        assert!(!encode(&r, &mut out));
        assert!(out.is_empty());
    }

    #[test]
    fn extremes_match_postcard() {
        for v in [0u64, 1, 127, 128, 16383, 16384, u32::MAX as u64, u64::MAX] {
            let r = Record::Alloc {
                t: v,
                tid: v as u32,
                addr: v,
                size: v,
                stack: v,
                kind: AllocKind::Mmap,
                inherited: true,
            };
            let mut ours = Vec::new();
            assert!(encode(&r, &mut ours));
            assert_eq!(ours, postcard::to_allocvec(&r).unwrap());
        }
    }
}
