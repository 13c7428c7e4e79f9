//! Hostile input found in issue 14: a zip bomb that understates its sizes, payloads
//! with invalid UTF-8 or absurd nesting, NUL bytes in the handler and environment.
//! Each is refused when it arrives, with a message that says what to fix.

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

#[tokio::test]
async fn payloads_must_be_utf8_json_nested_at_most_512_deep() {
    let agent = TestAgent::start().await;
    let mut c = agent.client().await;
    c.functions
        .create_function(python_function(
            "echo",
            "def handler(e, c):\n    return e\n",
        ))
        .await
        .unwrap();
    let call = |payload: Vec<u8>| InvokeRequest {
        function_name: "echo".into(),
        invocation_type: InvocationType::RequestResponse as i32,
        payload,
        ..Default::default()
    };
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes();
    let cases = [
        (b"\"caf\xe9\"".to_vec(), "invalid UTF-8 at byte 4"),
        (b"{\"k\": \"\xff\xfe\"}".to_vec(), "invalid UTF-8"),
        (deep(100_000), "deeper than 512 levels"),
        (deep(513), "deeper than 512 levels"),
    ];
    for (payload, needle) in cases {
        let err = c
            .invocations
            .invoke(call(payload))
            .await
            .expect_err("invoke must be refused");
        assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
        assert!(
            err.message().contains("not valid JSON") && err.message().contains(needle),
            "{:?} lacks {needle:?}",
            err.message()
        );
    }
    assert_eq!(
        agent.instances_of("echo").await,
        0,
        "a refused payload started an instance"
    );
    // Nesting within the limit reaches the function and comes back.
    let r = c
        .invocations
        .invoke(call(deep(200)))
        .await
        .expect("200 levels are accepted")
        .into_inner();
    assert_eq!(
        r.function_error,
        "",
        "{}",
        String::from_utf8_lossy(&r.payload)
    );
    assert_eq!(r.payload, deep(200));
}

#[tokio::test]
async fn nul_bytes_in_handler_and_environment_are_refused() {
    let agent = TestAgent::start().await;
    let mut c = agent.client().await;
    let ok = || python_function("nul", "def handler(e, c):\n    return 1\n");
    let mut r = ok();
    r.handler = "app.hand\0ler".into();
    let err = c.functions.create_function(r).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("NUL"), "{}", err.message());
    let mut r = ok();
    r.environment.insert("GREETING".into(), "h\0i".into());
    let err = c.functions.create_function(r).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("GREETING") && err.message().contains("NUL"),
        "{}",
        err.message()
    );
    // Updates are held to the same rule.
    c.functions.create_function(ok()).await.unwrap();
    let err = c
        .functions
        .update_function_configuration(UpdateFunctionConfigurationRequest {
            name: "nul".into(),
            environment: Some(Environment {
                variables: [("K".to_string(), "\0".to_string())].into(),
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    let f = c
        .functions
        .get_function(GetFunctionRequest { name: "nul".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(f.handler, "app.handler");
}
