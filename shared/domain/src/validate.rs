//! Field rules shared by the API and the workers.

use crate::{codes, Invalid};

/// WhatsApp's limit on a text message body, in characters.
pub const MAX_TEXT_CHARS: usize = 4096;

pub fn message_text(field: &str, text: &str) -> Result<(), Invalid> {
    if text.trim().is_empty() {
        return Err(Invalid::at(
            field,
            codes::EMPTY_MESSAGE,
            format!("{field} must not be empty"),
        ));
    }
    let chars = text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(Invalid::at(
            field,
            codes::TOO_LONG,
            format!("{field} has {chars} characters; WhatsApp allows at most {MAX_TEXT_CHARS}"),
        ));
    }
    Ok(())
}

pub fn username(name: &str) -> Result<(), Invalid> {
    let ok_len = (3..=64).contains(&name.chars().count());
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'));
    if !ok_len || !ok_chars {
        return Err(Invalid::at(
            "username",
            codes::INVALID_USERNAME,
            "username must be 3 to 64 characters of letters, digits, '_', '-', '.' or '@'",
        ));
    }
    Ok(())
}

pub fn password(password: &str) -> Result<(), Invalid> {
    let n = password.chars().count();
    if !(8..=128).contains(&n) {
        return Err(Invalid::at(
            "password",
            codes::INVALID_PASSWORD,
            "password must be 8 to 128 characters long",
        ));
    }
    Ok(())
}

/// A tag colour as the seed shows it: `#rrggbb`.
pub fn color(color: &str) -> Result<(), Invalid> {
    let bytes = color.as_bytes();
    if bytes.len() == 7 && bytes[0] == b'#' && bytes[1..].iter().all(u8::is_ascii_hexdigit) {
        Ok(())
    } else {
        Err(Invalid::at(
            "color",
            codes::INVALID_COLOR,
            format!("color {color:?} must look like \"#ff4444\""),
        ))
    }
}

pub fn tag_name(name: &str) -> Result<(), Invalid> {
    let n = name.trim().chars().count();
    if n == 0 || n > 64 {
        return Err(Invalid::at(
            "name",
            codes::INVALID_TAG_NAME,
            "tag name must be 1 to 64 characters",
        ));
    }
    // They separate tags in a CSV cell.
    if name.contains([';', '|']) {
        return Err(Invalid::at(
            "name",
            codes::INVALID_TAG_NAME,
            "tag name cannot contain ';' or '|'",
        ));
    }
    Ok(())
}

pub fn contact_name(name: &str) -> Result<(), Invalid> {
    if name.chars().count() > 256 {
        return Err(Invalid::at(
            "name",
            codes::TOO_LONG,
            "name must be at most 256 characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_limits() {
        assert!(message_text("message", "hi").is_ok());
        assert!(message_text("message", "  ").is_err());
        assert!(message_text("message", &"é".repeat(4096)).is_ok());
        assert!(message_text("message", &"a".repeat(4097)).is_err());
    }

    #[test]
    fn colors_and_names() {
        assert!(color("#ff4444").is_ok());
        assert!(color("red").is_err());
        assert!(username("admin").is_ok());
        assert!(username("a b").is_err());
        assert!(password("short").is_err());
    }
}
