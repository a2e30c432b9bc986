//! Compiles the .proto files with protox (pure Rust, no protoc) and generates tonic code.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["portcullis/v1/authorization.proto", "portcullis/v1/admin.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["."])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("portcullis_descriptor.bin"), fds.encode_to_vec())?;
    // Maps as `BTreeMap`: an empty one costs nothing to make (a `HashMap` seeds its hasher
    // per resource decoded), the engine's attributes are one already, and the order is stable.
    // Messages are decoded from one slice (`src/codec.rs`).
    tonic_prost_build::configure()
        .btree_map(".")
        .codec_path("crate::codec::SliceCodec")
        .compile_fds(fds)?;
    Ok(())
}
