//! The loopback harness the service's integration tests share: a real server on a free port,
//! raw HTTP/1.1 requests, and the tokens and files a config needs.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use greenmark::{Key, KeyFile, WatermarkConfig};
use greenmark_serve::auth::digest;
use greenmark_serve::{ServeConfig, Service};
use serde_json::Value;

pub const TRUSTED: &str = "trusted-token-for-tests";
pub const PUBLIC: &str = "public-token-for-tests";

pub fn tokenizer() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../greenmark/tests/data/smollm2-tokenizer.json")
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A running service, its keys and the secrets they hold.
pub struct Server {
    pub addr: SocketAddr,
    pub service: Arc<Service>,
    pub keys: Vec<Key>,
    pub config: WatermarkConfig,
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

/// Serves two keys (`k0.json`, `k1.json`, both with `config`) and the two test tokens, with
/// `extra` TOML after the keys (top-level settings, then tables).
pub fn start_with(config: WatermarkConfig, extra: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<Key> = (1..=2).map(|i| Key::from_bytes([i * 17; 32])).collect();
    for (i, key) in keys.iter().enumerate() {
        KeyFile::new(key.clone(), Some(config.clone()))
            .save(dir.path().join(format!("k{i}.json")))
            .unwrap();
    }
    let toml = format!(
        "tokenizer = {:?}\nkeys = [\"k0.json\", \"k1.json\"]\n{extra}\n\
         [[tokens]]\nsha256 = \"{}\"\nrole = \"trusted\"\n\
         [[tokens]]\nsha256 = \"{}\"\nrole = \"public\"\n",
        tokenizer().to_str().unwrap(),
        hex(&digest(TRUSTED)),
        hex(&digest(PUBLIC)),
    );
    let serve = ServeConfig::parse(&toml, dir.path()).unwrap();
    let service = Arc::new(Service::new(&serve).unwrap());
    let runtime = greenmark_serve::runtime().unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = Arc::clone(&service);
    let thread = std::thread::spawn(move || {
        runtime
            .block_on(greenmark_serve::run(listener, serving, async {
                let _ = stopped.await;
            }))
            .unwrap();
    });
    Server {
        addr,
        service,
        keys,
        config,
        dir,
        stop: Some(stop),
        thread: Some(thread),
    }
}

/// Sends one HTTP/1.1 request and returns the open connection.
pub fn send(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> TcpStream {
    let mut stream = TcpStream::connect(server.addr).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let _ = stream.write_all(body);
    stream
}

/// One HTTP/1.1 request; returns the status and the raw response.
pub fn request(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let mut stream = send(server, method, path, token, body);
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text[9..12].parse().unwrap();
    (status, text)
}

pub fn body_json(response: &str) -> Value {
    let body = response.split("\r\n\r\n").nth(1).unwrap();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response}"))
}
