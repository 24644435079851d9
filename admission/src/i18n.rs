//! The shopper pages' words: one catalogue (`i18n/messages.json`, English, German, French,
//! Spanish and Japanese) that the server renders with and hands to the page's script, so
//! no sentence is written twice. The language is the page's `lang` override if it names
//! one we have, else the best of `Accept-Language` we have, else English.

use std::collections::BTreeMap;
use std::sync::LazyLock;

/// The languages in the catalogue, English (the fallback) first.
pub(crate) const LANGUAGES: [(&str, &str); 5] = [
    ("en", "English"),
    ("de", "Deutsch"),
    ("fr", "Français"),
    ("es", "Español"),
    ("ja", "日本語"),
];

type Catalogue = BTreeMap<String, BTreeMap<String, String>>;

static CATALOGUE: LazyLock<Catalogue> = LazyLock::new(|| {
    serde_json::from_str(include_str!("i18n/messages.json"))
        .expect("i18n/messages.json is valid (checked by the unit tests)")
});

/// Each language's words as JSON for a page's script (`</` escaped for `<script>`).
static SCRIPT_JSON: LazyLock<BTreeMap<&'static str, String>> = LazyLock::new(|| {
    LANGUAGES
        .iter()
        .map(|(lang, _)| {
            let json = serde_json::to_string(&CATALOGUE[*lang]).unwrap_or_else(|_| "{}".into());
            (*lang, json.replace("</", "<\\/"))
        })
        .collect()
});

/// One language's words.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Messages {
    /// The language's tag (`en`, `de`, …).
    pub lang: &'static str,
}

impl Messages {
    /// The language chosen from a page's `lang` override and the `Accept-Language` header.
    pub(crate) fn negotiate(choice: Option<&str>, accept_language: Option<&str>) -> Self {
        let known = |tag: &str| {
            let primary = tag.split(['-', '_']).next().unwrap_or_default();
            LANGUAGES
                .iter()
                .find(|(lang, _)| lang.eq_ignore_ascii_case(primary))
                .map(|(lang, _)| *lang)
        };
        if let Some(lang) = choice.and_then(known) {
            return Self { lang };
        }
        // Highest quality first; among equals, the order the browser gave.
        let mut ranked: Vec<(f32, usize, &str)> = accept_language
            .unwrap_or_default()
            .split(',')
            .enumerate()
            .filter_map(|(i, part)| {
                let mut pieces = part.split(';');
                let tag = pieces.next()?.trim();
                let q = pieces
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())?;
                (q > 0.0 && !tag.is_empty()).then_some((q, i, tag))
            })
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let lang = ranked
            .iter()
            .find_map(|(_, _, tag)| known(tag))
            .unwrap_or("en");
        Self { lang }
    }

    /// The sentence `key` with each `{name}` replaced by its value.
    pub(crate) fn text(&self, key: &str, values: &[(&str, &str)]) -> String {
        let words = CATALOGUE
            .get(self.lang)
            .and_then(|w| w.get(key))
            .or_else(|| CATALOGUE.get("en").and_then(|w| w.get(key)));
        let mut text = words.cloned().unwrap_or_else(|| key.to_owned());
        for (name, value) in values {
            text = text.replace(&format!("{{{name}}}"), value);
        }
        text
    }

    /// This language's words as JSON for the page's script.
    pub(crate) fn script_json(&self) -> &'static str {
        SCRIPT_JSON.get(self.lang).map_or("{}", String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn placeholders(text: &str) -> BTreeSet<String> {
        text.split('{')
            .skip(1)
            .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_owned()))
            .collect()
    }

    #[test]
    fn every_language_has_every_sentence_with_the_same_placeholders() {
        let english = &CATALOGUE["en"];
        assert_eq!(CATALOGUE.len(), LANGUAGES.len());
        for (lang, _) in LANGUAGES {
            let words = &CATALOGUE[lang];
            let keys: BTreeSet<_> = words.keys().collect();
            assert_eq!(keys, english.keys().collect(), "{lang}: the same sentences");
            for (key, text) in words {
                assert_eq!(
                    placeholders(text),
                    placeholders(&english[key]),
                    "{lang} {key}"
                );
            }
        }
    }

    #[test]
    fn the_language_is_the_override_else_the_best_accepted_else_english() {
        let lang = |choice, accept| Messages::negotiate(choice, accept).lang;
        assert_eq!(lang(Some("ja"), Some("de")), "ja");
        assert_eq!(lang(Some("xx"), Some("de-CH, de;q=0.9")), "de");
        assert_eq!(lang(None, Some("pt-BR, fr;q=0.5, es;q=0.8")), "es");
        assert_eq!(lang(None, Some("es;q=0, fr;q=0.1")), "fr");
        assert_eq!(lang(None, Some("*")), "en");
        assert_eq!(lang(None, Some(";;,q=")), "en");
        assert_eq!(lang(None, None), "en");
    }

    #[test]
    fn sentences_are_filled_and_safe_in_a_script() {
        let de = Messages { lang: "de" };
        assert_eq!(
            de.text("headline.queued_at", &[("position", "7")]),
            "Sie sind Nummer 7 in der Warteschlange"
        );
        assert!(!de.script_json().contains("</"));
    }
}
