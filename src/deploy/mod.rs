//! Putting a certificate into service without leaving the service broken: the files are
//! committed, the service's configuration is checked, it is reloaded, and what it serves is
//! verified; when check, reload or verify fails, the previous files come back and the service
//! is reloaded with them.

pub mod verify;
