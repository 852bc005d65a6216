//! Peer-channel framing: a 4-byte big-endian length, then that many bytes of JSON.

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Evidence documents are the largest messages; a key set is a few hundred bytes per key.
pub const MAX_FRAME: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("peer channel io: {0}")]
    Io(#[from] std::io::Error),
    #[error("peer sent a {0}-byte frame, more than the {MAX_FRAME} allowed")]
    TooLarge(usize),
    #[error("peer sent a malformed message: {0}")]
    Malformed(#[from] serde_json::Error),
}

pub async fn write<T: Serialize>(
    io: &mut (impl AsyncWrite + Unpin),
    message: &T,
) -> Result<(), FrameError> {
    let body = serde_json::to_vec(message)?;
    if body.len() > MAX_FRAME {
        return Err(FrameError::TooLarge(body.len()));
    }
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    io.write_all(&frame).await?;
    io.flush().await?;
    Ok(())
}

pub async fn read<T: DeserializeOwned>(io: &mut (impl AsyncRead + Unpin)) -> Result<T, FrameError> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    io.read_exact(&mut body).await?;
    Ok(serde_json::from_slice(&body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip_and_limits() {
        let (mut a, mut b) = tokio::io::duplex(64 * 1024);
        write(&mut a, &serde_json::json!({"x": 1})).await.unwrap();
        let got: serde_json::Value = read(&mut b).await.unwrap();
        assert_eq!(got, serde_json::json!({"x": 1}));

        a.write_all(&(MAX_FRAME as u32 + 1).to_be_bytes())
            .await
            .unwrap();
        let err = read::<serde_json::Value>(&mut b).await.unwrap_err();
        assert!(
            matches!(err, FrameError::TooLarge(n) if n == MAX_FRAME + 1),
            "{err}"
        );

        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(&3u32.to_be_bytes()).await.unwrap();
        a.write_all(b"{x}").await.unwrap();
        assert!(matches!(
            read::<serde_json::Value>(&mut b).await,
            Err(FrameError::Malformed(_))
        ));
    }
}
