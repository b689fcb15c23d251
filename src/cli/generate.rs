//! `certorch generate`: man pages and shell completions, made from the clap definitions so
//! they cannot drift from `--help` (a test compares them with the committed `man/` and
//! `completions/`).

use std::fs;
use std::io;
use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;

/// Writes `certorch.1`, one `certorch-<sub>.1` per subcommand and `certorch-inventory.5`
/// into `dir`.
pub fn man_pages(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let cmd = Cli::command();
    let mut out = Vec::new();
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    man.render_subcommands_section(&mut out)?;
    out.extend_from_slice(EXIT_STATUS_ROFF.as_bytes());
    man.render_version_section(&mut out)?;
    fs::write(dir.join("certorch.1"), out)?;
    fs::write(dir.join("certorch-inventory.5"), super::inventory_man::PAGE)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("certorch-{}", sub.get_name());
        let sub = sub.clone().bin_name(format!("certorch {}", sub.get_name()));
        let mut out = Vec::new();
        clap_mangen::Man::new(sub)
            .title(name.clone())
            .render(&mut out)?;
        fs::write(dir.join(format!("{name}.1")), out)?;
    }
    Ok(())
}

/// Writes bash, zsh and fish completions into `dir`.
pub fn completions(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut cmd = Cli::command();
        clap_complete::generate_to(shell, &mut cmd, "certorch", dir)?;
    }
    Ok(())
}

const EXIT_STATUS_ROFF: &str = r#".SH "SHARED STATE"
With \fB\-\-state postgresql://\fR\fI...\fR (or \fBstate:\fR in the inventory) two or more
bastions share one PostgreSQL database and run the same cron line. A run takes a session\-level
advisory lock on its database connection before it touches anything and holds it to the end:
at most one run works at a time, and another exits 3 at once. When the running bastion dies, its
connection closes and PostgreSQL frees the lock; the next run on any bastion takes it, withdraws
the TXT records, resumes the orders and deploys that the dead one left (as after a killed run on
one bastion). A bastion whose connection is cut without a close (power loss, network split)
holds the lock until the server drops that connection: set the server's
\fBtcp_keepalives_idle\fR low. If certorch loses its connection mid\-run, its writes fail and the
run stops; what it had not recorded is resumed by the next run. A dry run uses the schema
\fBcertorch_dry_run\fR and a lock of its own.
.SH "EXIT STATUS"
.TP
\fB0\fR
Every selected certificate is in order, or deferred by the CA's rate limits to a later run.
.TP
\fB1\fR
At least one certificate could not be issued or deployed; the others were still done. Also when
the state directory cannot be used (read-only, full, or its database damaged): then nothing was
ordered, and the error names the file and what to do.
.TP
\fB2\fR
The inventory or the command line is wrong; nothing was touched.
.TP
\fB3\fR
Another run holds the run lock: the state directory's lock file, or on PostgreSQL the advisory
lock.
"#;

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails when `man/` or `completions/` no longer match the CLI: regenerate with
    /// `cargo run -- generate man man && cargo run -- generate completions completions`.
    #[test]
    fn committed_docs_are_current() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let tmp = tempfile::tempdir().unwrap();
        man_pages(&tmp.path().join("man")).unwrap();
        completions(&tmp.path().join("completions")).unwrap();
        for sub in ["man", "completions"] {
            let fresh = tmp.path().join(sub);
            let mut names: Vec<_> = fs::read_dir(&fresh)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            let committed: Vec<_> = fs::read_dir(root.join(sub))
                .map(|d| d.map(|e| e.unwrap().file_name()).collect())
                .unwrap_or_default();
            for name in &names {
                let want = fs::read(fresh.join(name)).unwrap();
                let have = fs::read(root.join(sub).join(name)).unwrap_or_default();
                assert!(
                    want == have,
                    "{sub}/{} is stale: run `cargo run -- generate {sub} {sub}`",
                    name.to_string_lossy()
                );
            }
            assert_eq!(
                committed.len(),
                names.len(),
                "{sub}/ has files the CLI no longer makes"
            );
        }
    }
}
