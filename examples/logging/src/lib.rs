//! The log setup of the example binaries (`chat`, `echo-server`, `autobahn-client`), so that
//! their `-v` flags mean the same thing.
#![deny(missing_docs)]

use tracing::Level;

/// Installs a log subscriber on stderr: warnings only at 0; 1 (`-v`) adds connection life
/// (connects, joins, leaves, reaps), 2 the adapter's debug lines, 3 and more everything.
pub fn init(verbosity: u8) {
    let level = [Level::WARN, Level::INFO, Level::DEBUG, Level::TRACE][usize::from(verbosity.min(3))];
    tracing_subscriber::fmt().with_max_level(level).with_writer(std::io::stderr).with_target(false).init();
}
