//! Hostile input found in issue 14: a zip bomb that understates its sizes. It is
//! refused when it arrives, with a message that says what to fix.

use flint_integration::*;
use flint_proto::v1::*;
use std::io::Write;
use tonic::Code;

/// A zip of `n` deflated zeros named bomb.bin whose headers claim 1 KB unpacked.
fn understated_bomb(n: usize) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    w.start_file("app.py", opts).unwrap();
    w.write_all(b"def handler(e, c):\n    return 1\n").unwrap();
    w.start_file("bomb.bin", opts).unwrap();
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..n >> 20 {
        w.write_all(&chunk).unwrap();
    }
    let mut z = w.finish().unwrap().into_inner();
    // Patch the uncompressed size of bomb.bin's local header (offset 22) and
    // central directory entry (offset 24); the CRC stays right.
    let claim = 1024u32.to_le_bytes();
    let find = |z: &[u8], sig: &[u8], name: &[u8], name_at: usize| {
        (0..z.len() - name_at - name.len())
            .find(|&i| &z[i..i + 4] == sig && &z[i + name_at..i + name_at + name.len()] == name)
            .expect("header of bomb.bin")
    };
    let local = find(&z, b"PK\x03\x04", b"bomb.bin", 30);
    z[local + 22..local + 26].copy_from_slice(&claim);
    let central = find(&z, b"PK\x01\x02", b"bomb.bin", 46);
    z[central + 24..central + 28].copy_from_slice(&claim);
    z
}

#[tokio::test]
async fn a_zip_bomb_understating_its_size_is_refused_at_create() {
    let agent = TestAgent::start().await;
    let mut c = agent.client().await;
    let mut req = python_function("bomb", "");
    // 300 MB of zeros (over the 250 MB unzipped limit) in a ~300 KB zip.
    req.code_zip = understated_bomb(300 << 20);
    assert!(req.code_zip.len() < 1 << 20);
    let err = c
        .functions
        .create_function(req)
        .await
        .expect_err("a bomb must be refused at create");
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    assert!(
        err.message().contains("bomb.bin") && err.message().contains("declares 1024 bytes"),
        "{}",
        err.message()
    );
    // The same refusal for update-code, and nothing was stored.
    c.functions
        .create_function(python_function(
            "fine",
            "def handler(e, c):\n    return 1\n",
        ))
        .await
        .unwrap();
    let err = c
        .functions
        .update_function_code(UpdateFunctionCodeRequest {
            name: "fine".into(),
            code_zip: understated_bomb(8 << 20),
        })
        .await
        .expect_err("a bomb must be refused at update");
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    let stored = std::fs::read_dir(agent.data_dir.join("code"))
        .unwrap()
        .count();
    assert_eq!(stored, 1, "only fine's bundle is stored");
}
