//! Exec and Attach through containerd's streaming server, as kubectl does
//! through the kubelet: the CRI call returns a URL, the client connects to
//! it with a WebSocket speaking Kubernetes' `v4.channel.k8s.io` protocol
//! (each message starts with its channel: 0 stdin, 1 stdout, 2 stderr,
//! 3 the final status, 4 terminal resize).

use crate::cri::Res;
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// What a streamed session printed, and its final status (channel 3).
#[derive(Debug, Default)]
pub struct Session {
    pub stdout: String,
    pub status: String,
}

/// Connects to a streaming URL, sends `input` (each piece after the output
/// so far contains `after`, or at once when it is empty) and collects
/// everything until the server closes the stream or `secs` pass.
pub async fn session(url: &str, input: &[(&str, &str)], secs: u64) -> Res<Session> {
    let ws_url = url.replacen("http://", "ws://", 1);
    let mut req = ws_url
        .as_str()
        .into_client_request()
        .map_err(|e| format!("{ws_url}: {e}"))?;
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "v4.channel.k8s.io".parse().expect("a valid header"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .map_err(|e| format!("websocket {ws_url}: {e}"))?;
    let mut out = Session::default();
    let mut pending = input.iter();
    let mut next = pending.next();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some((after, text)) = next {
            if out.stdout.contains(after) {
                let mut msg = vec![0u8];
                msg.extend_from_slice(text.as_bytes());
                ws.send(Message::Binary(msg.into()))
                    .await
                    .map_err(|e| format!("sending stdin: {e}"))?;
                next = pending.next();
                continue;
            }
        }
        let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => {
                return Err(format!(
                    "no end of stream after {secs} s; output so far {:?}",
                    out.stdout
                ))
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                // A close without a handshake ends the stream too.
                if out.status.is_empty() {
                    out.status = format!("stream error: {e}");
                }
                break;
            }
            Ok(Some(Ok(m))) => m,
        };
        let data = match msg {
            Message::Binary(b) => b.to_vec(),
            Message::Text(t) => t.as_bytes().to_vec(),
            Message::Close(_) => break,
            _ => continue,
        };
        let Some((&chan, body)) = data.split_first() else {
            continue;
        };
        let text = String::from_utf8_lossy(body);
        match chan {
            1 | 2 => out.stdout.push_str(&text),
            3 => out.status.push_str(&text),
            _ => {}
        }
    }
    Ok(out)
}
