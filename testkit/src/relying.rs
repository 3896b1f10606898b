//! What a relying party does from outside: openssl in a folder, and plain
//! HTTP GETs on the public listener.

use std::path::Path;
use std::process::Command;

/// Runs openssl with `args` in `dir`: whether it succeeded, and its stdout
/// and stderr together.
pub fn openssl_in(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is required (.ci/run installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `der` as a PEM certificate.
pub fn pem(der: &[u8]) -> String {
    estd::files::cert_pem(der)
}

/// Writes the certificates `ders` as one PEM file `dir/name`.
pub fn write_pem(dir: &Path, name: &str, ders: &[&[u8]]) {
    let text: String = ders.iter().map(|d| pem(d)).collect();
    std::fs::write(dir.join(name), text).expect("write");
}

/// A plain-HTTP GET of `path` on loopback `addr`: status, head and body.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head, raw[split + 4..].to_vec())
}
