//! Protocol constants (frame types, reply codes, class ids), generated from the spec.

pub use crate::generated::constants::*;
