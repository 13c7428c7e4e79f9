//! Compiles the protocol definitions with the vendored protoc (no system protoc needed).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded, so no other thread reads the
    // environment while PROTOC is set for prost-build.
    unsafe { std::env::set_var("PROTOC", protoc) };
    println!("cargo:rerun-if-changed=flint");

    prost_build::Config::new()
        // Keeps HostMessage's variants of similar size (clippy's large_enum_variant).
        .boxed(".flint.init.v1.Configure.credentials")
        .compile_protos(&["flint/init/v1/init.proto"], &["."])?;

    #[cfg(feature = "api")]
    {
        let out = PathBuf::from(std::env::var("OUT_DIR")?);
        tonic_prost_build::configure()
            .file_descriptor_set_path(out.join("flint_v1_descriptor.bin"))
            .compile_protos(
                &[
                    "flint/v1/functions.proto",
                    "flint/v1/invocations.proto",
                    "flint/v1/usage.proto",
                    "flint/v1/node.proto",
                    "flint/v1/events.proto",
                    "flint/v1/triggers.proto",
                    "flint/v1/roles.proto",
                    "flint/v1/logs.proto",
                    "flint/v1/versions.proto",
                    "flint/v1/layers.proto",
                ],
                &["."],
            )?;
    }
    #[cfg(not(feature = "api"))]
    let _ = PathBuf::new();
    Ok(())
}
