//! The exact command a building block sends, captured with `MONITOR`, so that
//! `redis-benchmark` can run the very same command as the reference.

use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Runs `op` once while monitoring the server on `port`, and returns the
/// arguments of the first command named `name` (e.g. `EVALSHA`).
pub async fn capture<F, Fut>(port: u16, name: &str, op: F) -> Vec<String>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    let stream = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| crate::fail(&format!("MONITOR: {e}")));
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut writer = stream
        .try_clone()
        .unwrap_or_else(|e| crate::fail(&format!("MONITOR: {e}")));
    let _ = writer.write_all(b"MONITOR\r\n");
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let _ = reader.read_line(&mut line); // +OK
    op().await;
    let wanted = format!("\"{}\"", name.to_ascii_uppercase());
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => crate::fail(&format!("no {name} seen while monitoring")),
            Ok(_) => {
                let args = parse_monitor_line(&line);
                if args
                    .first()
                    .is_some_and(|a| format!("\"{}\"", a.to_ascii_uppercase()) == wanted)
                {
                    return args;
                }
            }
        }
    }
}

/// The quoted arguments of one `MONITOR` line, unescaped.
pub fn parse_monitor_line(line: &str) -> Vec<String> {
    let bytes = line.as_bytes();
    let start = line.find("] ").map_or(0, |i| i + 2);
    let mut args = Vec::new();
    let mut i = start;
    while i < bytes.len() {
        if bytes[i] != b'"' {
            i += 1;
            continue;
        }
        i += 1;
        let mut arg = Vec::new();
        while i < bytes.len() && bytes[i] != b'"' {
            if bytes[i] == b'\\' && i + 1 < bytes.len() {
                i += 1;
                match bytes[i] {
                    b'n' => arg.push(b'\n'),
                    b'r' => arg.push(b'\r'),
                    b't' => arg.push(b'\t'),
                    b'a' => arg.push(7),
                    b'b' => arg.push(8),
                    b'x' if i + 2 < bytes.len() => {
                        let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("00");
                        arg.push(u8::from_str_radix(hex, 16).unwrap_or(0));
                        i += 2;
                    }
                    other => arg.push(other),
                }
            } else {
                arg.push(bytes[i]);
            }
            i += 1;
        }
        args.push(String::from_utf8_lossy(&arg).into_owned());
        i += 1;
    }
    args
}

#[cfg(test)]
mod tests {
    use super::parse_monitor_line;

    #[test]
    fn monitor_lines_are_unescaped() {
        let line = "1700000000.1 [0 127.0.0.1:5] \"EVALSHA\" \"ab\" \"1\" \"ws:{a}:k\" \"{\\\"x\\\":1}\" \"\\x00z\"\r\n";
        assert_eq!(
            parse_monitor_line(line),
            ["EVALSHA", "ab", "1", "ws:{a}:k", "{\"x\":1}", "\u{0}z"]
        );
    }
}
