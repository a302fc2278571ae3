//! `f64` figures in JSON that survive being non-finite: serde_json writes NaN and the
//! infinities as `null`, which it then refuses to read back as a number, so a run whose
//! validation mAP was NaN once could not be resumed. These write them as the strings `"NaN"`,
//! `"inf"` and `"-inf"` and read back numbers, those strings, or `null` (as NaN).

use serde::de::{self, Deserializer, Visitor};
use serde::Serializer;

pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    if value.is_finite() {
        serializer.serialize_f64(*value)
    } else if value.is_nan() {
        serializer.serialize_str("NaN")
    } else if *value > 0.0 {
        serializer.serialize_str("inf")
    } else {
        serializer.serialize_str("-inf")
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    deserializer.deserialize_any(FigureVisitor)
}

struct FigureVisitor;

impl<'de> Visitor<'de> for FigureVisitor {
    type Value = f64;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a number, \"NaN\", \"inf\" or \"-inf\"")
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_unit<E: de::Error>(self) -> Result<f64, E> {
        Ok(f64::NAN)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        match v {
            "NaN" => Ok(f64::NAN),
            "inf" => Ok(f64::INFINITY),
            "-inf" => Ok(f64::NEG_INFINITY),
            other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
        }
    }
}

pub mod option {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<f64>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => super::serialize(v, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<f64>, D::Error> {
        #[derive(Deserialize)]
        struct Figure(#[serde(with = "super")] f64);
        Ok(Option::<Figure>::deserialize(deserializer)?.map(|f| f.0))
    }
}

#[cfg(test)]
mod tests {
    use crate::EpochRecord;

    #[test]
    fn non_finite_figures_are_written_as_strings_and_read_back() {
        let record = EpochRecord {
            epoch: 2,
            train_loss: 0.25,
            val_map: f64::NAN,
            val_map_ranked: f64::INFINITY,
            lr: 1e-3,
            val_map_ema: Some(f64::NEG_INFINITY),
            loss_note: None,
        };
        let text = serde_json::to_string(&record).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        for (key, written) in [
            ("val_map", "NaN"),
            ("val_map_ranked", "inf"),
            ("val_map_ema", "-inf"),
        ] {
            assert_eq!(value[key], written, "{text}");
        }
        let back: EpochRecord = serde_json::from_str(&text).unwrap();
        assert!(back.val_map.is_nan());
        assert_eq!(back.val_map_ranked, f64::INFINITY);
        assert_eq!(back.val_map_ema, Some(f64::NEG_INFINITY));
        assert_eq!(back.train_loss, 0.25);
        // What an earlier version wrote for a NaN.
        let old = text.replace("\"NaN\"", "null");
        let back: EpochRecord = serde_json::from_str(&old).unwrap();
        assert!(back.val_map.is_nan());
        let none: EpochRecord =
            serde_json::from_str(&text.replace(",\"val_map_ema\":\"-inf\"", "")).unwrap();
        assert_eq!(none.val_map_ema, None);
    }
}
