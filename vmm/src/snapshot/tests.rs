//! Format checks of the state file: the version and the host CPU model are checked before
//! the rest is parsed, each with an error that says what to do.

use super::*;

fn header(version: u32, host: &CpuModel) -> String {
    serde_json::json!({
        "format": FORMAT_NAME,
        "version": version,
        "arch": std::env::consts::ARCH,
        "host_cpu": host,
        "a_field_of_another_version": true,
    })
    .to_string()
}

fn model(signature: u32) -> CpuModel {
    CpuModel {
        vendor: "GenuineIntel".into(),
        signature,
        brand: "Test CPU".into(),
    }
}

#[test]
fn another_version_is_refused_by_its_version() {
    let path = Path::new("/snap/state.json");
    let err = SnapshotState::parse(path, &header(FORMAT_VERSION + 1, &model(1)), &model(1))
        .expect_err("newer version");
    assert!(matches!(err, SnapshotError::Version { found } if found == FORMAT_VERSION + 1));
    assert!(err.to_string().contains("take the snapshot again"), "{err}");
}

#[test]
fn another_cpu_model_is_refused_naming_both() {
    let path = Path::new("/snap/state.json");
    let err = SnapshotState::parse(path, &header(FORMAT_VERSION, &model(0x906ea)), &model(1))
        .expect_err("other CPU");
    let msg = err.to_string();
    assert!(matches!(err, SnapshotError::CpuModel { .. }));
    assert!(msg.contains("0x906ea") && msg.contains("0x1"), "{msg}");
}

#[test]
fn other_files_are_not_snapshots() {
    let path = Path::new("/snap/state.json");
    for text in [
        "{}",
        "[1,2]",
        r#"{"format":"qemu","version":1,"arch":"x86_64","host_cpu":{"vendor":"","signature":0,"brand":""}}"#,
    ] {
        let err = SnapshotState::parse(path, text, &model(1)).expect_err(text);
        assert!(
            matches!(err, SnapshotError::NotASnapshot(..)),
            "{text}: {err}"
        );
    }
}

#[test]
fn the_right_header_reaches_the_full_parse() {
    let path = Path::new("/snap/state.json");
    let err = SnapshotState::parse(path, &header(FORMAT_VERSION, &model(1)), &model(1))
        .expect_err("header only");
    assert!(matches!(err, SnapshotError::Parse(..)), "{err}");
}
