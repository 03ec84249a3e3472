//! Control requests (`memshim ctl PID snapshot|start|stop`, see sys/control.rs), served by the
//! writer once per flush interval.

use memshim_format::snapshot::Cause;
use memshim_format::{Marker, Record};

use super::capture::Writer;
use crate::state;
use crate::sys::control::{self, Request};
use crate::sys::real;

impl Writer {
    pub(super) fn serve_requests(&mut self) {
        let asked_here = state::take_snapshot_request();
        let asked_there = control::pending(Request::Snapshot);
        if asked_here || asked_there {
            if self.snap.is_some() {
                self.write_snapshot(Cause::Request, false);
            } else {
                // An event capture is current once flushed.
                self.flush();
            }
        }
        if asked_there {
            control::answer(Request::Snapshot, self.file.path());
        }
        if control::pending(Request::Stop) {
            state::pause();
            self.mark(Marker::RecordingStopped);
            if self.snap.is_some() {
                self.write_snapshot(Cause::Stop, false);
            } else {
                self.flush();
            }
            control::answer(Request::Stop, self.file.path());
        }
        if control::pending(Request::Start) {
            // A paused start was resumed by the allocating thread that saw the request; a stop
            // is undone here.
            state::resume();
            self.mark(Marker::RecordingStarted);
            let t = self.rel(real::now_ns());
            if let Some(s) = self.snap.as_mut() {
                s.agg.counted_from = t;
                self.write_snapshot(Cause::Start, true);
            } else {
                self.flush();
            }
            control::answer(Request::Start, self.file.path());
        }
    }

    fn mark(&mut self, marker: Marker) {
        let t = self.rel(real::now_ns());
        self.chunk.push(&Record::Marker { t, marker });
    }
}
