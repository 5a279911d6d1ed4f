//! `contrib/heterogen.service` as systemd reads it: `systemd-analyze verify` finds nothing wrong
//! (with `ExecStart` pointed at the binary under test), and `systemd-analyze security` rates its
//! hardening at an exposure of 2.0 or less ("OK"; the unit scores 1.2 when written).

use std::process::Command;

fn unit_for_this_build(dir: &std::path::Path) -> std::path::PathBuf {
    let unit =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/heterogen.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/heterogen serve"),
        "{unit}"
    );
    let path = dir.join("heterogen.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/heterogen", env!("CARGO_BIN_EXE_heterogen")),
    )
    .unwrap();
    path
}

#[test]
fn the_unit_verifies_and_is_rated_ok() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_this_build(dir.path());
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze is needed (Debian: systemd)");
    let complaints = String::from_utf8_lossy(&verify.stderr);
    assert!(
        verify.status.success() && complaints.trim().is_empty(),
        "{complaints}"
    );

    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=20"])
        .arg(&unit)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&security.stdout);
    assert!(security.status.success(), "exposure above 2.0:\n{report}");
    assert!(
        report.contains("Overall exposure level for heterogen.service"),
        "{report}"
    );
}
