fn main() {
    println!("cargo:rerun-if-changed=proto/musicfs.proto");
    tonic_prost_build::configure()
        .compile_protos(&["proto/musicfs.proto"], &["proto"])
        .expect("compile proto/musicfs.proto (is protoc installed? scripts/setup.sh installs it)");
}
