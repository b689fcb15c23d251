//! A non-root login that becomes root for certorch's steps: every command goes through
//! `sudo -n --` (or `doas -n --`). `-n` makes a missing sudoers rule fail at once instead of
//! waiting for a password nobody will type.

use std::sync::Arc;

use super::{BoxFuture, Error, Output, Transport};
use crate::host::sh::Cmd;
use crate::inventory::Become;

/// Runs every command of `inner` through the `become` method's prefix.
pub struct Elevated {
    inner: Arc<dyn Transport>,
    how: Become,
}

impl Elevated {
    pub fn new(inner: Arc<dyn Transport>, how: Become) -> Elevated {
        Elevated { inner, how }
    }
}

impl Transport for Elevated {
    fn run<'a>(
        &'a self,
        cmd: &'a Cmd,
        stdin: Option<&'a [u8]>,
    ) -> BoxFuture<'a, Result<Output, Error>> {
        Box::pin(async move {
            let wrapped = cmd.prefixed(self.how.prefix());
            let out = self.inner.run(&wrapped, stdin).await?;
            self.refused(cmd.label(), out)
        })
    }

    fn elevation(&self) -> &'static [&'static str] {
        self.how.prefix()
    }

    fn run_as_login<'a>(
        &'a self,
        cmd: &'a Cmd,
        stdin: Option<&'a [u8]>,
    ) -> BoxFuture<'a, Result<Output, Error>> {
        self.inner.run(cmd, stdin)
    }

    fn refused(&self, label: &str, out: Output) -> Result<Output, Error> {
        // sudo's own refusals exit 1 with a recognisable line; make the next step clear.
        if !out.success()
            && (out.stderr.contains("a password is required")
                || out.stderr.contains("is not allowed to execute")
                || out.stderr.contains("is not in the sudoers file")
                || out.stderr.contains("doas: Operation not permitted"))
        {
            return Err(Error::Become {
                how: self.how.prefix()[0],
                label: label.to_string(),
                reason: out.stderr_tail(),
            });
        }
        Ok(out)
    }
}
