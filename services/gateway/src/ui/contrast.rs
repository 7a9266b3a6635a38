//! WCAG 2 contrast: relative luminance of sRGB colors and the ratio between two. The tag chips
//! pick their ink with it, and a test holds the stylesheet's palette to AA (4.5:1 for text).

/// `#rgb` or `#rrggbb` as its three channels, 0 to 1.
pub fn parse_hex(color: &str) -> Option<[f64; 3]> {
    let hex = color.trim().strip_prefix('#')?;
    let full: String = match hex.len() {
        3 => hex.chars().flat_map(|c| [c, c]).collect(),
        6 => hex.to_string(),
        _ => return None,
    };
    let channel = |i: usize| {
        full.get(i..i + 2)
            .and_then(|c| u8::from_str_radix(c, 16).ok())
            .map(|v| f64::from(v) / 255.0)
    };
    Some([channel(0)?, channel(2)?, channel(4)?])
}

/// WCAG's relative luminance.
pub fn luminance([r, g, b]: [f64; 3]) -> f64 {
    let linear = |c: f64| {
        if c <= 0.039_28 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)
}

/// The contrast ratio of two colors, 1 to 21; `None` when one is not a hex color.
pub fn ratio(a: &str, b: &str) -> Option<f64> {
    let (la, lb) = (luminance(parse_hex(a)?), luminance(parse_hex(b)?));
    let (hi, lo) = if la > lb { (la, lb) } else { (lb, la) };
    Some((hi + 0.05) / (lo + 0.05))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn ratios_match_wcag() {
        let white_black = ratio("#fff", "#000").expect("hex");
        assert!((white_black - 21.0).abs() < 0.01);
        let old_green = ratio("#fff", "#128c7e").expect("hex");
        assert!((old_green - 4.14).abs() < 0.01, "{old_green}");
        assert_eq!(ratio("#fff", "red"), None);
    }

    /// A rule's selector with the text color and background it sets.
    type Pair = (String, String, String);

    /// The stylesheet's custom properties (`--name: #hex`), and every rule that sets both a
    /// color and a background (each `var(--x)` resolved).
    fn palette(css: &str) -> (HashMap<String, String>, Vec<Pair>) {
        let mut vars = HashMap::new();
        let mut pairs = Vec::new();
        let mut plain = String::new();
        let mut rest = css;
        while let Some(start) = rest.find("/*") {
            plain.push_str(&rest[..start]);
            rest = rest[start..]
                .find("*/")
                .map_or("", |end| &rest[start + end + 2..]);
        }
        plain.push_str(rest);
        for block in plain.split('}') {
            // A rule inside @media: its own selector is after the last `{`.
            let Some((selector, body)) = block.rsplit_once('{') else {
                continue;
            };
            let mut color = None;
            let mut background = None;
            for decl in body.split(';') {
                let Some((name, value)) = decl.split_once(':') else {
                    continue;
                };
                let (name, value) = (
                    name.trim(),
                    value.trim().trim_end_matches("!important").trim(),
                );
                if let Some(var) = name.strip_prefix("--") {
                    vars.insert(var.to_string(), value.to_string());
                } else if name == "color" {
                    color = Some(value.to_string());
                } else if name == "background" || name == "background-color" {
                    background = Some(value.to_string());
                }
            }
            if let (Some(c), Some(b)) = (color, background) {
                let selector = selector
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                pairs.push((selector, c, b));
            }
        }
        (vars, pairs)
    }

    fn resolve(value: &str, vars: &HashMap<String, String>) -> String {
        match value
            .strip_prefix("var(--")
            .and_then(|v| v.strip_suffix(')'))
        {
            Some(name) => vars.get(name).cloned().unwrap_or_else(|| value.to_string()),
            None => value.to_string(),
        }
    }

    #[test]
    fn every_text_color_in_the_stylesheet_passes_wcag_aa() {
        let css = include_str!("assets/app.css");
        let (vars, pairs) = palette(css);
        let mut failures = Vec::new();
        let mut checked = 0;
        for (selector, color, background) in &pairs {
            let (c, b) = (resolve(color, &vars), resolve(background, &vars));
            // Rules whose colors are not plain hex (inherit, transparent, none) are not pairs.
            if let Some(r) = ratio(&c, &b) {
                checked += 1;
                if r < 4.5 {
                    failures.push(format!("{selector}: {c} on {b} is {r:.2}:1"));
                }
            }
        }
        // Text on the backgrounds it sits on, set in different rules.
        let v = |name: &str| vars.get(name).cloned().unwrap_or_default();
        let across = [
            ("body text", v("ink"), v("bg")),
            ("muted text on the page", v("muted"), v("bg")),
            ("muted text on cards", v("muted"), v("card")),
            ("muted text in the chat", v("muted"), v("chat-bg")),
            ("ticks in our bubbles", v("muted"), v("bubble-out")),
            ("the read tick", v("read"), v("bubble-out")),
            ("links", v("green-dark"), v("card")),
            ("links on the page", v("green-dark"), v("bg")),
            ("buttons", "#fff".to_string(), v("green")),
            ("hovered buttons", "#fff".to_string(), v("green-dark")),
            ("the header", "#fff".to_string(), v("green-dark")),
            ("errors", v("danger"), v("card")),
            ("errors on the page", v("danger"), v("bg")),
            ("the unread badge", "#fff".to_string(), v("green")),
            ("notes", v("ink"), v("note")),
            ("warnings", v("warn"), v("card")),
        ];
        for (what, fg, bg) in &across {
            let r = ratio(fg, bg).unwrap_or(0.0);
            checked += 1;
            if r < 4.5 {
                failures.push(format!("{what}: {fg} on {bg} is {r:.2}:1"));
            }
        }
        assert!(checked > 25, "the palette was not read: {checked} pairs");
        assert!(failures.is_empty(), "below 4.5:1:\n{}", failures.join("\n"));
    }

    /// The color a `:focus-visible` rule for `selector` draws its ring in (`outline` or
    /// `outline-color`), resolved.
    fn ring(css: &str, selector: &str, vars: &HashMap<String, String>) -> Option<String> {
        let at = css.find(&format!("{selector} {{"))?;
        let body = &css[at..];
        let body = &body[body.find('{')? + 1..body.find('}')?];
        body.split(';').find_map(|decl| {
            let (name, value) = decl.split_once(':')?;
            match name.trim() {
                "outline-color" => Some(resolve(value.trim(), vars)),
                "outline" => value
                    .split_whitespace()
                    .find(|w| w.starts_with('#') || w.starts_with("var("))
                    .map(|w| resolve(w, vars)),
                _ => None,
            }
        })
    }

    /// WCAG 2.2's focus appearance: the keyboard's ring stands out 3:1 from everything it can
    /// sit on (it is drawn outside the control, on the surface around it).
    #[test]
    fn focus_rings_stand_out_three_to_one_where_they_are_drawn() {
        let css = include_str!("assets/app.css");
        let (vars, _) = palette(css);
        let v = |name: &str| vars.get(name).cloned().unwrap_or_default();
        let page_ring = ring(css, ":focus-visible", &vars).expect("the page's focus ring");
        let header_ring =
            ring(css, "header.top :focus-visible", &vars).expect("the header's focus ring");
        let surfaces = [
            ("the page", &page_ring, v("bg")),
            ("cards and panes", &page_ring, v("card")),
            ("the chat", &page_ring, v("chat-bg")),
            ("our bubbles", &page_ring, v("bubble-out")),
            ("notes", &page_ring, v("note")),
            ("the header", &header_ring, v("green-dark")),
        ];
        let mut failures = Vec::new();
        for (what, ring, surface) in surfaces {
            let r = ratio(ring, &surface).unwrap_or(0.0);
            if r < 3.0 {
                failures.push(format!("on {what}: {ring} on {surface} is {r:.2}:1"));
            }
        }
        assert!(
            failures.is_empty(),
            "focus rings below 3:1:\n{}",
            failures.join("\n")
        );
    }
}
