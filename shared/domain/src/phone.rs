//! Phone numbers as WhatsApp uses them: digits only, country code first, no `+`. Since 2026 a
//! user who adopted a username may come without a phone number, known by a business-scoped
//! user id (`US.13491208655302741918`: a country code, a dot, letters and digits); such an id is
//! accepted wherever a phone is, and a send to it goes to WhatsApp's `recipient`.

use crate::{codes, Invalid};

/// The shortest and longest digit strings accepted. E.164 numbers have at most 15 digits; group
/// ids that WhatsApp reports in place of a phone run a little longer.
const MIN_DIGITS: usize = 6;
const MAX_DIGITS: usize = 20;

/// A normalised phone number (`"14155550123"`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Phone(String);

impl Phone {
    /// Accepts what people type (`+1 (415) 555-0123`) and keeps the digits. Anything other than
    /// digits, spaces, `+`, `-`, `.` and parentheses is refused rather than silently dropped.
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let trimmed = input.trim();
        if is_user_id(trimmed) {
            return Ok(Self(trimmed.to_string()));
        }
        let mut digits = String::with_capacity(trimmed.len());
        for (i, c) in trimmed.chars().enumerate() {
            match c {
                '0'..='9' => digits.push(c),
                '+' if i == 0 => {}
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => {
                    return Err(Invalid::coded(codes::INVALID_PHONE, format!(
                        "phone number {input:?} may contain only digits, spaces, '+', '-', '.' and parentheses"
                    )))
                }
            }
        }
        if digits.len() < MIN_DIGITS || digits.len() > MAX_DIGITS {
            return Err(Invalid::coded(codes::INVALID_PHONE, format!(
                "phone number {input:?} must have between {MIN_DIGITS} and {MAX_DIGITS} digits, country code first"
            )));
        }
        if digits.starts_with('0') {
            return Err(Invalid::coded(
                codes::INVALID_PHONE,
                format!("phone number {input:?} must start with the country code, not 0"),
            ));
        }
        Ok(Self(digits))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A business-scoped user id rather than a phone number.
    pub fn is_user_id(&self) -> bool {
        is_user_id(&self.0)
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// Area codes of the North American Numbering Plan (+1) outside the United States and its
/// territories: Canada and the Caribbean nations.
const NANP_NOT_US: &[&str] = &[
    // Canada
    "204", "226", "236", "249", "250", "257", "263", "273", "289", "306", "343", "354", "365",
    "367", "368", "382", "387", "403", "416", "418", "428", "431", "437", "438", "450", "460",
    "468", "474", "506", "514", "519", "548", "579", "581", "584", "587", "600", "604", "613",
    "622", "639", "647", "672", "683", "705", "709", "742", "753", "778", "780", "782", "807",
    "819", "825", "851", "867", "873", "879", "902", "905", "942",
    // The Caribbean and Bermuda
    "242", "246", "264", "268", "284", "345", "441", "473", "649", "658", "664", "721", "758",
    "767", "784", "809", "829", "849", "868", "869", "876",
];

/// A number in the United States (or its territories): +1 with a US area code, or a
/// business-scoped user id from the US.
pub fn is_us(phone: &str) -> bool {
    if phone.starts_with("US.") {
        return true;
    }
    match phone.strip_prefix('1') {
        Some(rest) if rest.len() == 10 && rest.bytes().all(|b| b.is_ascii_digit()) => {
            !NANP_NOT_US.contains(&&rest[..3])
        }
        _ => false,
    }
}

/// `US.13491208655302741918`: two capital letters, a dot, then 1 to 128 letters and digits.
pub fn is_user_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 4
        && b.len() <= 131
        && b[0].is_ascii_uppercase()
        && b[1].is_ascii_uppercase()
        && b[2] == b'.'
        && b[3..].iter().all(u8::is_ascii_alphanumeric)
}

impl std::fmt::Display for Phone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_digits_of_what_people_type() {
        assert_eq!(
            Phone::parse("+1 (415) 555-0123").unwrap().as_str(),
            "14155550123"
        );
        assert_eq!(
            Phone::parse("919876543210").unwrap().as_str(),
            "919876543210"
        );
    }

    #[test]
    fn tells_us_numbers_from_the_rest_of_north_america() {
        assert!(is_us("14155550123"));
        assert!(is_us("17875550123"), "Puerto Rico is in the US");
        assert!(is_us("US.1349"));
        assert!(!is_us("14165550123"), "Toronto");
        assert!(!is_us("18765550123"), "Jamaica");
        assert!(!is_us("919800000001"));
        assert!(!is_us("1415555"), "too short for +1");
    }

    #[test]
    fn takes_business_scoped_user_ids_as_they_are() {
        let id = Phone::parse(" US.13491208655302741918 ").unwrap();
        assert_eq!(id.as_str(), "US.13491208655302741918");
        assert!(id.is_user_id());
        assert!(!Phone::parse("14155550123").unwrap().is_user_id());
        for bad in ["us.123", "U.123", "US.", "US.12 3", "USA.123", "US.12-3"] {
            assert!(Phone::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn refuses_letters_short_long_and_leading_zero() {
        for bad in [
            "12345",
            "abc1234567",
            "1234567890123456789012",
            "0123456789",
            "12+3456789",
            "",
        ] {
            assert!(Phone::parse(bad).is_err(), "{bad} should be refused");
        }
    }
}
