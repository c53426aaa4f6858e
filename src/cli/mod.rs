//! One module per subcommand; each parses its arguments and calls the library.

pub mod args;
pub mod ascent;
pub mod bench;
pub mod dream;
pub mod eval;
pub mod export;
pub mod predict;
pub mod serve;
pub mod style;
pub mod style_realtime;
pub mod summary;
pub mod train;
pub mod viz;
pub mod weights;
