//! Opt-out and opt-in by keyword: a contact who writes STOP (or a configured synonym, in any
//! language configured) leaves the campaigns; START brings them back. A keyword is the whole
//! message, whatever its case, spacing or final punctuation: "stop", " Stop! " and "STOP." all
//! count; "please stop sending me reminders" is a message for a person to read, not a keyword.

/// What a keyword asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    /// Leave the campaigns (STOP).
    OptOut,
    /// Come back (START).
    OptIn,
}

impl Consent {
    pub fn as_str(self) -> &'static str {
        match self {
            Consent::OptOut => "opt_out",
            Consent::OptIn => "opt_in",
        }
    }
}

/// The keywords of each kind, normalized once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keywords {
    stop: Vec<String>,
    start: Vec<String>,
}

impl Keywords {
    /// From comma-separated lists, as the configuration holds them (`"STOP, BAJA, ARRÊT"`).
    pub fn from_lists(stop: &str, start: &str) -> Self {
        let words = |list: &str| -> Vec<String> {
            list.split(',')
                .map(normalize)
                .filter(|w| !w.is_empty())
                .collect()
        };
        Self {
            stop: words(stop),
            start: words(start),
        }
    }

    /// What an inbound text asks for, if it is a keyword.
    pub fn classify(&self, text: &str) -> Option<Consent> {
        let said = normalize(text);
        if said.is_empty() {
            None
        } else if self.stop.contains(&said) {
            Some(Consent::OptOut)
        } else if self.start.contains(&said) {
            Some(Consent::OptIn)
        } else {
            None
        }
    }
}

/// Upper case, inner whitespace collapsed, surrounding whitespace and punctuation removed.
fn normalize(text: &str) -> String {
    let trimmed = text.trim_matches(|c: char| {
        c.is_whitespace() || c.is_ascii_punctuation() || "¡¿。！？".contains(c)
    });
    trimmed
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keywords() -> Keywords {
        Keywords::from_lists("STOP, Unsubscribe, baja, ARRÊT, रुकें", " START ,alta")
    }

    #[test]
    fn whole_messages_in_any_case_and_punctuation_are_keywords() {
        let k = keywords();
        for said in [
            "stop",
            " Stop! ",
            "STOP.",
            "unsubscribe",
            "Baja",
            "¡baja!",
            "arrêt",
            "रुकें",
        ] {
            assert_eq!(k.classify(said), Some(Consent::OptOut), "{said:?}");
        }
        for said in ["start", "Start!", "ALTA"] {
            assert_eq!(k.classify(said), Some(Consent::OptIn), "{said:?}");
        }
    }

    #[test]
    fn sentences_and_empty_messages_are_not_keywords() {
        let k = keywords();
        for said in [
            "please stop sending reminders",
            "stopping by tomorrow",
            "",
            "  ",
            "!!",
            "st op",
        ] {
            assert_eq!(k.classify(said), None, "{said:?}");
        }
        assert_eq!(Keywords::from_lists("", "").classify("stop"), None);
    }
}
