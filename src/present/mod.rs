//! A site's stack as people read it: symbolized and merged ([`resolve`]), in the chosen
//! [`view`], with the frames that fold away by default and short names ([`fold`]). Shared by the
//! report and every export.

pub mod fold;
pub mod resolve;
pub mod view;
