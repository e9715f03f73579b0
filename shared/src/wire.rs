//! Serde helpers that make request bodies read JSON as openapi.yaml's JSON
//! Schema does, where serde's defaults differ: `integer` admits `60.0`, and an
//! optional field that is not `nullable` refuses `null` instead of reading it
//! as absent. Use with `#[serde(default, deserialize_with = "...")]` on
//! `Option` fields (`default` keeps an absent field `None`).

use serde::Deserialize;
use serde::de::{Deserializer, Error, Unexpected};

/// A JSON number that is a whole number, written `60` or `60.0` alike.
#[derive(Deserialize)]
#[serde(untagged)]
enum Number {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
}

/// An unsigned integer field (JSON Schema `integer`): integral floats such as
/// `60.0` are that integer; `60.5`, negatives and values past `T` are refused.
pub fn integer<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    let n = match Number::deserialize(d)
        .map_err(|_| D::Error::custom("invalid type: expected an integer"))?
    {
        Number::Unsigned(n) => n,
        Number::Signed(n) => {
            return Err(D::Error::invalid_value(
                Unexpected::Signed(n),
                &"a non-negative integer",
            ));
        }
        // 2^64 as f64 is the first float past u64::MAX.
        Number::Float(f)
            if f.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&f) =>
        {
            f as u64
        }
        Number::Float(f) => {
            return Err(D::Error::invalid_value(Unexpected::Float(f), &"an integer"));
        }
    };
    T::try_from(n)
        .map_err(|_| D::Error::invalid_value(Unexpected::Unsigned(n), &"a smaller integer"))
}

/// [`integer`] in JSON; in a binary format (postcard: a test's live state,
/// which cannot describe itself to [`integer`]), the plain integer it wrote.
pub fn stored_integer<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64> + Deserialize<'de>,
{
    if d.is_human_readable() {
        integer(d)
    } else {
        T::deserialize(d)
    }
}

/// An optional, non-nullable integer field: absent is `None`, `null` refused.
pub fn some_integer<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    integer(d).map(Some)
}

/// A field whose schema is an `object`: a JSON object only. A derived struct
/// would read an array too, its fields in order (`[]` for one whose fields
/// are all optional).
pub fn object<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Object<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Object<T> {
        type Value = T;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_map(Object(std::marker::PhantomData))
}

/// [`object`], optional and not nullable (as [`some`]).
pub fn some_object<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    object(d).map(Some)
}

/// An optional, non-nullable field: absent is `None` (with `#[serde(default)]`),
/// `null` refused like any value of the wrong type (422, whatever `T` is: an
/// enum would otherwise call it a syntax error).
pub fn some<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    match Option::<T>::deserialize(d)? {
        Some(value) => Ok(Some(value)),
        None => Err(D::Error::invalid_type(
            Unexpected::Unit,
            &"a value (the field is not nullable; leave it out instead)",
        )),
    }
}

/// An optional, nullable field (`T` an `Option`): an explicit `null`
/// (`Some(None)`) is not an absent field (`None`: the default).
pub fn nullable<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(deserialize_with = "super::integer")]
        n: u32,
        #[serde(default, deserialize_with = "super::some_integer")]
        m: Option<u64>,
        #[serde(default, deserialize_with = "super::some")]
        s: Option<String>,
        #[serde(default, deserialize_with = "super::nullable")]
        t: Option<Option<f64>>,
    }

    fn read(json: &str) -> Result<Body, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn integral_floats_are_integers_and_fractions_are_not() {
        assert_eq!(read(r#"{"n": 60.0, "m": 7.0}"#).unwrap().n, 60);
        assert_eq!(read(r#"{"n": 60, "m": 7.0}"#).unwrap().m, Some(7));
        assert_eq!(read(r#"{"n": 60}"#).unwrap().m, None);
        for bad in [
            r#"{"n": 60.5}"#,
            r#"{"n": -1}"#,
            r#"{"n": -1.0}"#,
            r#"{"n": 4294967296}"#,
            r#"{"n": 1e300}"#,
            r#"{"n": "60"}"#,
            r#"{"n": null}"#,
        ] {
            assert!(read(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn null_is_not_absent() {
        assert!(read(r#"{"n": 1, "m": null}"#).is_err());
        assert!(read(r#"{"n": 1, "s": null}"#).is_err());
        assert_eq!(
            read(r#"{"n": 1, "s": "x"}"#).unwrap().s.as_deref(),
            Some("x")
        );
        assert_eq!(read(r#"{"n": 1, "t": null}"#).unwrap().t, Some(None));
        assert_eq!(read(r#"{"n": 1, "t": 0.3}"#).unwrap().t, Some(Some(0.3)));
        assert_eq!(read(r#"{"n": 1}"#).unwrap().t, None);
    }
}
