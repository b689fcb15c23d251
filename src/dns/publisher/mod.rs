//! Publishers put the run's TXT records where the CA will look and take them away again. Each
//! takes the whole run's batch at once: a publisher that talks to an API makes one call per
//! zone, not one per record.

pub mod exec;
pub mod rfc2136;
pub mod zonefile;

use std::future::Future;
use std::pin::Pin;

use super::Error;
use super::txt::TxtSet;

/// A boxed future, so publishers can be chosen at run time.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Adds and removes exact TXT values; values others put at the same names are left alone.
pub trait Publisher: Send + Sync {
    /// Adds every record of `set`.
    fn publish<'a>(&'a self, set: &'a TxtSet) -> BoxFuture<'a, Result<(), Error>>;
    /// Removes every record of `set`; removing one that is not there is not an error.
    fn withdraw<'a>(&'a self, set: &'a TxtSet) -> BoxFuture<'a, Result<(), Error>>;
}
