//! What kind of capture a header says it is: events (the default) or snapshots
//! (`MEMSHIM_MODE=snapshots`), from its named extra values.

use memshim_format::snapshot::EXTRA_CAPTURE;
use memshim_format::Header;

/// A header's named extra value.
pub fn extra<'a>(h: &'a Header, name: &str) -> Option<&'a str> {
    h.extra
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// True for a snapshot capture (`capture=snapshots`).
pub fn is_snapshots(h: &Header) -> bool {
    extra(h, EXTRA_CAPTURE) == Some("snapshots")
}
