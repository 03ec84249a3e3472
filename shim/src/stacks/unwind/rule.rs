//! How to step out of a frame at one instruction, packed with that instruction's address into one
//! word so the rule cache can hold it in a single atomic (no torn entries, no lock).
//!
//! x86_64 only needs three things to find the caller: where the CFA (the caller's stack pointer)
//! is, that the return address sits just below it, and where the caller's %rbp was saved (the
//! only callee-saved register a CFA rule of the next frame may use). Everything else in the CFI is
//! irrelevant to a walk that only collects return addresses.

/// The step for one instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// The CFA is %rsp (or %rbp, when `from_bp`) plus `cfa_offset`; the return address is at
    /// CFA - 8; the caller's %rbp was saved at CFA - `bp_saved_at` (0: not saved, unchanged).
    Step {
        from_bp: bool,
        cfa_offset: u32,
        bp_saved_at: u32,
    },
    /// The outermost frame: the CFI marks the return address undefined (`_start`, thread start).
    End,
    /// CFI this walker does not model (CFA expressions, signal trampolines, odd registers): the
    /// whole stack is walked by libgcc instead.
    Unsupported,
}

/// Addresses above this do not fit the packed word; they are never cached.
pub const MAX_CACHED_IP: u64 = 1 << IP_BITS;

const IP_BITS: u32 = 47;
const RULE_BITS: u32 = 64 - IP_BITS; // 17
const KIND_BITS: u32 = 2;
const CFA_BITS: u32 = 10; // in units of 8 bytes: up to 8 KiB frames
const BP_BITS: u32 = RULE_BITS - KIND_BITS - CFA_BITS; // 5: saved up to 248 bytes below the CFA

const KIND_STEP_SP: u64 = 1;
const KIND_STEP_BP: u64 = 2;
const KIND_END: u64 = 3;
// Kind 0 is Unsupported, so that a rule word of 0 still decodes to something safe.

impl Rule {
    /// A step rule from CFI values, or `Unsupported` when they do not fit the packed form.
    pub fn step(from_bp: bool, cfa_offset: i64, bp_saved_at: i64) -> Rule {
        let fits = |v: i64, bits: u32| v >= 0 && v % 8 == 0 && (v / 8) < (1 << bits);
        if cfa_offset < 8 || !fits(cfa_offset, CFA_BITS) || !fits(bp_saved_at, BP_BITS) {
            return Rule::Unsupported;
        }
        Rule::Step {
            from_bp,
            cfa_offset: cfa_offset as u32,
            bp_saved_at: bp_saved_at as u32,
        }
    }

    fn bits(self) -> u64 {
        match self {
            Rule::Unsupported => 0,
            Rule::End => KIND_END,
            Rule::Step {
                from_bp,
                cfa_offset,
                bp_saved_at,
            } => {
                let kind = if from_bp { KIND_STEP_BP } else { KIND_STEP_SP };
                kind | (cfa_offset as u64 / 8) << KIND_BITS
                    | (bp_saved_at as u64 / 8) << (KIND_BITS + CFA_BITS)
            }
        }
    }

    fn from_bits(b: u64) -> Rule {
        let field = |shift: u32, bits: u32| ((b >> shift) & ((1 << bits) - 1)) as u32 * 8;
        match b & ((1 << KIND_BITS) - 1) {
            KIND_STEP_SP | KIND_STEP_BP => Rule::Step {
                from_bp: b & ((1 << KIND_BITS) - 1) == KIND_STEP_BP,
                cfa_offset: field(KIND_BITS, CFA_BITS),
                bp_saved_at: field(KIND_BITS + CFA_BITS, BP_BITS),
            },
            KIND_END => Rule::End,
            _ => Rule::Unsupported,
        }
    }
}

/// One cache word: the instruction address in the high bits, its rule in the low ones. Never 0
/// for a real entry, since address 0 is never looked up.
pub fn pack(ip: u64, rule: Rule) -> u64 {
    debug_assert!(ip < MAX_CACHED_IP && ip != 0);
    ip << RULE_BITS | rule.bits()
}

/// The rule in `word` when it is the entry for `ip`.
#[inline(always)]
pub fn unpack(word: u64, ip: u64) -> Option<Rule> {
    (word >> RULE_BITS == ip && word != 0).then(|| Rule::from_bits(word & ((1 << RULE_BITS) - 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_round_trip_through_the_packed_word() {
        let ip = 0x7fff_dead_beef;
        for rule in [
            Rule::End,
            Rule::Unsupported,
            Rule::step(false, 8, 0),
            Rule::step(true, 16, 16),
            Rule::step(false, 8184, 248),
        ] {
            assert_eq!(unpack(pack(ip, rule), ip), Some(rule));
            assert_eq!(
                unpack(pack(ip, rule), ip + 1),
                None,
                "another address's entry"
            );
        }
        assert_eq!(unpack(0, 0), None, "an empty slot is no entry");
    }

    #[test]
    fn values_that_do_not_fit_are_unsupported() {
        assert_eq!(Rule::step(false, 8192, 0), Rule::Unsupported);
        assert_eq!(Rule::step(false, 12, 0), Rule::Unsupported);
        assert_eq!(Rule::step(false, 0, 0), Rule::Unsupported);
        assert_eq!(Rule::step(true, 16, 256), Rule::Unsupported);
        assert_eq!(Rule::step(true, 16, -8), Rule::Unsupported);
        assert!(matches!(Rule::step(false, 8176, 240), Rule::Step { .. }));
    }
}
