//! The sampling decision: what an allocation (or a free) of this thread is to become, from the
//! recording mode and the thread's byte countdown.

use crate::config;
use crate::sys::control::{self, Request};

/// Bytes a thread allocates between two looks for a start request while recording is paused.
const PAUSED_LOOK_BYTES: u64 = 4 << 20;
use crate::state::{self, Recording};

use super::sampler;
use super::thread::{Thread, FLAG_FREE_FAST};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Forward to the allocator, record nothing.
    Skip,
    /// Serve from the region and record (sampled mode).
    Sample,
    /// Forward to the allocator and record (`all` mode).
    Record,
}

/// Updates the thread's sampling state for an allocation of `size` and says what to do with it.
pub fn allocation(t: Thread, size: u64) -> Decision {
    match state::mode() {
        Recording::Sampled(rate) => {
            t.raise(FLAG_FREE_FAST);
            let gen = state::fork_generation();
            if t.rng() == 0 || t.fork_gen() != gen {
                // A stale generation only delays the reseed to the next sample.
                t.set_rng(sampler::seed(
                    config::get().and_then(|c| c.seed),
                    t.tid(),
                    gen,
                ));
                t.set_fork_gen(gen);
                t.set_countdown(0);
            }
            let mut rng = t.rng();
            if t.countdown() == 0 {
                // A new thread (or a reseed): draw its first gap.
                t.set_countdown(sampler::next_gap(&mut rng, rate));
            }
            // The fast paths test this too; callers that come here for other reasons (a region
            // pointer's realloc, an mmap) must count down like any allocation.
            let d = if size < t.countdown() {
                t.set_countdown(t.countdown() - size);
                Decision::Skip
            } else {
                t.set_countdown(sampler::next_gap(&mut rng, rate));
                Decision::Sample
            };
            t.set_rng(rng);
            d
        }
        Recording::All => {
            t.lower(FLAG_FREE_FAST);
            t.set_countdown(0);
            Decision::Record
        }
        Recording::Off => {
            t.raise(FLAG_FREE_FAST);
            t.set_countdown(u64::MAX);
            Decision::Skip
        }
        Recording::Paused => {
            t.raise(FLAG_FREE_FAST);
            // A look for a start request every few MiB this thread allocates: one `stat`.
            t.set_countdown(PAUSED_LOOK_BYTES);
            if control::pending(Request::Start) && state::resume() {
                // Recording from the next allocation on; the writer answers the request.
                t.set_countdown(0);
            }
            Decision::Skip
        }
        // Before the constructor: the countdown stays 0, ask again next time.
        Recording::Undecided => Decision::Skip,
    }
}

/// What a free of a pointer outside the region is to become (sets FLAG_FREE_FAST when frees
/// need no recording).
pub fn free(t: Thread) -> Decision {
    match state::mode() {
        Recording::All => Decision::Record,
        Recording::Sampled(_) | Recording::Off | Recording::Paused => {
            t.raise(FLAG_FREE_FAST);
            Decision::Skip
        }
        Recording::Undecided => Decision::Skip,
    }
}
