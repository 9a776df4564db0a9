//! `GET /image` and the image files: what a client needs to recompute a VM enclave's expected
//! measurements without trusting the node.

mod common;

use common::{TestNode, http_raw, image_manifest as manifest, published_image};
use mse_launch::Digest32;
use serde_json::{Value, json};

#[test]
fn the_node_publishes_its_image_files_and_digests_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("image");
    std::fs::create_dir_all(&image).unwrap();
    let kernel = b"MZ fake kernel".to_vec();
    // Larger than one read buffer: the files are streamed.
    let initrd: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let m = manifest(&kernel, &initrd);
    let json_bytes = m.to_bytes();
    std::fs::write(image.join("vmlinuz"), &kernel).unwrap();
    std::fs::write(image.join("initrd.img"), &initrd).unwrap();
    std::fs::write(image.join("image.json"), &json_bytes).unwrap();
    let firmware = dir.path().join("OVMF.fd");
    std::fs::write(&firmware, b"firmware volume").unwrap();
    let node = TestNode::start(&format!(
        "vm_image = {:?}\nvm_firmware = {:?}",
        image.display().to_string(),
        firmware.display().to_string()
    ));

    let (status, body) = node.get("/image", None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({
            "image_sha256": Digest32::of(&json_bytes).to_hex(),
            "image": serde_json::to_value(&m).unwrap(),
            "firmware_sha256": Digest32::of(b"firmware volume").to_hex(),
            "files": ["vmlinuz", "initrd.img", "image.json", "firmware"],
            "vcpu_type": "EPYC-v4",
            "tdx": null,
        })
    );
    for (name, want) in [
        ("vmlinuz", &kernel),
        ("initrd.img", &initrd),
        ("image.json", &json_bytes),
        ("firmware", &b"firmware volume".to_vec()),
    ] {
        let (status, got) = http_raw(node.api, "GET", &format!("/image/{name}"), None, None, &[]);
        assert_eq!(status, 200, "{name}");
        assert!(
            got == *want,
            "/image/{name}: {} bytes, want {}",
            got.len(),
            want.len()
        );
    }
    let (status, body) = node.get("/image/System.map", None);
    assert_eq!(
        (status, body),
        (404, json!({ "error": "image file not found" }))
    );

    // A rebuilt image is served at once.
    std::fs::write(image.join("image.json"), b"{\"version\":1}").unwrap();
    let (status, body) = node.get("/image", None);
    assert_eq!(
        (status, body),
        (503, json!({ "error": "the node's image.json is invalid" }))
    );
}

/// `[vm] tdx_mrtd`/`tdx_rtmr0..2`: the TDX reference values the operator measured, published
/// as `mse` reads them (`tdx` in `GET /image`).
#[test]
fn the_node_publishes_its_tdx_reference_values() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(&published_image(dir.path(), true));
    let (status, body) = node.get("/image", None);
    assert_eq!(status, 200, "{body}");
    let h = |b: u8| hex::encode([b; 48]);
    assert_eq!(
        body["tdx"],
        json!({ "mr_td": h(0x11), "rtmrs": [h(0x20), h(0x21), h(0x22)] })
    );
}

#[test]
fn a_node_without_an_image_says_so() {
    let node = TestNode::start("");
    let (status, body) = node.get("/image", None);
    assert_eq!(
        (status, body),
        (404, json!({ "error": "this node has no VM image" }))
    );
    let (status, body) = node.get("/image/initrd.img", None);
    assert_eq!(
        (status, body),
        (404, json!({ "error": "this node has no VM image" }))
    );
    let (status, body): (u16, Value) = node.get("/image/firmware", None);
    assert_eq!(
        (status, body),
        (404, json!({ "error": "this node has no VM firmware" }))
    );
}
