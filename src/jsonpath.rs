//! Names the JSON field at an error position ("process.user.uid",
//! "mounts[2].destination"), so a config error says which field is wrong
//! without a second, path-tracking copy of every deserializer.

enum Frame {
    Object {
        key: Option<String>,
        expect_key: bool,
    },
    Array(usize),
}

/// The path of the value that ends at byte `offset` of `text`.
pub fn path_at(text: &[u8], offset: usize) -> String {
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < text.len() && i < offset {
        match text[i] {
            b'{' => stack.push(Frame::Object {
                key: None,
                expect_key: true,
            }),
            b'[' => stack.push(Frame::Array(0)),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array(n)) => *n += 1,
                Some(Frame::Object { expect_key, .. }) => *expect_key = true,
                None => {}
            },
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < text.len() && text[i] != b'"' {
                    if text[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                if let Some(Frame::Object { key, expect_key }) = stack.last_mut() {
                    if *expect_key {
                        *key = Some(
                            String::from_utf8_lossy(&text[start..i.min(text.len())]).into_owned(),
                        );
                        *expect_key = false;
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    let mut out = String::new();
    for f in &stack {
        match f {
            Frame::Object { key: Some(k), .. } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Frame::Object { key: None, .. } => {}
            Frame::Array(n) => out.push_str(&format!("[{n}]")),
        }
    }
    out
}

/// Byte offset of a 1-based (line, column) position.
pub fn offset_of(text: &[u8], line: usize, column: usize) -> usize {
    let mut off = 0;
    for (n, l) in text.split(|&b| b == b'\n').enumerate() {
        if n + 1 == line {
            return off + column.min(l.len());
        }
        off += l.len() + 1;
    }
    text.len()
}

/// serde_json's error with the field it concerns: "field process.user.uid:
/// invalid type: ...", or "invalid JSON: ..." for a syntax error.
pub fn describe(text: &[u8], e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    if !matches!(e.classify(), Category::Data) {
        return format!("invalid JSON: {e}");
    }
    // A missing field is reported just past its object's `}`: the path is
    // then the object's own.
    let path = path_at(text, offset_of(text, e.line(), e.column()));
    let msg = e.to_string();
    // serde_json appends " at line L column C"; the field name says more.
    let msg = msg
        .rsplit_once(" at line ")
        .map_or(msg.as_str(), |(m, _)| m);
    if path.is_empty() {
        msg.to_string()
    } else {
        format!("field {path}: {msg}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err<T: serde::de::DeserializeOwned + std::fmt::Debug>(text: &str) -> String {
        describe(
            text.as_bytes(),
            &serde_json::from_str::<T>(text).unwrap_err(),
        )
    }

    #[test]
    fn paths_of_type_errors() {
        use oci_spec::runtime::Spec;
        let e = err::<Spec>(
            r#"{"ociVersion":"1.0.0","process":{"cwd":"/","user":{"uid":"x","gid":0}}}"#,
        );
        assert!(e.starts_with("field process.user.uid: invalid type"), "{e}");
        let e = err::<Spec>("{\"ociVersion\":\"1\",\n \"mounts\":[{\"destination\":\"/a\"},\n {\"destination\":5}]}");
        assert!(e.starts_with("field mounts[1].destination:"), "{e}");
        let e = err::<Spec>(
            r#"{"ociVersion":"1","process":{"cwd":"/","user":{"uid":0,"gid":0},"capabilities":{"bounding":["CAP_NOPE"]}}}"#,
        );
        assert!(
            e.contains("field process.capabilities.bounding") && e.contains("CAP_NOPE"),
            "{e}"
        );
    }

    #[test]
    fn missing_fields_name_their_object_and_syntax_is_plain() {
        use oci_spec::runtime::Spec;
        let e = err::<Spec>(r#"{"ociVersion":"1","mounts":[{"type":"tmpfs"}]}"#);
        assert_eq!(e, "field mounts[0]: missing field `destination`");
        assert!(err::<Spec>("{not json").starts_with("invalid JSON"));
    }
}
