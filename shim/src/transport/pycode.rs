//! The blob a code object's names travel in, from the Python walker (`stacks::python`'s
//! `send_code`, which writes it into the arena) to the writer (which decodes it here):
//!
//! ```text
//! id u64 | first_line u32 | major u8 | minor u8 | (len u32, UTF-8)x3: name, qualname, filename
//! | len u32, line table bytes                                     (all little-endian)
//! ```

/// Decodes a blob laid out as above.
pub fn decode(b: &[u8]) -> Option<memshim_format::PyCode> {
    let mut at = 0;
    let mut take = |n: usize| {
        let s = b.get(at..at + n)?;
        at += n;
        Some(s)
    };
    let id = u64::from_le_bytes(take(8)?.try_into().ok()?);
    let first_line = u32::from_le_bytes(take(4)?.try_into().ok()?);
    let v = take(2)?;
    let py_version = (v[0], v[1]);
    let mut text = || -> Option<String> {
        let n = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
        Some(String::from_utf8_lossy(take(n)?).into_owned())
    };
    let (name, qualname, filename) = (text()?, text()?, text()?);
    let n = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
    let linetable = take(n)?.to_vec();
    Some(memshim_format::PyCode {
        id,
        name,
        qualname,
        filename,
        first_line,
        linetable,
        py_version,
    })
}
