//! A small async HTTP/1.1 client over one keep-alive connection (hyper), for tests that need
//! many connections or read a response body frame by frame.

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One HTTP/1.1 connection; requests on it are sent one after another (keep-alive).
pub struct H1Conn {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

/// A fully read response.
#[derive(Debug)]
pub struct FullResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl H1Conn {
    /// Connects to `addr` (`127.0.0.1:PORT`) and performs the HTTP/1.1 handshake.
    pub async fn connect(addr: &str) -> anyhow::Result<H1Conn> {
        let stream = TcpStream::connect(addr).await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(H1Conn {
            sender,
            host: addr.to_string(),
        })
    }

    /// Sends `req` (a `Host` header is added when missing) and returns the streaming response.
    pub async fn send(
        &mut self,
        mut req: Request<Full<Bytes>>,
    ) -> anyhow::Result<Response<Incoming>> {
        if !req.headers().contains_key(http::header::HOST) {
            req.headers_mut()
                .insert(http::header::HOST, self.host.parse()?);
        }
        self.sender.ready().await?;
        Ok(self.sender.send_request(req).await?)
    }

    /// Sends `req` and reads the whole body (test responses are small by construction).
    #[allow(clippy::disallowed_methods)]
    pub async fn fetch(&mut self, req: Request<Full<Bytes>>) -> anyhow::Result<FullResponse> {
        let resp = self.send(req).await?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(FullResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    pub async fn get(&mut self, path: &str) -> anyhow::Result<FullResponse> {
        self.fetch(Request::get(path).body(Full::new(Bytes::new()))?)
            .await
    }

    pub async fn post(
        &mut self,
        path: &str,
        body: impl Into<Bytes>,
    ) -> anyhow::Result<FullResponse> {
        self.fetch(Request::post(path).body(Full::new(body.into()))?)
            .await
    }
}
