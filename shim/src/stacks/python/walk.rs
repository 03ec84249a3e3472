//! Walking a thread's Python frames into a sample's words, for each interpreter's frame chain.

use super::codes::code_id;
use super::layout::{self, Layout};
use super::{is_code, plausible, word, Python};
use crate::stacks::Send;

/// Fills the caller's buffer with frames, innermost first.
pub(super) struct Frames<'a> {
    pub out: &'a mut [core::mem::MaybeUninit<u64>],
    pub n: usize,
    pub max: usize,
    /// Where code objects seen for the first time are sent.
    pub send: Send,
    /// Frames written since the last eval-loop call ended (the current call's so far).
    pub in_call: usize,
}

impl Frames<'_> {
    fn full(&self) -> bool {
        self.n >= self.max
    }

    fn push(&mut self, code_id: u64, instr: usize, entry: bool) {
        self.out[self.n * 2].write(code_id);
        self.out[self.n * 2 + 1].write(instr as u32 as u64 | (entry as u64) << 32);
        self.n += 1;
        self.in_call = if entry { 0 } else { self.in_call + 1 };
    }

    /// Ends the current eval-loop call: its first frame is the last one written or, when it has
    /// written none (a call starting, or clearing the frame it returns from), a
    /// [`PyFrame::NO_FRAME`] stands for it, so the frames outer to it are not taken for its own.
    ///
    /// [`PyFrame::NO_FRAME`]: memshim_format::PyFrame::NO_FRAME
    fn end_call(&mut self) {
        if self.in_call == 0 {
            if !self.full() {
                self.push(memshim_format::PyFrame::NO_FRAME, 0, true);
            }
        } else {
            // SAFETY: slot n * 2 - 1 was written by `push` (in_call > 0 means n > 0).
            let last = unsafe { self.out[self.n * 2 - 1].assume_init() };
            self.out[self.n * 2 - 1].write(last | 1 << 32);
            self.in_call = 0;
        }
    }
}

/// 3.8 to 3.10: `tstate->frame`, then `f_back`. Each frame object has its own eval-loop call.
///
/// # Safety
/// As in [`capture`]: `tstate` is this thread's own live thread state, its frames not changing.
pub(super) unsafe fn walk_frame_objects(py: &Python, tstate: usize, w: &mut Frames<'_>) {
    let l = &py.layout;
    // SAFETY: per the contract; frames in the chain are live frame objects.
    unsafe {
        let mut frame = word(tstate + l.tstate_frame);
        while plausible(frame) && !w.full() {
            let code = word(frame + l.frame_code);
            // f_lasti: the instruction being run (its byte offset up to 3.9, its index in code
            // units in 3.10), -1 before the first (a profile hook running for the call).
            let lasti = *((frame + l.frame_instr) as *const i32);
            let instr = match usize::try_from(lasti) {
                Err(_) => memshim_format::PyFrame::NOT_STARTED as usize,
                Ok(i) if l.lasti_in_units => i,
                Ok(i) => i / 2,
            };
            if is_code(py, code) {
                let id = code_id(py, code, w.send);
                w.push(id, instr, true);
            }
            frame = word(frame + l.frame_previous);
        }
    }
}

/// 3.11: `tstate->cframe->current_frame`, then `previous`; `is_entry` marks eval-loop calls.
///
/// # Safety
/// As in [`capture`].
pub(super) unsafe fn walk_cframe(py: &Python, tstate: usize, w: &mut Frames<'_>) {
    let l = &py.layout;
    // SAFETY: per the contract; frames in the chain are live interpreter frames.
    unsafe {
        let cframe = word(tstate + l.tstate_frame);
        if !plausible(cframe) {
            return;
        }
        let mut frame = word(cframe + l.cframe_current_frame);
        while plausible(frame) && !w.full() {
            let code = word(frame + l.frame_code);
            let is_entry = *((frame + l.frame_is_entry) as *const u8) != 0;
            let owner = *((frame + l.frame_owner) as *const u8);
            let at = if !is_code(py, code) {
                None
            } else {
                position(l, code, owner, word(frame + l.frame_instr))
            };
            match at {
                Some(instr) => w.push(code_id(py, code, w.send), instr, is_entry),
                // A frame without a position is skipped, but it still ends its eval-loop call
                // if it was that call's first.
                None if is_entry => w.end_call(),
                None => {}
            }
            frame = word(frame + l.frame_previous);
        }
    }
}

/// 3.12 and 3.13: `tstate->cframe->current_frame` (3.12) or `tstate->current_frame` (3.13),
/// then `previous`. Each eval-loop call pushes a frame owned by the C stack under the first frame
/// it runs; 3.13's `f_executable` may be something else than a code object (then the frame is
/// skipped), and `prev_instr` (3.12) or `instr_ptr` (3.13) is the instruction being run.
///
/// # Safety
/// As in [`capture`].
pub(super) unsafe fn walk_current(py: &Python, tstate: usize, w: &mut Frames<'_>) {
    let l = &py.layout;
    // SAFETY: per the contract; frames in the chain are live interpreter frames, and a code
    // object's fields are read only once its type is checked to be PyCode_Type.
    unsafe {
        let mut frame = word(tstate + l.tstate_frame);
        if l.cframe_current_frame != layout::NONE {
            // 3.12: through the thread's _PyCFrame.
            if !plausible(frame) {
                return;
            }
            frame = word(frame + l.cframe_current_frame);
        }
        while plausible(frame) && !w.full() {
            let owner = *((frame + l.frame_owner) as *const u8);
            let next = word(frame + l.frame_previous);
            if owner == l.owned_by_cstack {
                // The bottom of an eval-loop call: the frame above (already written, innermost
                // first) was its first.
                w.end_call();
                frame = next;
                continue;
            }
            let code = word(frame + l.frame_code);
            if !is_code(py, code) {
                frame = next;
                continue;
            }
            if let Some(instr) = position(l, code, owner, word(frame + l.frame_instr)) {
                w.push(code_id(py, code, w.send), instr, false);
            }
            frame = next;
        }
    }
}

/// The code unit an interpreter frame (3.11+) is running, from its instruction pointer
/// (`prev_instr` or `instr_ptr`); None for a frame still in its prologue (or the shim frame of an
/// `__init__` call), which has no meaningful position: CPython's `_PyFrame_IsIncomplete`.
///
/// # Safety
/// `code` is the frame's code object, alive (held by a frame of this thread, see [`capture`]).
unsafe fn position(l: &Layout, code: usize, owner: u8, instr_ptr: usize) -> Option<usize> {
    let start = code + l.code_code_adaptive;
    // SAFETY: a field of the live code object.
    let first_traceable = unsafe { *((code + l.code_firsttraceable) as *const i32) } as usize;
    // A generator's frame is never incomplete; one not started yet points before its code.
    (owner == l.owned_by_generator || instr_ptr >= start + first_traceable * 2)
        .then(|| instr_ptr.saturating_sub(start) / 2)
}
