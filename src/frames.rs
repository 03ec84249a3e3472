//! A frame as reports show it, and the merging of Python frames into native stacks.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Native,
    Python,
}

/// One frame of a site, innermost first in a stack. Unknown values are `None` (`null` in JSON).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Frame {
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    /// Path of the object the code lives in (`null` for Python frames and unmapped addresses).
    pub module: Option<String>,
    pub kind: Kind,
    /// `module+0xoffset` (file-relative) for native frames, so unsymbolized frames still say where.
    pub address: Option<String>,
}

impl Frame {
    /// `function (file:line)`, or the address when the function is unknown.
    pub fn label(&self) -> String {
        let name = match (&self.function, &self.address) {
            (Some(f), _) => f.clone(),
            (None, Some(a)) => a.clone(),
            (None, None) => "??".to_string(),
        };
        match (&self.file, self.line) {
            (Some(file), Some(line)) => format!("{name} ({file}:{line})"),
            (Some(file), None) => format!("{name} ({file})"),
            _ => name,
        }
    }

    /// The short name used in flamegraphs and pprof functions.
    pub fn name(&self) -> String {
        match (&self.function, &self.address) {
            (Some(f), _) => f.clone(),
            (None, Some(a)) => a.clone(),
            (None, None) => "??".to_string(),
        }
    }
}

/// The native frame that runs Python code: each one is replaced by the Python frames it ran.
const EVAL_FRAME: &str = "_PyEval_EvalFrameDefault";

/// Merges Python frames (innermost first; `entry` marks the first Python frame an eval-loop call
/// ran) into a native stack (innermost first), memray style: each `_PyEval_EvalFrameDefault`
/// frame becomes the Python frames it was running. Python frames left over (no eval frame was
/// symbolized) go outermost.
pub fn merge_python(native: Vec<Frame>, python: Vec<(Frame, bool)>) -> Vec<Frame> {
    if python.is_empty() {
        return native;
    }
    let mut out = Vec::with_capacity(native.len() + python.len());
    let mut py = python.into_iter().peekable();
    for f in native {
        let is_eval = f
            .function
            .as_deref()
            .is_some_and(|n| n.starts_with(EVAL_FRAME));
        if is_eval && py.peek().is_some() {
            for (pf, entry) in py.by_ref() {
                out.push(pf);
                if entry {
                    break;
                }
            }
        } else {
            out.push(f);
        }
    }
    out.extend(py.map(|(f, _)| f));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn native(name: &str) -> Frame {
        Frame {
            function: Some(name.into()),
            file: None,
            line: None,
            module: Some("/lib/x.so".into()),
            kind: Kind::Native,
            address: None,
        }
    }

    fn py(name: &str, entry: bool) -> (Frame, bool) {
        let mut f = native(name);
        f.kind = Kind::Python;
        f.module = None;
        (f, entry)
    }

    #[test]
    fn eval_frames_become_the_python_frames_they_ran() {
        let stack = vec![
            native("malloc_wrapper"),
            native("_PyEval_EvalFrameDefault"),
            native("PyObject_Call"),
            native("_PyEval_EvalFrameDefault"),
            native("main"),
        ];
        let pyf = vec![py("inner", false), py("middle", true), py("outer", true)];
        let names: Vec<_> = merge_python(stack, pyf)
            .into_iter()
            .map(|f| f.function.unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "malloc_wrapper",
                "inner",
                "middle",
                "PyObject_Call",
                "outer",
                "main"
            ]
        );
    }

    #[test]
    fn python_frames_without_an_eval_frame_go_outermost() {
        let names: Vec<_> = merge_python(vec![native("a")], vec![py("f", true)])
            .into_iter()
            .map(|f| f.function.unwrap())
            .collect();
        assert_eq!(names, ["a", "f"]);
    }
}
