//! A frame as reports show it, and the merging of Python frames into native stacks.

use serde::Serialize;

use crate::capture::modules::Addr;

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

/// Whether a native frame is the interpreter's eval loop.
pub fn is_eval(f: &Frame) -> bool {
    f.kind == Kind::Native
        && f.function
            .as_deref()
            .is_some_and(|n| n.starts_with(EVAL_FRAME))
}

/// What one return address expands to (one or more frames with inlining, innermost first), or
/// one Python frame (`addr` is `None`). pprof makes one location per unit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Unit {
    pub addr: Option<Addr>,
    pub frames: Vec<Frame>,
}

impl Unit {
    pub fn python(f: Frame) -> Self {
        Unit {
            addr: None,
            frames: vec![f],
        }
    }

    pub fn is_python(&self) -> bool {
        self.addr.is_none() && self.frames.iter().all(|f| f.kind == Kind::Python)
    }
}

/// All frames of a stack of units, innermost first.
pub fn flatten(units: Vec<Unit>) -> Vec<Frame> {
    units.into_iter().flat_map(|u| u.frames).collect()
}

/// Merges Python frames (innermost first; `entry` marks the first Python frame an eval-loop call
/// ran; `None` stands for a call with no Python frame at that moment) into a native stack
/// (innermost first), memray style: each `_PyEval_EvalFrameDefault` frame becomes the Python
/// frames it was running (frames inlined into the eval loop stay, inner to them), or stays as it
/// is for a call without any. Python frames left over (no eval frame was symbolized) go
/// outermost.
pub fn merge_python(native: Vec<Unit>, python: Vec<(Option<Frame>, bool)>) -> Vec<Unit> {
    if python.is_empty() {
        return native;
    }
    let mut out = Vec::with_capacity(native.len() + python.len());
    let mut py = python.into_iter().peekable();
    for u in native {
        let pos = u.frames.iter().position(is_eval);
        match pos {
            Some(k) if py.peek().is_some() => {
                let mut call = Vec::new();
                for (pf, entry) in py.by_ref() {
                    call.extend(pf);
                    if entry {
                        break;
                    }
                }
                if call.is_empty() {
                    out.push(u);
                    continue;
                }
                if k > 0 {
                    out.push(Unit {
                        addr: u.addr,
                        frames: u.frames[..k].to_vec(),
                    });
                }
                out.extend(call.into_iter().map(Unit::python));
                if k + 1 < u.frames.len() {
                    out.push(Unit {
                        addr: u.addr,
                        frames: u.frames[k + 1..].to_vec(),
                    });
                }
            }
            _ => out.push(u),
        }
    }
    out.extend(py.filter_map(|(f, _)| f.map(Unit::python)));
    out
}

/// The `--python-only` view of a merged stack: the innermost native units (the allocation
/// itself) up to the first Python frame, minus the interpreter's own frames (module `interp`)
/// between the outermost non-interpreter frame and that Python frame (e.g. `cfunction_call`
/// under a C extension function), then the Python frames only. When every innermost native frame
/// is the interpreter's (an object allocated by CPython itself), they are all kept. A stack
/// without Python frames is returned whole.
pub fn python_only(units: Vec<Unit>, interp: Option<&str>) -> Vec<Unit> {
    let Some(first_py) = units.iter().position(Unit::is_python) else {
        return units;
    };
    let in_interp =
        |u: &Unit| interp.is_some() && u.frames.iter().all(|f| f.module.as_deref() == interp);
    let keep = match units[..first_py].iter().rposition(|u| !in_interp(u)) {
        Some(last_own) => last_own + 1,
        None => first_py,
    };
    let mut out: Vec<Unit> = Vec::with_capacity(units.len());
    for (i, u) in units.into_iter().enumerate() {
        if i < keep || (i >= first_py && u.is_python()) {
            out.push(u);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn native_in(name: &str, module: &str) -> Frame {
        Frame {
            function: Some(name.into()),
            file: None,
            line: None,
            module: Some(module.into()),
            kind: Kind::Native,
            address: None,
        }
    }

    fn native(name: &str) -> Unit {
        unit(native_in(name, "/lib/libpython3.11.so"))
    }

    fn unit(f: Frame) -> Unit {
        Unit {
            addr: Some(Addr {
                module: 0,
                addr: f.function.as_ref().map_or(0, |n| n.len() as u64),
            }),
            frames: vec![f],
        }
    }

    fn py(name: &str, entry: bool) -> (Option<Frame>, bool) {
        let mut f = native_in(name, "");
        f.kind = Kind::Python;
        f.module = None;
        (Some(f), entry)
    }

    fn names(units: Vec<Unit>) -> Vec<String> {
        flatten(units)
            .into_iter()
            .map(|f| f.function.unwrap())
            .collect()
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
        assert_eq!(
            names(merge_python(stack, pyf)),
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
    fn an_eval_call_without_python_frames_stays_native_and_keeps_the_outer_calls_in_place() {
        // The inner eval call is clearing the frame it returned from (3.12+): it has no Python
        // frame, and `main` belongs to the outer call, under `map_next`.
        let stack = vec![
            native("_PyEval_EvalFrameDefault"),
            native("map_next"),
            native("_PyEval_EvalFrameDefault"),
            native("Py_RunMain"),
        ];
        let pyf = vec![(None, true), py("main", false), py("<module>", true)];
        assert_eq!(
            names(merge_python(stack, pyf)),
            [
                "_PyEval_EvalFrameDefault",
                "map_next",
                "main",
                "<module>",
                "Py_RunMain"
            ]
        );
    }

    #[test]
    fn frames_inlined_into_the_eval_loop_stay_inner_to_the_python_frames() {
        let eval = Unit {
            addr: Some(Addr { module: 0, addr: 9 }),
            frames: vec![
                native_in("_PyList_AppendTakeRef", "/lib/libpython3.11.so"),
                native_in("_PyEval_EvalFrameDefault", "/lib/libpython3.11.so"),
            ],
        };
        let merged = merge_python(vec![native("list_resize"), eval], vec![py("f", true)]);
        assert_eq!(names(merged), ["list_resize", "_PyList_AppendTakeRef", "f"]);
    }

    #[test]
    fn python_frames_without_an_eval_frame_go_outermost() {
        assert_eq!(
            names(merge_python(vec![native("a")], vec![py("f", true)])),
            ["a", "f"]
        );
    }

    #[test]
    fn python_only_keeps_the_extension_frames_and_drops_interpreter_glue() {
        let lib = "/lib/libpython3.11.so";
        let stack = vec![
            unit(native_in("tokenize", "/ext/leakyext.so")),
            unit(native_in("cfunction_call", lib)),
            unit(native_in("_PyObject_MakeTpCall", lib)),
            native("_PyEval_EvalFrameDefault"),
            native("PyObject_Call"),
            unit(native_in("callback", "/ext/other.so")),
            native("_PyEval_EvalFrameDefault"),
            native("main"),
        ];
        let pyf = vec![py("handle", false), py("main", true), py("<module>", true)];
        let merged = merge_python(stack, pyf);
        assert_eq!(
            names(python_only(merged, Some(lib))),
            ["tokenize", "handle", "main", "<module>"]
        );
    }

    #[test]
    fn python_only_keeps_interpreter_allocations_whole_and_native_stacks_untouched() {
        let lib = "/lib/libpython3.11.so";
        let stack = vec![
            native("list_resize"),
            native("PyList_Append"),
            native("_PyEval_EvalFrameDefault"),
            native("main"),
        ];
        let merged = merge_python(stack.clone(), vec![py("f", true)]);
        assert_eq!(
            names(python_only(merged, Some(lib))),
            ["list_resize", "PyList_Append", "f"]
        );
        assert_eq!(names(python_only(stack.clone(), Some(lib))), names(stack));
    }
}
