//! Runnable examples of embedding Ophion; see the `[[example]]` entries.
//! The helper here lets an example send itself one request in its
//! self-check mode (`OPHION_EXAMPLE_ONESHOT=1`, what CI runs).

use std::net::SocketAddr;

/// POSTs `body` as JSON to `http://{addr}{path}` over plain HTTP/1.1 and
/// fails unless the answer is 200.
pub async fn post_json(addr: SocketAddr, path: &str, body: &str) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    anyhow::ensure!(
        response.starts_with("HTTP/1.1 200"),
        "unexpected answer: {response}"
    );
    Ok(())
}

/// One OTLP/JSON span of service `service`, starting now.
pub fn one_span_json(service: &str, name: &str) -> anyhow::Result<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    Ok(format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"{service}"}}}}]}},"scopeSpans":[{{"spans":[{{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"{name}","kind":2,"startTimeUnixNano":"{now}","endTimeUnixNano":"{now}"}}]}}]}}]}}"#
    ))
}
