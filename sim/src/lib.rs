//! # idempo-sim: see Kafka's idempotence work, and fail without it
//!
//! The simulator and study tools of idempo. They drive the same synchronous broker and
//! producer cores that a real deployment would, with no I/O of their own, so every run is
//! reproducible from its inputs.
//!
//! ## Layout
//! - [`script`]: the `explain` script language (one broker operation a line).
//! - [`explain`]: runs a script against a fresh broker and explains each decision.

pub mod explain;
pub mod script;
