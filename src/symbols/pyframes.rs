//! Python frames: a code object's name and file, and the line of the instruction being run,
//! decoded from the code object's line table, whose format depends on the version that wrote it
//! (`PyCode::py_version`): `co_lnotab` in 3.8 and 3.9 (Objects/lnotab_notes.txt in the 3.9 tree),
//! 3.10's `co_linetable` (PEP 626; Objects/lnotab_notes.txt in the 3.10 tree), and from 3.11 on
//! the location table (Objects/locations.md).

use memshim_format::{PyCode, PyFrame};

use crate::symbols::frames::{Frame, Kind};

/// The frame a Python sample shows; an unknown code object keeps its id.
pub fn frame(code: Option<&PyCode>, f: &PyFrame) -> Frame {
    match code {
        Some(c) => Frame {
            function: Some(if c.qualname.is_empty() {
                c.name.clone()
            } else {
                c.qualname.clone()
            }),
            file: Some(c.filename.clone()),
            line: line_of(c, f.instr).or(Some(c.first_line)),
            module: None,
            kind: Kind::Python,
            address: None,
        },
        None => Frame {
            function: None,
            file: None,
            line: None,
            module: None,
            kind: Kind::Python,
            address: Some(format!("code@{:#x}", f.code)),
        },
    }
}

/// The source line of the code unit at `instr`, when the table format is known. None for a frame
/// that has not started ([`PyFrame::NOT_STARTED`]): it is shown at its first line.
pub fn line_of(c: &PyCode, instr: u32) -> Option<u32> {
    if instr == PyFrame::NOT_STARTED {
        return None;
    }
    if c.py_version < (3, 10) {
        return lnotab_line(c, instr);
    }
    if c.py_version < (3, 11) {
        return linetable310_line(c, instr);
    }
    let t = &c.linetable;
    let mut i = 0;
    let mut line = c.first_line as i64;
    let mut unit: u64 = 0;
    while i < t.len() {
        let first = t[i];
        i += 1;
        let code = (first >> 3) & 15;
        let len = (first & 7) as u64 + 1;
        let mut here = Some(line);
        match code {
            0..=9 => i += 1,
            10..=12 => {
                line += (code - 10) as i64;
                here = Some(line);
                i += 2;
            }
            13 => {
                line += svarint(t, &mut i)?;
                here = Some(line);
            }
            14 => {
                line += svarint(t, &mut i)?;
                here = Some(line);
                for _ in 0..3 {
                    varint(t, &mut i)?;
                }
            }
            _ => here = None,
        }
        if (instr as u64) < unit + len {
            return here.and_then(|l| u32::try_from(l).ok());
        }
        unit += len;
    }
    None
}

/// The line of code unit `instr` from a 3.9 `co_lnotab`: pairs of (bytecode offset increment,
/// signed line increment), as 3.9's `PyCode_Addr2Line` walks them (offsets in bytes; a code unit
/// is 2 bytes).
fn lnotab_line(c: &PyCode, instr: u32) -> Option<u32> {
    let target = instr as u64 * 2;
    let mut line = c.first_line as i64;
    let mut addr: u64 = 0;
    for pair in c.linetable.chunks_exact(2) {
        addr += pair[0] as u64;
        if addr > target {
            break;
        }
        line += pair[1] as i8 as i64;
    }
    u32::try_from(line).ok()
}

/// The line of code unit `instr` from a 3.10 `co_linetable`: pairs of (bytecode length in bytes,
/// signed line increment, -128 for "no line"), each pair the next range of bytecode, as 3.10's
/// `PyCode_Addr2Line` walks them. Ranges of length 0 only move the line.
fn linetable310_line(c: &PyCode, instr: u32) -> Option<u32> {
    let target = instr as u64 * 2;
    let mut line = c.first_line as i64;
    let mut end: u64 = 0;
    for pair in c.linetable.chunks_exact(2) {
        end += pair[0] as u64;
        let delta = pair[1] as i8;
        let here = if delta == -128 {
            None
        } else {
            line += delta as i64;
            Some(line)
        };
        // Ranges before were passed (target >= their end), so this one starts at or before it.
        if target < end {
            return here.and_then(|l| u32::try_from(l).ok());
        }
    }
    None
}

fn varint(t: &[u8], i: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    let mut shift = 0;
    loop {
        let b = *t.get(*i)?;
        *i += 1;
        v |= ((b & 63) as u64) << shift;
        shift += 6;
        if b & 64 == 0 || shift > 60 {
            return Some(v);
        }
    }
}

fn svarint(t: &[u8], i: &mut usize) -> Option<i64> {
    let v = varint(t, i)?;
    Some(if v & 1 == 1 {
        -((v >> 1) as i64)
    } else {
        (v >> 1) as i64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(linetable: Vec<u8>) -> PyCode {
        PyCode {
            id: 1,
            name: "f".into(),
            qualname: "C.f".into(),
            filename: "app.py".into(),
            first_line: 10,
            linetable,
            py_version: (3, 11),
        }
    }

    #[test]
    fn decodes_a_39_lnotab() {
        // From line 10: +8 bytes +1 line, +4 bytes +2 lines then +0 bytes -1 line (a step back
        // of its own pair), +6 bytes +300 lines (three pairs: a delta over 127 is split).
        let mut c = code(vec![8, 1, 4, 2, 0, 0xff, 6, 100, 0, 100, 0, 100]);
        c.py_version = (3, 9);
        let at = |unit: u32| line_of(&c, unit);
        assert_eq!(at(0), Some(10)); // bytes 0..8
        assert_eq!(at(3), Some(10));
        assert_eq!(at(4), Some(11)); // bytes 8..12
        assert_eq!(at(5), Some(11));
        assert_eq!(at(6), Some(12)); // bytes 12..18: +2 then -1
        assert_eq!(at(8), Some(12));
        assert_eq!(at(9), Some(312)); // bytes 18..: +300
        assert_eq!(at(1000), Some(312));
    }

    #[test]
    fn a_frame_not_started_is_at_its_first_line() {
        let mut c = code(vec![8, 1]);
        c.py_version = (3, 9);
        let f = PyFrame {
            code: 1,
            instr: PyFrame::NOT_STARTED,
            entry: true,
        };
        assert_eq!(frame(Some(&c), &f).line, Some(10));
        assert_eq!(line_of(&c, 0), Some(10));
        assert_eq!(line_of(&c, 4), Some(11));
    }

    #[test]
    fn decodes_a_310_linetable() {
        // From line 10: 4 bytes +0 (line 10), 0 bytes +3 (a move only), 4 bytes +0 (line 13),
        // 2 bytes with no line (-128), 6 bytes -2 (line 11).
        let mut c = code(vec![4, 0, 0, 3, 4, 0, 2, 0x80, 6, 0xfe]);
        c.py_version = (3, 10);
        let at = |unit: u32| line_of(&c, unit);
        assert_eq!(at(0), Some(10));
        assert_eq!(at(1), Some(10));
        assert_eq!(at(2), Some(13));
        assert_eq!(at(3), Some(13));
        assert_eq!(at(4), None);
        assert_eq!(at(5), Some(11));
        assert_eq!(at(7), Some(11));
        assert_eq!(at(8), None, "past the table");
    }

    #[test]
    fn decodes_one_line_short_and_long_forms() {
        // 2 units on line 10 (one-line form, delta 0), 1 unit at +2 (one-line form, delta 2),
        // 3 units with no column info at -1 (code 13, svarint 3 = -1), then a long form +5.
        let t = vec![
            0x80 | (10 << 3) | 1,
            0,
            0,
            0x80 | (12 << 3),
            0,
            0,
            0x80 | (13 << 3) | 2,
            3,
            0x80 | (14 << 3),
            10,
            0,
            0,
            0,
        ];
        let c = code(t);
        assert_eq!(line_of(&c, 0), Some(10));
        assert_eq!(line_of(&c, 1), Some(10));
        assert_eq!(line_of(&c, 2), Some(12));
        assert_eq!(line_of(&c, 3), Some(11));
        assert_eq!(line_of(&c, 5), Some(11));
        assert_eq!(line_of(&c, 6), Some(16));
        assert_eq!(line_of(&c, 7), None);
        assert_eq!(
            frame(
                Some(&c),
                &PyFrame {
                    code: 1,
                    instr: 2,
                    entry: true
                }
            )
            .line,
            Some(12)
        );
    }

    /// Prints, for every code object of a few stdlib modules, its first line and line table
    /// (co_lnotab before 3.10, co_linetable after) and the line of each code unit as the
    /// interpreter itself tells it (dis.findlinestarts in 3.9, co_lines() from 3.10).
    const LINES_PY: &str = r#"
import dis, sys
def walk(co):
    yield co
    for c in co.co_consts:
        if hasattr(c, "co_code"):
            yield from walk(c)
for name in ["dis", "inspect", "threading", "argparse", "collections", "json.decoder", "typing"]:
    m = __import__(name, fromlist=["_"])
    with open(m.__file__) as f:
        top = compile(f.read(), m.__file__, "exec")
    for co in walk(top):
        units = len(co.co_code) // 2
        lines = [None] * units
        if sys.version_info < (3, 10):
            table = co.co_lnotab
            starts = sorted(dis.findlinestarts(co))
            for i, (addr, line) in enumerate(starts):
                end = starts[i + 1][0] if i + 1 < len(starts) else 2 * units
                for u in range(addr // 2, end // 2):
                    lines[u] = line
        else:
            table = co.co_linetable
            for start, end, line in co.co_lines():
                for u in range(start // 2, end // 2):
                    lines[u] = line
        print("C", co.co_firstlineno, table.hex() or "-")
        print("L", *["-" if l is None else l for l in lines])
"#;

    /// Decodes every line table `cmd` (running [`LINES_PY`]) prints and compares each code
    /// unit's line with the interpreter's own.
    fn matches_the_interpreter(version: (u8, u8), mut cmd: std::process::Command) {
        let out = cmd.output().expect("the interpreter runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let mut lines = text.lines();
        let (mut codes, mut units) = (0, 0);
        while let (Some(c), Some(l)) = (lines.next(), lines.next()) {
            let c: Vec<&str> = c.split(' ').collect();
            let hex = if c[2] == "-" { "" } else { c[2] };
            let table = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            let mut code = code(table);
            code.first_line = c[1].parse().unwrap();
            code.py_version = version;
            for (u, want) in l.split(' ').skip(1).enumerate() {
                let want = if want == "-" {
                    None
                } else {
                    Some(want.parse().unwrap())
                };
                assert_eq!(
                    line_of(&code, u as u32),
                    want,
                    "{version:?}: unit {u} of a code object at line {}",
                    code.first_line
                );
                units += 1;
            }
            codes += 1;
        }
        assert!(
            codes > 500 && units > 20_000,
            "{version:?}: only {codes} code objects, {units} units"
        );
    }

    #[test]
    fn lnotab_lines_match_cpython_39() {
        let root = memshim_test_pythons::or_skip!(memshim_test_pythons::provisioned_or_skip("3.9"));
        let mut cmd = std::process::Command::new(root.join("usr/bin/python3.9"));
        cmd.env("PYTHONHOME", root.join("usr"))
            .args(["-c", LINES_PY]);
        matches_the_interpreter((3, 9), cmd);
    }

    #[test]
    fn linetable_lines_match_cpython_311() {
        let mut cmd = std::process::Command::new("python3");
        cmd.args(["-c", LINES_PY]);
        matches_the_interpreter((3, 11), cmd);
    }

    /// 3.8 writes 3.9's `co_lnotab` (pyenv's 3.8).
    #[test]
    fn lnotab_lines_match_cpython_38() {
        let py = memshim_test_pythons::or_skip!(memshim_test_pythons::pyenv_or_skip("3.8"));
        let mut cmd = std::process::Command::new(py);
        cmd.args(["-c", LINES_PY]);
        matches_the_interpreter((3, 8), cmd);
    }

    /// 3.10's own format (pyenv's 3.10).
    #[test]
    fn linetable_lines_match_cpython_310() {
        let py = memshim_test_pythons::or_skip!(memshim_test_pythons::pyenv_or_skip("3.10"));
        let mut cmd = std::process::Command::new(py);
        cmd.args(["-c", LINES_PY]);
        matches_the_interpreter((3, 10), cmd);
    }

    /// 3.12 keeps 3.11's table format (pyenv's 3.12).
    #[test]
    fn linetable_lines_match_cpython_312() {
        let py = memshim_test_pythons::or_skip!(memshim_test_pythons::pyenv_or_skip("3.12"));
        let mut cmd = std::process::Command::new(py);
        cmd.args(["-c", LINES_PY]);
        matches_the_interpreter((3, 12), cmd);
    }

    /// 3.13 keeps 3.11's table format (run in its Debian 13 tree, as tests/py_versions.rs does).
    #[test]
    fn linetable_lines_match_cpython_313() {
        let root =
            memshim_test_pythons::or_skip!(memshim_test_pythons::provisioned_or_skip("3.13"));
        let mut cmd = std::process::Command::new("chroot");
        cmd.arg(&root).args([
            "env",
            "-i",
            "PATH=/usr/bin:/bin",
            "python3.13",
            "-c",
            LINES_PY,
        ]);
        matches_the_interpreter((3, 13), cmd);
    }
}
