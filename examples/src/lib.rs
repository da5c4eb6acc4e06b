//! Shared pieces of the example binaries.
#![deny(missing_docs)]

/// Installs a log subscriber on stderr: warnings only by default; `-v` adds connection life
/// (connects, joins, leaves, reaps), `-vv` the adapter's debug lines, `-vvv` everything.
pub fn init_logging(verbosity: u8) {
    let level = match verbosity {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        2 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    tracing_subscriber::fmt().with_max_level(level).with_writer(std::io::stderr).with_target(false).init();
}

pub mod chat;
