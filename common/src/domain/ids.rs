//! String identifiers with their accepted alphabets.

use std::fmt;

use super::InvalidValue;

/// Checks that `s` is 1..=`max` characters, the first in `first`, the rest in `rest`.
fn check_chars(
    s: &str,
    max: usize,
    first: fn(char) -> bool,
    rest: fn(char) -> bool,
) -> Result<(), String> {
    let mut chars = s.chars();
    match chars.next() {
        None => Err("must not be empty".into()),
        Some(_) if s.len() > max => Err(format!("must be at most {max} characters")),
        Some(c) if !first(c) => Err(format!("must not start with {c:?}")),
        Some(_) => match chars.find(|c| !rest(*c)) {
            Some(c) => Err(format!("must not contain {c:?}")),
            None => Ok(()),
        },
    }
}

fn lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn slug(c: char) -> bool {
    lower_alnum(c) || c == '_' || c == '-'
}

fn sku_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

fn customer_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '@' | '+')
}

fn pm_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $field:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[derive(serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses a value received at a boundary.
            pub fn parse(value: impl Into<String>) -> Result<Self, InvalidValue> {
                let value = value.into();
                let check: fn(&str) -> Result<(), String> = $check;
                check(&value).map_err(|reason| InvalidValue::new($field, reason))?;
                Ok(Self(value))
            }

            /// The value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        // A TEXT column: bound as its text, and read back through `parse`, so a value
        // that does not parse fails the query instead of entering the program.
        impl sqlx::Type<sqlx::Postgres> for $name {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <String as sqlx::Type<sqlx::Postgres>>::type_info()
            }

            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <String as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        impl sqlx::postgres::PgHasArrayType for $name {
            fn array_type_info() -> sqlx::postgres::PgTypeInfo {
                <String as sqlx::postgres::PgHasArrayType>::array_type_info()
            }
        }

        impl sqlx::Encode<'_, sqlx::Postgres> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<sqlx::Postgres>>::encode(self.0.as_str(), buf)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $name {
            fn decode(
                value: sqlx::postgres::PgValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <String as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
                Ok(Self::parse(text)?)
            }
        }
    };
}

string_id!(
    /// A sale's id: lowercase letters, digits, `_` and `-`, at most 64 characters.
    SaleId, "sale_id", |s| check_chars(s, 64, lower_alnum, slug)
);
string_id!(
    /// A product's stock-keeping unit: letters, digits, `.`, `_`, `-`, at most 64.
    Sku, "sku", |s| check_chars(s, 64, |c| c.is_ascii_alphanumeric(), sku_char)
);
string_id!(
    /// A product category: the same alphabet as a sale id.
    Category, "category", |s| check_chars(s, 64, lower_alnum, slug)
);
string_id!(
    /// The shop's id for a customer: letters, digits and `._-:@+`, at most 128.
    CustomerId, "customer_id", |s| check_chars(s, 128, customer_char, customer_char)
);
string_id!(
    /// A Stripe PaymentMethod id such as `pm_card_visa`.
    PaymentMethodId, "payment_method", |s| match s.strip_prefix("pm_") {
        Some(rest) => check_chars(rest, 120, pm_char, pm_char),
        None => Err("must be a Stripe PaymentMethod id (pm_…)".into()),
    }
);
string_id!(
    /// An ISO 4217 currency code, lowercase as Stripe writes it.
    Currency, "currency", |s| {
        if s.len() == 3 && s.chars().all(|c| c.is_ascii_lowercase()) {
            Ok(())
        } else {
            Err("must be a three-letter lowercase ISO 4217 code".into())
        }
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sale_ids_accept_slugs_and_refuse_everything_else() {
        assert!(SaleId::parse("drop-2026_11").is_ok());
        for bad in ["", "-x", "Drop", "a b", "a/b", &"x".repeat(65)] {
            assert!(SaleId::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn payment_methods_must_look_like_stripe_ids() {
        assert!(PaymentMethodId::parse("pm_card_visa").is_ok());
        assert!(PaymentMethodId::parse("card_visa").is_err());
        assert!(PaymentMethodId::parse("pm_").is_err());
        assert!(PaymentMethodId::parse("pm_x y").is_err());
    }

    #[tokio::test]
    async fn ids_read_from_postgres_go_through_parse_and_bind_as_text() {
        use sqlx::Connection;
        let server = std::env::var("FLASHGATE_TEST_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
        let mut db = sqlx::PgConnection::connect(&format!("{server}/postgres"))
            .await
            .unwrap();
        let good: SaleId = sqlx::query_scalar("SELECT 'drop-1'::text")
            .fetch_one(&mut db)
            .await
            .unwrap();
        assert_eq!(good.as_str(), "drop-1");
        let bad = sqlx::query_scalar::<_, SaleId>("SELECT 'Not A Sale'::text")
            .fetch_one(&mut db)
            .await;
        assert!(
            matches!(bad, Err(sqlx::Error::ColumnDecode { .. })),
            "{bad:?}"
        );
        let echoed: Vec<SaleId> = sqlx::query_scalar("SELECT unnest($1::text[])")
            .bind(vec![good.clone(), SaleId::parse("drop-2").unwrap()])
            .fetch_all(&mut db)
            .await
            .unwrap();
        assert_eq!(echoed, [good, SaleId::parse("drop-2").unwrap()]);
    }

    #[test]
    fn ids_deserialize_through_parse() {
        let err = serde_json::from_str::<CustomerId>("\"a b\"").unwrap_err();
        assert!(err.to_string().contains("customer_id"));
        let ok: Currency = serde_json::from_str("\"eur\"").unwrap();
        assert_eq!(ok.as_str(), "eur");
    }
}
