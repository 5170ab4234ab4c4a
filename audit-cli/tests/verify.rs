//! An exported audit log verifies offline; one changed byte, a dropped tail
//! or a wrong checkpoint key makes the verifier fail.

use std::process::Command;

use bursar::audit::{AuditEntry, AuditLogRepository};
use bursar::keys::StaticKeyring;
use bursar::store::{NewTenant, TenantRepository};

const KEY_HEX: &str = "0707070707070707070707070707070707070707070707070707070707070707";

async fn export(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let store = bursar::Store::connect("sqlite::memory:").await.unwrap();
    let t = store
        .tenants()
        .create(NewTenant::new("Acme", "acme"))
        .await
        .unwrap();
    let acme = store.tenant(t.id);
    for i in 0..5 {
        acme.audit_log()
            .record(AuditEntry::new("login", "user").message(format!("entry number {i}")))
            .await
            .unwrap();
    }
    let keys = StaticKeyring::new(1, [7; 32]);
    let checkpoint = acme.audit_log().checkpoint(&keys).await.unwrap();
    let file = dir.join("audit.jsonl");
    let mut out = Vec::new();
    assert_eq!(acme.audit_log().export(1, None, &mut out).await.unwrap(), 5);
    std::fs::write(&file, out).unwrap();
    let cp = dir.join("checkpoint.json");
    std::fs::write(&cp, serde_json::to_string(&checkpoint).unwrap()).unwrap();
    (file, cp)
}

fn verify(file: &std::path::Path, checkpoint: Option<&std::path::Path>, keys: &str) -> i32 {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bursar-audit"));
    cmd.arg("verify").arg(file).env("BURSAR_AUDIT_KEYS", keys);
    if let Some(c) = checkpoint {
        cmd.arg("--checkpoint").arg(c);
    }
    cmd.status().unwrap().code().unwrap()
}

#[tokio::test]
async fn an_export_verifies_and_any_changed_byte_or_dropped_tail_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (file, cp) = export(dir.path()).await;
    let keys = format!("1:{KEY_HEX}");
    assert_eq!(verify(&file, None, &keys), 0);
    assert_eq!(verify(&file, Some(&cp), &keys), 0);

    let original = std::fs::read(&file).unwrap();
    // One byte changed inside a message.
    let mut changed = original.clone();
    let at = changed
        .windows(b"number 2".len())
        .position(|w| w == b"number 2")
        .unwrap()
        + b"number ".len();
    changed[at] = b'9';
    let bad = dir.path().join("changed.jsonl");
    std::fs::write(&bad, &changed).unwrap();
    assert_eq!(verify(&bad, None, &keys), 1);
    // One byte changed in any hashed field, or in the JSON itself, fails
    // too. (The row id is a storage key, not part of the hashed entry.)
    let text = String::from_utf8(original.clone()).unwrap();
    let third_line = text.lines().take(2).map(|l| l.len() + 1).sum::<usize>();
    let in_third =
        |needle: &str| third_line + text[third_line..].find(needle).unwrap() + needle.len();
    for at in [
        0,
        in_third("\"action\":\""),
        in_third("\"seq\":"),
        in_third("\"hash\":\"") + 5,
        in_third("\"prev_hash\":\"") + 5,
        in_third("\"created_at\":\"") + 3,
        original.len() - 3,
    ] {
        let mut changed = original.clone();
        changed[at] ^= 0x01;
        std::fs::write(&bad, &changed).unwrap();
        assert_eq!(verify(&bad, None, &keys), 1, "byte {at}");
    }
    // The last two lines dropped: the chain holds, the checkpoint does not.
    let text = String::from_utf8(original).unwrap();
    let short: Vec<&str> = text.lines().take(3).collect();
    std::fs::write(&bad, short.join("\n")).unwrap();
    assert_eq!(verify(&bad, None, &keys), 0);
    assert_eq!(verify(&bad, Some(&cp), &keys), 1);
    // A checkpoint checked with the wrong key is an error, not a pass.
    let wrong = format!("1:{}", "08".repeat(32));
    assert_eq!(verify(&file, Some(&cp), &wrong), 2);
    // Usage.
    let status = Command::new(env!("CARGO_BIN_EXE_bursar-audit"))
        .arg("check")
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2));
}
