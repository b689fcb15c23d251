//! One printer for every command: `--json` prints the command's result type as one document on
//! stdout, text asks the same value to render itself (uv's `Printer`). A command builds its
//! result once and never writes two parallel branches of output.

use std::io::{self, Write};

use serde::Serialize;

/// A command's result, printable as text.
pub trait Render {
    /// The human form: results on `out`, problems (warnings, errors, hints) on `err`.
    fn text(&self, out: &mut dyn Write, err: &mut dyn Write) -> io::Result<()>;
}

/// Prints results as JSON or text.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub json: bool,
}

impl Printer {
    /// Prints `doc` on stdout (and its problems on stderr, for text). A failed write (stdout
    /// closed, disk full) is returned: the caller turns it into the exit code.
    pub fn print<T: Serialize + Render>(&self, doc: &T) -> io::Result<()> {
        let mut out = io::stdout().lock();
        if self.json {
            serde_json::to_writer_pretty(&mut out, doc)?;
            writeln!(out)?;
            return out.flush();
        }
        let mut err = io::stderr().lock();
        doc.text(&mut out, &mut err)?;
        out.flush()
    }
}

/// Reports a failed write of the output on stderr; returns the exit code of a failure.
pub fn output_failed(e: &io::Error) -> u8 {
    // The last word: if stderr is gone as well, the exit code still tells.
    writeln!(io::stderr(), "error: cannot write the output: {e}").ok();
    crate::cli::exit::SOME_FAILED
}
