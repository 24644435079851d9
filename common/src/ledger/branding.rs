//! A sale's branding: how its waiting room looks (the shop's name, a logo, an accent
//! colour, a background and a message), set by the operator per sale and read by every
//! door with the sale, so a change needs no rebuild and no restart. Colours are refused
//! when white text on the accent (the pay button) would fail WCAG AA (4.5:1).

use serde::{Deserialize, Serialize};

/// The operator's look for a sale's waiting room; every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Branding {
    /// The shop's name, shown above the product.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 80)]
    pub shop_name: Option<String>,
    /// A logo (`https://` or `http://`), shown above the product.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 500)]
    pub logo_url: Option<String>,
    /// The pay button and highlights, `#rrggbb`; white text on it must reach 4.5:1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^#[0-9a-fA-F]{6}$")]
    pub accent_color: Option<String>,
    /// The page around the card, `#rrggbb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^#[0-9a-fA-F]{6}$")]
    pub background_color: Option<String>,
    /// A message to every shopper (plain text, shown under the status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 500)]
    pub message: Option<String>,
}

/// `#rrggbb` as red, green and blue.
fn rgb(color: &str) -> Option<[u8; 3]> {
    let hex = color.strip_prefix('#')?;
    if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let channel = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
    Some([channel(0)?, channel(2)?, channel(4)?])
}

/// WCAG 2 relative luminance.
fn luminance([r, g, b]: [u8; 3]) -> f64 {
    let linear = |c: u8| {
        let c = f64::from(c) / 255.0;
        if c <= 0.039_28 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)
}

/// WCAG 2 contrast ratio of two colours.
pub fn contrast(a: [u8; 3], b: [u8; 3]) -> f64 {
    let (la, lb) = (luminance(a), luminance(b));
    (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
}

impl Branding {
    /// What is wrong with it, if anything (a sentence for a `422`).
    pub fn problem(&self) -> Option<String> {
        let too_long = |value: &Option<String>, most: usize, field: &str| {
            value
                .as_ref()
                .filter(|v| v.chars().count() > most || v.is_empty())
                .map(|_| format!("branding.{field} must be 1 to {most} characters"))
        };
        if let Some(problem) = too_long(&self.shop_name, 80, "shop_name")
            .or_else(|| too_long(&self.logo_url, 500, "logo_url"))
            .or_else(|| too_long(&self.message, 500, "message"))
        {
            return Some(problem);
        }
        if let Some(url) = &self.logo_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Some("branding.logo_url must be an http(s) URL".into());
        }
        for (field, color) in [
            ("accent_color", &self.accent_color),
            ("background_color", &self.background_color),
        ] {
            if color.as_deref().is_some_and(|c| rgb(c).is_none()) {
                return Some(format!("branding.{field} must be #rrggbb"));
            }
        }
        if let Some(accent) = self.accent_color.as_deref().and_then(rgb) {
            let ratio = contrast(accent, [255, 255, 255]);
            if ratio < 4.5 {
                return Some(format!(
                    "branding.accent_color gives white text a contrast of {ratio:.2}:1; WCAG AA needs 4.5:1"
                ));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contrast_follows_wcag() {
        assert!((contrast([0, 0, 0], [255, 255, 255]) - 21.0).abs() < 1e-9);
        // The default pay button, #1d4ed8, with white text: 6.7:1.
        let ratio = contrast(rgb("#1d4ed8").unwrap(), [255, 255, 255]);
        assert!((6.6..6.8).contains(&ratio), "{ratio}");
    }

    #[test]
    fn colours_urls_and_lengths_are_checked() {
        let ok = Branding {
            shop_name: Some("Shoe shop".into()),
            logo_url: Some("https://cdn.example/logo.png".into()),
            accent_color: Some("#0B5FFF".into()),
            background_color: Some("#fafafa".into()),
            message: Some("Thank you for waiting".into()),
        };
        assert_eq!(ok.problem(), None);
        let pale = Branding {
            accent_color: Some("#ffcc00".into()),
            ..Branding::default()
        };
        assert!(pale.problem().unwrap().contains("WCAG AA"));
        let script = Branding {
            logo_url: Some("javascript:alert(1)".into()),
            ..Branding::default()
        };
        assert!(script.problem().unwrap().contains("http(s)"));
        let colour = Branding {
            background_color: Some("red".into()),
            ..Branding::default()
        };
        assert!(colour.problem().unwrap().contains("#rrggbb"));
        let long = Branding {
            message: Some("x".repeat(501)),
            ..Branding::default()
        };
        assert!(long.problem().is_some());
    }

    #[test]
    fn only_an_object_is_a_branding() {
        #[derive(Deserialize)]
        struct Input {
            #[serde(default, deserialize_with = "crate::ledger::object_or_null")]
            branding: Option<Branding>,
        }
        let parse = |json: &str| serde_json::from_str::<Input>(json).map(|i| i.branding);
        assert!(parse(r#"{"branding": [null, null]}"#).is_err());
        assert!(parse(r#"{"branding": "x"}"#).is_err());
        assert!(parse(r##"{"branding": {"colour": "#000000"}}"##).is_err());
        assert_eq!(parse(r#"{"branding": null}"#).unwrap(), None);
        assert_eq!(parse("{}").unwrap(), None);
        assert_eq!(
            parse(r#"{"branding": {}}"#).unwrap(),
            Some(Branding::default())
        );
    }
}
