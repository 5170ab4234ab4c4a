//! `bursar-audit`: verifies an exported audit log offline.
//!
//! ```text
//! bursar-audit verify FILE [--checkpoint CHECKPOINT.json]
//! ```
//!
//! `FILE` is what `AuditLog::export` wrote (JSON Lines). With
//! `--checkpoint`, the file must also reach the checkpoint's head with the
//! same hash; the checkpoint's signature is checked with the keys in the
//! `BURSAR_AUDIT_KEYS` environment variable (`version:hex,...`, as
//! `StaticKeyring::from_env` reads them).
//!
//! Exit status: 0 when the file holds, 1 when it does not (the first broken
//! entry, or the checkpoint's verdict, is printed), 2 for a usage or input
//! error.

use std::io::BufReader;
use std::process::ExitCode;

use bursar::audit::{Checkpoint, verify_export};
use bursar::keys::StaticKeyring;

/// The environment variable holding the checkpoint keys.
const KEYS_VAR: &str = "BURSAR_AUDIT_KEYS";

fn usage() -> ExitCode {
    eprintln!("usage: bursar-audit verify FILE [--checkpoint CHECKPOINT.json]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (file, checkpoint) = match args.as_slice() {
        [cmd, file] if cmd == "verify" => (file, None),
        [cmd, file, flag, c] if cmd == "verify" && flag == "--checkpoint" => (file, Some(c)),
        _ => return usage(),
    };
    match run(file, checkpoint.map(String::as_str)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(message) => {
            eprintln!("bursar-audit: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(file: &str, checkpoint: Option<&str>) -> Result<bool, String> {
    let input = std::fs::File::open(file).map_err(|e| format!("cannot open {file}: {e}"))?;
    let loaded = match checkpoint {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
            let c: Checkpoint = serde_json::from_str(&text)
                .map_err(|e| format!("{path} is not a checkpoint: {e}"))?;
            let keys = StaticKeyring::from_env(KEYS_VAR).map_err(|e| e.to_string())?;
            Some((c, keys))
        }
        None => None,
    };
    let report = verify_export(
        BufReader::new(input),
        loaded
            .as_ref()
            .map(|(c, k)| (c, k as &dyn bursar::keys::KeyProvider)),
    )
    .map_err(|e| e.to_string())?;
    match (
        report.first_broken_seq,
        &report.checkpoint,
        report.seq_range,
    ) {
        (Some(seq), _, _) => println!("BROKEN at seq {seq} ({} lines read)", report.entries),
        (None, Some(verdict), _) if !verdict.holds() => println!("CHECKPOINT FAILS: {verdict:?}"),
        (None, _, Some((first, last))) => {
            println!("OK: {} entries, seq {first} to {last}", report.entries);
        }
        (None, _, None) => println!("OK: empty"),
    }
    Ok(report.is_intact())
}
