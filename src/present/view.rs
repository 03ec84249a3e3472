//! How stacks are shown: hybrid (Python frames in place of the interpreter's eval-loop frames,
//! the default), Python-only, or native-only. Shared by report, flamegraph, pprof and html.

/// Which frames a report shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum View {
    /// Native frames with Python frames merged in place of `_PyEval_EvalFrameDefault`.
    #[default]
    Hybrid,
    /// The allocation's own native frames (innermost, up to the first Python frame, without
    /// the interpreter's call machinery just below it), then Python frames only.
    PythonOnly,
    /// Native frames only: the raw `_PyEval_EvalFrameDefault` frames, no Python frames.
    NativeOnly,
}

/// The `--python-only` / `--native-only` flags of every command that shows stacks.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct ViewArgs {
    /// Show Python frames only: keep the allocation's own native frames (e.g. the C extension
    /// function that called malloc, above the first Python frame; interpreter frames between
    /// that function and the Python frame are dropped) and collapse every native frame between
    /// and around Python frames. Stacks without Python frames are shown whole.
    #[arg(long, conflicts_with = "native_only")]
    pub python_only: bool,
    /// Show native frames only: no Python frames, the interpreter's raw eval-loop frames.
    #[arg(long)]
    pub native_only: bool,
}

impl ViewArgs {
    pub fn view(self) -> View {
        match (self.python_only, self.native_only) {
            (true, _) => View::PythonOnly,
            (_, true) => View::NativeOnly,
            _ => View::Hybrid,
        }
    }
}
