//! Large uploads and downloads, and a slow reader: the server must not buffer the whole response.
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn large_upload_and_download() {
    let s = Serve::start("environ_app:app", &[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("upload.bin");
    // 64 MiB of non-trivial bytes.
    let data: Vec<u8> = (0..64 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    std::fs::write(&file, &data).unwrap();
    let expected = python(
        "import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], 'rb').read()).hexdigest(), end='')",
        &[file.to_str().unwrap()],
    );
    let at_file = format!("@{}", file.display());
    let url = s.url("/upload");
    let out = curl_ok(&["--data-binary", &at_file, &url]);
    assert_eq!(
        out,
        format!(r#"{{"len": 67108864, "sha256": "{expected}"}}"#)
    );
    let out = curl_ok(&[
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &at_file,
        &url,
    ]);
    assert_eq!(
        out,
        format!(r#"{{"len": 67108864, "sha256": "{expected}"}}"#)
    );

    // 256 MiB download in 1 MiB chunks.
    let url = s.url("/stream?n=256&size=1048576");
    let out = curl_ok(&[
        "-o",
        "/dev/null",
        "-w",
        "%{size_download} %{http_code}",
        &url,
    ]);
    assert_eq!(out, "268435456 200");
}

fn produced(s: &Serve) -> u64 {
    let j = curl_ok(&[&s.url("/state")]);
    let v = python(
        "import json,sys; d=json.loads(sys.argv[1]); print(d['produced'], d['closed'], end='')",
        &[&j],
    );
    v.split(' ').next().unwrap().parse().unwrap()
}

fn closed(s: &Serve) -> u64 {
    let j = curl_ok(&[&s.url("/state")]);
    python(
        "import json,sys; print(json.loads(sys.argv[1])['closed'], end='')",
        &[&j],
    )
    .parse()
    .unwrap()
}

#[test]
fn slow_reader_gets_backpressure() {
    let s = Serve::start("environ_app:app", &[]);
    // 1 GiB response in 1 MiB chunks; the client reads nothing for a while.
    let mut client = TcpStream::connect(s.addr).unwrap();
    client
        .write_all(b"GET /stream?n=1024&size=1048576 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // Wait (bounded) until production stalls: same count twice, 300 ms apart.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = u64::MAX;
    let stalled = loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = produced(&s);
        if now == last && now > 0 {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "production never stalled (at {now} MiB)"
        );
        last = now;
    };
    eprintln!("production stalled at {stalled} MiB of 1024");
    // Only socket buffers plus a few channel slots may be filled: far below the 1024 MiB total.
    assert!(
        stalled < 64,
        "server buffered {stalled} MiB for a client that read nothing"
    );
    // Reading resumes production.
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut read = 0usize;
    while read < 200 << 20 {
        let n = client.read(&mut buf).unwrap();
        assert!(n > 0);
        read += n;
    }
    assert!(produced(&s) > stalled);
    // The client goes away: the generator stops and close() is called.
    drop(client);
    let deadline = Instant::now() + Duration::from_secs(10);
    while closed(&s) == 0 {
        assert!(
            Instant::now() < deadline,
            "close() not called after disconnect"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(produced(&s) < 1024);
}
