//! A bare HTTP/1.1 keep-alive client on hyper's connection API: no pool, no redirects, no
//! decompression, so that what the latency figures measure is the server.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{header, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use tokio::net::TcpStream;

pub struct Conn {
    send: SendRequest<Full<Bytes>>,
    host: String,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body)
            .map_err(|e| format!("response is not JSON ({e}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        let s = String::from_utf8_lossy(&self.body);
        s.chars().take(400).collect()
    }

    /// The reply's JSON when the status is the expected one, else an error naming both.
    pub fn expect(&self, what: &str, status: StatusCode) -> Result<serde_json::Value, String> {
        if self.status != status {
            return Err(format!(
                "{what}: expected {status}, got {}: {}",
                self.status,
                self.text()
            ));
        }
        self.json()
    }
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Result<Conn, String> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        // Small request/response pairs: Nagle would add up to 40 ms per round trip.
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let (send, conn) = http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| format!("handshake {addr}: {e}"))?;
        tokio::spawn(conn);
        Ok(Conn {
            send,
            host: addr.to_string(),
        })
    }

    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<Reply, String> {
        self.request_with(method, path, content_type, &[], body)
            .await
    }

    /// `request` with more headers (name, value).
    pub async fn request_with(
        &mut self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<Reply, String> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.host);
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
        self.send
            .ready()
            .await
            .map_err(|e| format!("{path}: connection lost: {e}"))?;
        let resp = self
            .send
            .send_request(req)
            .await
            .map_err(|e| format!("{path}: {e}"))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{path}: reading body: {e}"))?
            .to_bytes();
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    pub async fn get(&mut self, path: &str) -> Result<Reply, String> {
        self.request(Method::GET, path, None, Bytes::new()).await
    }

    pub async fn post_json(
        &mut self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Reply, String> {
        let bytes = Bytes::from(serde_json::to_vec(body).map_err(|e| e.to_string())?);
        self.request(Method::POST, path, Some("application/json"), bytes)
            .await
    }
}
