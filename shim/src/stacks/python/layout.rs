//! Where the fields the frame walker reads sit in each CPython version memshim supports.
//!
//! Every number here is vouched for by a unit test that compiles that version's own headers
//! (`offsetof`, see the tests at the end) and by an integration test (tests/py_versions.rs, and
//! tests/py_leaks.rs for 3.11) that runs a real interpreter of that version under the real shim.
//! Supported: 3.8, 3.10 and 3.12 (pyenv's 3.8.18, 3.10.13 and 3.12.1, on this project's
//! machines), 3.9 (Debian 11's build), 3.11, 3.13 (read from the interpreter's own
//! `_Py_DebugOffsets`, checked against [`PY313`]). 3.7 and older, and 3.14+, have no layout
//! here, so the shim refuses them.

/// How a version chains the frames of a thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chain {
    /// 3.8 to 3.10: `tstate->frame`, a chain of `PyFrameObject` (`f_back`, `f_code`, `f_lasti`
    /// in bytes up to 3.9, in code units in 3.10). Every frame is run by its own
    /// `_PyEval_EvalFrameDefault` call.
    FrameObjects,
    /// 3.11: `tstate->cframe->current_frame`, a chain of `_PyInterpreterFrame` (`previous`,
    /// `f_code`, `prev_instr`); `is_entry` marks the outermost frame of each eval-loop call.
    CFrame,
    /// 3.12 and 3.13: a chain of `_PyInterpreterFrame` (`previous`, `f_code` in 3.12,
    /// `f_executable` in 3.13, which may be no code object, and `prev_instr` or `instr_ptr`, the
    /// instruction being run), from `tstate->cframe->current_frame` (3.12) or
    /// `tstate->current_frame` (3.13); each eval-loop call pushes a `FRAME_OWNED_BY_CSTACK` frame
    /// under its first frame.
    Current,
}

/// A field this version does not have (never read).
pub const NONE: usize = usize::MAX;

/// Offsets into CPython's structs, for one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub version: (u8, u8),
    pub chain: Chain,
    /// `PyThreadState.frame` (3.9, 3.10), `.cframe` (3.11, 3.12), `.current_frame` (3.13).
    pub tstate_frame: usize,
    /// `_PyCFrame.current_frame` (3.11, 3.12).
    pub cframe_current_frame: usize,
    /// `f_code` (3.9 to 3.12) or `f_executable` (3.13).
    pub frame_code: usize,
    /// `f_back` (3.9, 3.10) or `previous`.
    pub frame_previous: usize,
    /// `f_lasti` (3.9, 3.10: an int), `prev_instr` (3.11, 3.12) or `instr_ptr` (3.13).
    pub frame_instr: usize,
    /// `f_lasti` counts code units (3.10), not bytes (3.9).
    pub lasti_in_units: bool,
    /// `_PyInterpreterFrame.is_entry` (3.11 only).
    pub frame_is_entry: usize,
    /// `_PyInterpreterFrame.owner` (3.11+).
    pub frame_owner: usize,
    pub owned_by_generator: u8,
    /// `FRAME_OWNED_BY_CSTACK` (3.12+; 3.11 has none: 0xff).
    pub owned_by_cstack: u8,
    /// `PyObject.ob_type`.
    pub object_type: usize,
    /// `PyTypeObject.tp_basicsize`.
    pub type_basicsize: usize,
    /// `PyCode_Type.tp_basicsize` of this version: checked at start against the running
    /// interpreter, a cheap proof that the build matches the headers.
    pub code_basicsize: usize,
    /// `PyFrame_Type.tp_basicsize` (3.9 and 3.10, whose walker reads frame objects).
    pub frame_basicsize: usize,
    pub code_firstlineno: usize,
    pub code_filename: usize,
    pub code_name: usize,
    /// `co_qualname` (3.11+; 3.9 and 3.10 have none).
    pub code_qualname: usize,
    /// `co_lnotab` (3.9) or `co_linetable` (3.10+; the CLI decodes by version).
    pub code_linetable: usize,
    /// `_co_firsttraceable` (3.11+).
    pub code_firsttraceable: usize,
    /// `co_code_adaptive` (3.11+).
    pub code_code_adaptive: usize,
    /// `_PyRuntimeState._finalizing`.
    pub runtime_finalizing: usize,
    pub unicode_length: usize,
    pub unicode_state: usize,
    /// `sizeof(PyASCIIObject)`: where an ASCII string's bytes start.
    pub unicode_ascii_size: usize,
    pub unicode_utf8_length: usize,
    pub unicode_utf8: usize,
    /// `sizeof(PyCompactUnicodeObject)`: where a non-ASCII compact string's data starts.
    pub unicode_compact_size: usize,
    pub bytes_size: usize,
    pub bytes_sval: usize,
}

/// CPython 3.8 (pyenv's 3.8.18): every field the walker reads sits where 3.9 has it; only
/// `_PyRuntimeState.finalizing` is named without 3.9's underscore (a `PyThreadState *`, non-null
/// from the start of finalization, as 3.9's `_finalizing`).
pub const PY38: Layout = Layout {
    version: (3, 8),
    ..PY39
};

/// CPython 3.9 as Debian 11 builds it (3.9.2; Include/cpython/pystate.h,
/// Include/cpython/frameobject.h, Include/cpython/code.h, Include/internal/pycore_runtime.h,
/// Include/cpython/unicodeobject.h).
pub const PY39: Layout = Layout {
    version: (3, 9),
    chain: Chain::FrameObjects,
    tstate_frame: 24,
    cframe_current_frame: NONE,
    frame_code: 32,
    frame_previous: 24,
    frame_instr: 104,
    lasti_in_units: false,
    frame_is_entry: NONE,
    frame_owner: NONE,
    owned_by_generator: 0xff,
    owned_by_cstack: 0xff,
    object_type: 8,
    type_basicsize: 32,
    code_basicsize: 176,
    frame_basicsize: 368,
    code_firstlineno: 40,
    code_filename: 104,
    code_name: 112,
    code_qualname: NONE,
    code_linetable: 120,
    code_firsttraceable: NONE,
    code_code_adaptive: NONE,
    runtime_finalizing: 16,
    unicode_length: 16,
    unicode_state: 32,
    unicode_ascii_size: 48,
    unicode_utf8_length: 48,
    unicode_utf8: 56,
    unicode_compact_size: 72,
    bytes_size: 16,
    bytes_sval: 32,
};

/// CPython 3.10 (pyenv's 3.10.13): 3.9's structs, but for `f_lasti`, which moved and counts
/// code units, and a smaller frame object (`co_linetable`, PEP 626's, sits where `co_lnotab` was).
pub const PY310: Layout = Layout {
    version: (3, 10),
    frame_instr: 96,
    lasti_in_units: true,
    frame_basicsize: 360,
    ..PY39
};

/// CPython 3.11 (Include/cpython/pystate.h, Include/internal/pycore_frame.h,
/// Include/cpython/code.h, Include/internal/pycore_runtime.h, Include/cpython/unicodeobject.h).
pub const PY311: Layout = Layout {
    version: (3, 11),
    chain: Chain::CFrame,
    tstate_frame: 56,
    cframe_current_frame: 8,
    frame_code: 32,
    frame_previous: 48,
    frame_instr: 56,
    lasti_in_units: false,
    frame_is_entry: 68,
    frame_owner: 69,
    owned_by_generator: 1,
    owned_by_cstack: 0xff,
    object_type: 8,
    type_basicsize: 32,
    code_basicsize: 184,
    frame_basicsize: NONE,
    code_firstlineno: 72,
    code_filename: 112,
    code_name: 120,
    code_qualname: 128,
    code_linetable: 136,
    code_firsttraceable: 168,
    code_code_adaptive: 184,
    runtime_finalizing: 24,
    unicode_length: 16,
    unicode_state: 32,
    unicode_ascii_size: 48,
    unicode_utf8_length: 48,
    unicode_utf8: 56,
    unicode_compact_size: 72,
    bytes_size: 16,
    bytes_sval: 32,
};

/// CPython 3.12 (pyenv's 3.12.1; the same headers as 3.11, plus `FRAME_OWNED_BY_CSTACK` entry
/// frames instead of `is_entry`, and 3.12's smaller `PyASCIIObject`).
pub const PY312: Layout = Layout {
    version: (3, 12),
    chain: Chain::Current,
    tstate_frame: 56,
    cframe_current_frame: 0,
    frame_code: 0,
    frame_previous: 8,
    frame_instr: 56,
    lasti_in_units: false,
    frame_is_entry: NONE,
    frame_owner: 70,
    owned_by_generator: 1,
    owned_by_cstack: 3,
    object_type: 8,
    type_basicsize: 32,
    code_basicsize: 192,
    frame_basicsize: NONE,
    code_firstlineno: 68,
    code_filename: 112,
    code_name: 120,
    code_qualname: 128,
    code_linetable: 136,
    code_firsttraceable: 176,
    code_code_adaptive: 192,
    runtime_finalizing: 24,
    unicode_length: 16,
    unicode_state: 32,
    unicode_ascii_size: 40,
    unicode_utf8_length: 40,
    unicode_utf8: 48,
    unicode_compact_size: 56,
    bytes_size: 16,
    bytes_sval: 32,
};

/// CPython 3.13 as its headers describe it (Debian 13's 3.13.5). At start the shim takes the
/// fields `_Py_DebugOffsets` covers from the running interpreter instead ([`from_debug_offsets`]);
/// this table supplies the rest and is what those values are validated against.
pub const PY313: Layout = Layout {
    version: (3, 13),
    chain: Chain::Current,
    tstate_frame: 72,
    cframe_current_frame: NONE,
    frame_code: 0,
    frame_previous: 8,
    frame_instr: 56,
    lasti_in_units: false,
    frame_is_entry: NONE,
    frame_owner: 70,
    owned_by_generator: 1,
    owned_by_cstack: 3,
    object_type: 8,
    type_basicsize: 32,
    code_basicsize: 200,
    frame_basicsize: NONE,
    code_firstlineno: 68,
    code_filename: 112,
    code_name: 120,
    code_qualname: 128,
    code_linetable: 136,
    code_firsttraceable: 184,
    code_code_adaptive: 200,
    runtime_finalizing: 608,
    unicode_length: 16,
    unicode_state: 32,
    unicode_ascii_size: 40,
    unicode_utf8_length: 40,
    unicode_utf8: 48,
    unicode_compact_size: 56,
    bytes_size: 16,
    bytes_sval: 32,
};

/// `sizeof(PyCodeObject)` in 3.13 (the `code_object.size` its debug offsets must report: the
/// fields they do not cover, `_co_firsttraceable`, are taken from [`PY313`] only then).
pub const PY313_CODE_SIZE: usize = 208;
/// `sizeof(_PyInterpreterFrame)` in 3.13.
pub const PY313_FRAME_SIZE: usize = 80;

/// Where the fields of CPython 3.13's `_Py_DebugOffsets` that the shim reads sit (the struct
/// is stable across 3.13.x releases, not across minor versions; checked against the headers).
pub mod debug313 {
    pub const COOKIE: usize = 0;
    pub const VERSION: usize = 8;
    pub const FREE_THREADED: usize = 16;
    pub const RUNTIME_SIZE: usize = 24;
    pub const RUNTIME_FINALIZING: usize = 32;
    pub const TSTATE_SIZE: usize = 152;
    pub const TSTATE_CURRENT_FRAME: usize = 184;
    pub const FRAME_SIZE: usize = 224;
    pub const FRAME_PREVIOUS: usize = 232;
    pub const FRAME_EXECUTABLE: usize = 240;
    pub const FRAME_INSTR_PTR: usize = 248;
    pub const FRAME_OWNER: usize = 264;
    pub const CODE_SIZE: usize = 272;
    pub const CODE_FILENAME: usize = 280;
    pub const CODE_NAME: usize = 288;
    pub const CODE_QUALNAME: usize = 296;
    pub const CODE_LINETABLE: usize = 304;
    pub const CODE_FIRSTLINENO: usize = 312;
    pub const CODE_ADAPTIVE: usize = 344;
    pub const OBJECT_SIZE: usize = 352;
    pub const OBJECT_TYPE: usize = 360;
    pub const BYTES_SIZE: usize = 512;
    pub const BYTES_OB_SIZE: usize = 520;
    pub const BYTES_SVAL: usize = 528;
    pub const UNICODE_SIZE: usize = 536;
    pub const UNICODE_STATE: usize = 544;
    pub const UNICODE_LENGTH: usize = 552;
    pub const UNICODE_ASCII_SIZE: usize = 560;
    /// `sizeof(_Py_DebugOffsets)`: the bytes the shim copies from the start of `_PyRuntime`.
    pub const SIZE: usize = 584;
}

/// The 3.13 layout of the running interpreter, from the `_Py_DebugOffsets` at the start of its
/// `_PyRuntime` (`d`, [`debug313::SIZE`] bytes) and its `Py_Version`. Refuses (with the reason)
/// what it cannot vouch for: a wrong cookie or version, a free-threaded build (another object
/// layout, and no GIL to make reading frames safe), an offset outside its struct, or a code object
/// of another size than the headers' (the fields the offsets do not cover could have moved).
pub fn from_debug_offsets(d: &[u8], py_version: u32) -> Result<Layout, String> {
    use debug313 as o;
    if d.len() < o::SIZE {
        return Err("debug offsets too short".into());
    }
    let u = |at: usize| u64::from_le_bytes(d[at..at + 8].try_into().unwrap());
    if &d[o::COOKIE..o::COOKIE + 8] != b"xdebugpy" {
        return Err("no _Py_DebugOffsets cookie at the start of _PyRuntime".into());
    }
    let version = u(o::VERSION);
    if version != py_version as u64 || version >> 16 != 0x030d {
        return Err(format!(
            "_Py_DebugOffsets version {version:#x} is not Py_Version {py_version:#x} (3.13)"
        ));
    }
    if u(o::FREE_THREADED) != 0 {
        return Err("free-threaded builds are not supported".into());
    }
    // Each field: (offset of its value, offset of its struct's size, width read).
    let field = |at: usize, size_at: usize, width: u64| -> Result<usize, String> {
        let (v, size) = (u(at), u(size_at));
        if size > 1 << 20 || v.checked_add(width).is_none_or(|end| end > size) {
            return Err(format!(
                "_Py_DebugOffsets field at {at}: offset {v} outside its struct of {size} bytes"
            ));
        }
        Ok(v as usize)
    };
    let code_size = u(o::CODE_SIZE);
    if code_size != PY313_CODE_SIZE as u64 {
        return Err(format!(
            "code objects of {code_size} bytes, not the {PY313_CODE_SIZE} of the verified headers"
        ));
    }
    let ascii = field(o::UNICODE_ASCII_SIZE, o::UNICODE_SIZE, 0)?;
    let l = Layout {
        tstate_frame: field(o::TSTATE_CURRENT_FRAME, o::TSTATE_SIZE, 8)?,
        frame_code: field(o::FRAME_EXECUTABLE, o::FRAME_SIZE, 8)?,
        frame_previous: field(o::FRAME_PREVIOUS, o::FRAME_SIZE, 8)?,
        frame_instr: field(o::FRAME_INSTR_PTR, o::FRAME_SIZE, 8)?,
        frame_owner: field(o::FRAME_OWNER, o::FRAME_SIZE, 1)?,
        object_type: field(o::OBJECT_TYPE, o::OBJECT_SIZE, 8)?,
        code_firstlineno: field(o::CODE_FIRSTLINENO, o::CODE_SIZE, 4)?,
        code_filename: field(o::CODE_FILENAME, o::CODE_SIZE, 8)?,
        code_name: field(o::CODE_NAME, o::CODE_SIZE, 8)?,
        code_qualname: field(o::CODE_QUALNAME, o::CODE_SIZE, 8)?,
        code_linetable: field(o::CODE_LINETABLE, o::CODE_SIZE, 8)?,
        code_code_adaptive: field(o::CODE_ADAPTIVE, o::CODE_SIZE, 2)?,
        runtime_finalizing: field(o::RUNTIME_FINALIZING, o::RUNTIME_SIZE, 8)?,
        unicode_length: field(o::UNICODE_LENGTH, o::UNICODE_SIZE, 8)?,
        unicode_state: field(o::UNICODE_STATE, o::UNICODE_SIZE, 4)?,
        unicode_ascii_size: ascii,
        // PyCompactUnicodeObject is { PyASCIIObject; Py_ssize_t utf8_length; char *utf8; }.
        unicode_utf8_length: ascii,
        unicode_utf8: ascii + 8,
        unicode_compact_size: ascii + 16,
        bytes_size: field(o::BYTES_OB_SIZE, o::BYTES_SIZE, 8)?,
        bytes_sval: field(o::BYTES_SVAL, o::BYTES_SIZE, 0)?,
        ..PY313
    };
    if l.code_code_adaptive != PY313.code_code_adaptive {
        return Err(format!(
            "co_code_adaptive at {}, not at {} as in the verified headers",
            l.code_code_adaptive, PY313.code_code_adaptive
        ));
    }
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// The headers of a provisioned version: `-I` for its Python headers and `-idirafter` for
    /// its Debian tree (pyconfig.h is under the multiarch directory there; the tree's own libc
    /// headers must not shadow this machine's).
    fn provisioned_headers(version: &str) -> Vec<String> {
        let root = memshim_test_pythons::provisioned(version).join("usr/include");
        vec![
            format!("-I{}/python{version}", root.display()),
            "-idirafter".into(),
            root.display().to_string(),
        ]
    }

    /// Compiles `program` with `flags` and returns the numbers it prints.
    fn numbers(tag: &str, flags: &[String], program: &str) -> Vec<usize> {
        let dir = std::env::temp_dir().join(format!("memshim-layout-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("layout.c");
        std::fs::write(&src, program).unwrap();
        let exe = dir.join("layout");
        let out = Command::new("cc")
            .args(flags)
            .arg(&src)
            .arg("-o")
            .arg(&exe)
            .output()
            .expect("cc runs");
        assert!(
            out.status.success(),
            "compiling against the {tag} headers failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = Command::new(&exe).output().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect()
    }

    /// The fields every version shares, in the order [`COMMON_C`] prints them.
    fn common(l: &Layout) -> Vec<usize> {
        vec![
            l.object_type,
            l.type_basicsize,
            l.code_firstlineno,
            l.code_filename,
            l.code_name,
            l.code_linetable,
            l.runtime_finalizing,
            l.unicode_length,
            l.unicode_state,
            l.unicode_ascii_size,
            l.unicode_utf8_length,
            l.unicode_utf8,
            l.unicode_compact_size,
            l.bytes_size,
            l.bytes_sval,
            // The state bits read_str decodes: kind 4 at bit 2, compact at 5, ascii at 6.
            4 << 2 | 1 << 5 | 1 << 6,
        ]
    }

    /// `LINETABLE` is co_lnotab or co_linetable.
    const COMMON_C: &str = r#"
#define Py_BUILD_CORE 1
#include <Python.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include "internal/pycore_runtime.h"
EXTRA_INCLUDES
static unsigned state_bits(void) {
    PyASCIIObject o;
    unsigned w;
    memset(&o, 0, sizeof o);
    o.state.kind = 4;
    o.state.compact = 1;
    o.state.ascii = 1;
    memcpy(&w, (char *)&o + offsetof(PyASCIIObject, state), sizeof w);
    return w;
}
int main(void) {
    size_t v[] = {
        offsetof(PyObject, ob_type), offsetof(PyTypeObject, tp_basicsize),
        offsetof(PyCodeObject, co_firstlineno), offsetof(PyCodeObject, co_filename),
        offsetof(PyCodeObject, co_name), offsetof(PyCodeObject, LINETABLE),
        offsetof(_PyRuntimeState, _finalizing), offsetof(PyASCIIObject, length),
        offsetof(PyASCIIObject, state), sizeof(PyASCIIObject),
        offsetof(PyCompactUnicodeObject, utf8_length), offsetof(PyCompactUnicodeObject, utf8),
        sizeof(PyCompactUnicodeObject), offsetof(PyVarObject, ob_size),
        offsetof(PyBytesObject, ob_sval), state_bits(),
        VERSION_FIELDS
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) printf("%zu\n", v[i]);
    return 0;
}
"#;

    fn program(linetable: &str, includes: &str, fields: &str) -> String {
        COMMON_C
            .replace("LINETABLE", linetable)
            .replace("EXTRA_INCLUDES", includes)
            .replace("VERSION_FIELDS", fields)
    }

    /// `-I` flags for the headers of the interpreter `py`, which must be version `want`.
    fn own_headers(py: &str, want: &str) -> Vec<String> {
        let out = Command::new(py)
            .args(["-c", "import sys,sysconfig;print('%d.%d' % sys.version_info[:2]);print(sysconfig.get_paths()['include'])"])
            .output()
            .expect("the interpreter runs");
        let text = String::from_utf8(out.stdout).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next().unwrap(), want, "{py} is not CPython {want}");
        let include = lines.next().unwrap();
        vec![format!("-I{include}"), format!("-I{include}/internal")]
    }

    /// `-I` flags for the headers of pyenv's CPython `version`.
    fn pyenv_headers(version: &str) -> Vec<String> {
        own_headers(
            memshim_test_pythons::pyenv(version).to_str().unwrap(),
            version,
        )
    }

    /// Compiles a program against the interpreter's own headers that prints `offsetof` each
    /// field the walker reads, and compares with the table: the layout is vouched for, not
    /// guessed. 3.11 is this machine's `python3` (or `$PYTHON`).
    #[test]
    fn py311_layout_matches_cpython_headers() {
        let py = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        let got = numbers(
            "3.11",
            &own_headers(&py, "3.11"),
            &program(
                "co_linetable",
                "#include \"internal/pycore_frame.h\"",
                "offsetof(PyThreadState, cframe), offsetof(_PyCFrame, current_frame),
                 offsetof(_PyInterpreterFrame, f_code), offsetof(_PyInterpreterFrame, previous),
                 offsetof(_PyInterpreterFrame, prev_instr), offsetof(_PyInterpreterFrame, is_entry),
                 offsetof(_PyInterpreterFrame, owner), FRAME_OWNED_BY_GENERATOR,
                 offsetof(PyCodeObject, co_qualname), offsetof(PyCodeObject, _co_firsttraceable),
                 offsetof(PyCodeObject, co_code_adaptive),
                 /* PyCode_Type: \"code\", offsetof(PyCodeObject, co_code_adaptive), ... */
                 offsetof(PyCodeObject, co_code_adaptive)",
            ),
        );
        let l = &PY311;
        let mut want = common(l);
        want.extend([
            l.tstate_frame,
            l.cframe_current_frame,
            l.frame_code,
            l.frame_previous,
            l.frame_instr,
            l.frame_is_entry,
            l.frame_owner,
            l.owned_by_generator as usize,
            l.code_qualname,
            l.code_firsttraceable,
            l.code_code_adaptive,
            l.code_basicsize,
        ]);
        assert_eq!(got, want);
    }

    /// What the frame-object walker (3.8 to 3.10) reads, as C expressions for [`program`];
    /// [`frame_object_fields`] gives the table's values in the same order.
    const FRAME_OBJECT_FIELDS: &str =
        "offsetof(PyThreadState, frame), offsetof(PyFrameObject, f_code),
         offsetof(PyFrameObject, f_back), offsetof(PyFrameObject, f_lasti),
         sizeof(((PyFrameObject *)0)->f_lasti),
         /* PyCode_Type: \"code\", sizeof(PyCodeObject); PyFrame_Type: \"frame\",
            sizeof(PyFrameObject) */
         sizeof(PyCodeObject), sizeof(PyFrameObject)";

    /// The table's values of [`FRAME_OBJECT_FIELDS`], after the fields every version shares.
    fn frame_object_fields(l: &Layout) -> Vec<usize> {
        let mut want = common(l);
        want.extend([
            l.tstate_frame,
            l.frame_code,
            l.frame_previous,
            l.frame_instr,
            4, // f_lasti is an int
            l.code_basicsize,
            l.frame_basicsize,
        ]);
        want
    }

    /// 3.8, pyenv's: its runtime state is in pycore_pystate.h, its finalizing field has no
    /// underscore.
    #[test]
    fn py38_layout_matches_cpython_headers() {
        let got = numbers(
            "3.8",
            &pyenv_headers("3.8"),
            &program("co_lnotab", "#include <frameobject.h>", FRAME_OBJECT_FIELDS)
                .replace("internal/pycore_runtime.h", "internal/pycore_pystate.h")
                .replace(
                    "_PyRuntimeState, _finalizing",
                    "_PyRuntimeState, finalizing",
                ),
        );
        assert_eq!(got, frame_object_fields(&PY38));
    }

    /// 3.10, pyenv's.
    #[test]
    fn py310_layout_matches_cpython_headers() {
        let got = numbers(
            "3.10",
            &pyenv_headers("3.10"),
            &program(
                "co_linetable",
                "#include <frameobject.h>",
                FRAME_OBJECT_FIELDS,
            ),
        );
        assert_eq!(got, frame_object_fields(&PY310));
    }

    /// 3.12, pyenv's.
    #[test]
    fn py312_layout_matches_cpython_headers() {
        let got = numbers(
            "3.12",
            &pyenv_headers("3.12"),
            &program(
                "co_linetable",
                "#include \"internal/pycore_frame.h\"",
                "offsetof(PyThreadState, cframe), offsetof(_PyCFrame, current_frame),
                 offsetof(_PyInterpreterFrame, f_code), offsetof(_PyInterpreterFrame, previous),
                 offsetof(_PyInterpreterFrame, prev_instr), offsetof(_PyInterpreterFrame, owner),
                 FRAME_OWNED_BY_GENERATOR, FRAME_OWNED_BY_CSTACK,
                 offsetof(PyCodeObject, co_qualname), offsetof(PyCodeObject, _co_firsttraceable),
                 offsetof(PyCodeObject, co_code_adaptive),
                 /* PyCode_Type: \"code\", offsetof(PyCodeObject, co_code_adaptive), ... */
                 offsetof(PyCodeObject, co_code_adaptive)",
            ),
        );
        let l = &PY312;
        let mut want = common(l);
        want.extend([
            l.tstate_frame,
            l.cframe_current_frame,
            l.frame_code,
            l.frame_previous,
            l.frame_instr,
            l.frame_owner,
            l.owned_by_generator as usize,
            l.owned_by_cstack as usize,
            l.code_qualname,
            l.code_firsttraceable,
            l.code_code_adaptive,
            l.code_basicsize,
        ]);
        assert_eq!(got, want);
    }

    /// 3.9 (Debian 11's 3.9.2, provisioned by scripts/python-versions.sh).
    #[test]
    fn py39_layout_matches_cpython_headers() {
        let got = numbers(
            "3.9",
            &provisioned_headers("3.9"),
            &program("co_lnotab", "#include <frameobject.h>", FRAME_OBJECT_FIELDS),
        );
        assert_eq!(got, frame_object_fields(&PY39));
    }

    /// 3.13 (Debian 13's, provisioned by scripts/python-versions.sh): the table, and where the
    /// fields of `_Py_DebugOffsets` the shim reads sit.
    #[test]
    fn py313_layout_and_debug_offsets_match_cpython_headers() {
        let got = numbers(
            "3.13",
            &provisioned_headers("3.13"),
            &program(
                "co_linetable",
                "#include \"internal/pycore_frame.h\"",
                "offsetof(PyThreadState, current_frame),
                 offsetof(_PyInterpreterFrame, f_executable), offsetof(_PyInterpreterFrame, previous),
                 offsetof(_PyInterpreterFrame, instr_ptr), offsetof(_PyInterpreterFrame, owner),
                 FRAME_OWNED_BY_GENERATOR, FRAME_OWNED_BY_CSTACK,
                 offsetof(PyCodeObject, co_qualname), offsetof(PyCodeObject, _co_firsttraceable),
                 offsetof(PyCodeObject, co_code_adaptive),
                 /* PyCode_Type: \"code\", offsetof(PyCodeObject, co_code_adaptive), ... */
                 offsetof(PyCodeObject, co_code_adaptive),
                 sizeof(PyCodeObject), sizeof(_PyInterpreterFrame),
                 offsetof(_Py_DebugOffsets, cookie), offsetof(_Py_DebugOffsets, version),
                 offsetof(_Py_DebugOffsets, free_threaded),
                 offsetof(_Py_DebugOffsets, runtime_state.size),
                 offsetof(_Py_DebugOffsets, runtime_state.finalizing),
                 offsetof(_Py_DebugOffsets, thread_state.size),
                 offsetof(_Py_DebugOffsets, thread_state.current_frame),
                 offsetof(_Py_DebugOffsets, interpreter_frame.size),
                 offsetof(_Py_DebugOffsets, interpreter_frame.previous),
                 offsetof(_Py_DebugOffsets, interpreter_frame.executable),
                 offsetof(_Py_DebugOffsets, interpreter_frame.instr_ptr),
                 offsetof(_Py_DebugOffsets, interpreter_frame.owner),
                 offsetof(_Py_DebugOffsets, code_object.size),
                 offsetof(_Py_DebugOffsets, code_object.filename),
                 offsetof(_Py_DebugOffsets, code_object.name),
                 offsetof(_Py_DebugOffsets, code_object.qualname),
                 offsetof(_Py_DebugOffsets, code_object.linetable),
                 offsetof(_Py_DebugOffsets, code_object.firstlineno),
                 offsetof(_Py_DebugOffsets, code_object.co_code_adaptive),
                 offsetof(_Py_DebugOffsets, pyobject.size),
                 offsetof(_Py_DebugOffsets, pyobject.ob_type),
                 offsetof(_Py_DebugOffsets, bytes_object.size),
                 offsetof(_Py_DebugOffsets, bytes_object.ob_size),
                 offsetof(_Py_DebugOffsets, bytes_object.ob_sval),
                 offsetof(_Py_DebugOffsets, unicode_object.size),
                 offsetof(_Py_DebugOffsets, unicode_object.state),
                 offsetof(_Py_DebugOffsets, unicode_object.length),
                 offsetof(_Py_DebugOffsets, unicode_object.asciiobject_size),
                 sizeof(_Py_DebugOffsets)",
            ),
        );
        let l = &PY313;
        use debug313 as o;
        let mut want = common(l);
        want.extend([
            l.tstate_frame,
            l.frame_code,
            l.frame_previous,
            l.frame_instr,
            l.frame_owner,
            l.owned_by_generator as usize,
            l.owned_by_cstack as usize,
            l.code_qualname,
            l.code_firsttraceable,
            l.code_code_adaptive,
            l.code_basicsize,
            PY313_CODE_SIZE,
            PY313_FRAME_SIZE,
            o::COOKIE,
            o::VERSION,
            o::FREE_THREADED,
            o::RUNTIME_SIZE,
            o::RUNTIME_FINALIZING,
            o::TSTATE_SIZE,
            o::TSTATE_CURRENT_FRAME,
            o::FRAME_SIZE,
            o::FRAME_PREVIOUS,
            o::FRAME_EXECUTABLE,
            o::FRAME_INSTR_PTR,
            o::FRAME_OWNER,
            o::CODE_SIZE,
            o::CODE_FILENAME,
            o::CODE_NAME,
            o::CODE_QUALNAME,
            o::CODE_LINETABLE,
            o::CODE_FIRSTLINENO,
            o::CODE_ADAPTIVE,
            o::OBJECT_SIZE,
            o::OBJECT_TYPE,
            o::BYTES_SIZE,
            o::BYTES_OB_SIZE,
            o::BYTES_SVAL,
            o::UNICODE_SIZE,
            o::UNICODE_STATE,
            o::UNICODE_LENGTH,
            o::UNICODE_ASCII_SIZE,
            o::SIZE,
        ]);
        assert_eq!(got, want);
    }

    /// A `_Py_DebugOffsets` as 3.13 fills it (values from [`PY313`]).
    fn debug_blob() -> Vec<u8> {
        use debug313 as o;
        let mut d = vec![0u8; o::SIZE];
        let mut put = |at: usize, v: u64| d[at..at + 8].copy_from_slice(&v.to_le_bytes());
        let l = &PY313;
        for (at, v) in [
            (o::VERSION, 0x030d05f0),
            (o::RUNTIME_SIZE, 100_000),
            (o::RUNTIME_FINALIZING, l.runtime_finalizing as u64),
            (o::TSTATE_SIZE, 400),
            (o::TSTATE_CURRENT_FRAME, l.tstate_frame as u64),
            (o::FRAME_SIZE, PY313_FRAME_SIZE as u64),
            (o::FRAME_PREVIOUS, l.frame_previous as u64),
            (o::FRAME_EXECUTABLE, l.frame_code as u64),
            (o::FRAME_INSTR_PTR, l.frame_instr as u64),
            (o::FRAME_OWNER, l.frame_owner as u64),
            (o::CODE_SIZE, PY313_CODE_SIZE as u64),
            (o::CODE_FILENAME, l.code_filename as u64),
            (o::CODE_NAME, l.code_name as u64),
            (o::CODE_QUALNAME, l.code_qualname as u64),
            (o::CODE_LINETABLE, l.code_linetable as u64),
            (o::CODE_FIRSTLINENO, l.code_firstlineno as u64),
            (o::CODE_ADAPTIVE, l.code_code_adaptive as u64),
            (o::OBJECT_SIZE, 16),
            (o::OBJECT_TYPE, l.object_type as u64),
            (o::BYTES_SIZE, 33),
            (o::BYTES_OB_SIZE, l.bytes_size as u64),
            (o::BYTES_SVAL, l.bytes_sval as u64),
            (o::UNICODE_SIZE, 40),
            (o::UNICODE_STATE, l.unicode_state as u64),
            (o::UNICODE_LENGTH, l.unicode_length as u64),
            (o::UNICODE_ASCII_SIZE, l.unicode_ascii_size as u64),
        ] {
            put(at, v);
        }
        d[..8].copy_from_slice(b"xdebugpy");
        d
    }

    #[test]
    fn debug_offsets_give_the_verified_layout_and_refuse_what_they_cannot_vouch_for() {
        let d = debug_blob();
        assert_eq!(from_debug_offsets(&d, 0x030d05f0), Ok(PY313));
        // Another Py_Version, another minor version, no cookie, free-threaded, an offset out of
        // its struct, another code object size: refused.
        assert!(from_debug_offsets(&d, 0x030d04f0).is_err());
        let mut e = d.clone();
        e[8..16].copy_from_slice(&0x030e00f0u64.to_le_bytes());
        assert!(from_debug_offsets(&e, 0x030e00f0).is_err());
        let mut e = d.clone();
        e[0] = b'X';
        assert!(from_debug_offsets(&e, 0x030d05f0).is_err());
        let mut e = d.clone();
        e[debug313::FREE_THREADED] = 1;
        assert!(from_debug_offsets(&e, 0x030d05f0).is_err());
        let mut e = d.clone();
        e[debug313::FRAME_OWNER..debug313::FRAME_OWNER + 8].copy_from_slice(&80u64.to_le_bytes());
        assert!(from_debug_offsets(&e, 0x030d05f0).is_err());
        let mut e = d.clone();
        e[debug313::CODE_SIZE..debug313::CODE_SIZE + 8].copy_from_slice(&216u64.to_le_bytes());
        assert!(from_debug_offsets(&e, 0x030d05f0).is_err());
        assert!(from_debug_offsets(&d[..100], 0x030d05f0).is_err());
        // A field the interpreter places elsewhere is taken from it.
        let mut e = d.clone();
        e[debug313::TSTATE_CURRENT_FRAME..debug313::TSTATE_CURRENT_FRAME + 8]
            .copy_from_slice(&80u64.to_le_bytes());
        assert_eq!(from_debug_offsets(&e, 0x030d05f0).unwrap().tstate_frame, 80);
    }
}
