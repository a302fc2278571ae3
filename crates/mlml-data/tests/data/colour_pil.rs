//! The colour jitter's hue part against torchvision 0.14's `adjust_hue` on PIL 9.4 images
//! (fixtures made by `tests/fixtures/make_colour_fixtures.py`): a grid of 38^3 colours and a
//! photo crop, at six factors of both signs up to the ends of the range.

use std::path::PathBuf;

use mlml_data::formats::npy;
use mlml_data::pipeline::{adjust_hue, sample_rng, ColorJitter, Transform};

fn fixture(name: &str) -> image::RgbImage {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/colour")
        .join(format!("{name}.npy"));
    let a = npy::read_f32(&path).unwrap();
    let (h, w) = (a.shape[0] as u32, a.shape[1] as u32);
    image::RgbImage::from_raw(w, h, a.values.iter().map(|v| *v as u8).collect()).unwrap()
}

#[test]
fn adjust_hue_matches_torchvision_value_for_value() {
    let index: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/colour/index.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let cases = index["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 12);
    for case in cases {
        let name = case["case"].as_str().unwrap();
        let input = fixture(case["input"].as_str().unwrap());
        let ours = adjust_hue(&input, case["factor"].as_f64().unwrap());
        let theirs = fixture(name);
        let differ = ours
            .pixels()
            .zip(theirs.pixels())
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(differ, 0, "{name}: {differ} pixels differ");
    }
}

#[test]
fn a_zero_hue_shift_is_not_the_identity_but_pils_round_trip() {
    // PIL's 8-bit HSV loses precision: a zero shift still moves some colours, as in torchvision.
    let grid = fixture("grid");
    let round_trip = adjust_hue(&grid, 0.0);
    let moved = grid
        .pixels()
        .zip(round_trip.pixels())
        .filter(|(a, b)| a != b)
        .count();
    assert!(moved > 0);
    // Greys have no hue: any shift leaves them.
    let grey = image::RgbImage::from_pixel(4, 4, image::Rgb([77, 77, 77]));
    assert_eq!(adjust_hue(&grey, 0.31), grey);
}

#[test]
fn hue_jitter_draws_both_signs_and_its_range_is_checked() {
    let photo = fixture("photo");
    let jitter = Transform {
        color_jitter: Some(ColorJitter {
            hue: 0.5,
            ..ColorJitter::default()
        }),
        ..Transform::eval(96, None)
    };
    // Against the same resize without the jitter.
    let plain = Transform::eval(96, None).apply(&photo, &mut sample_rng(0, 1, 0));
    let outs: Vec<_> = (0..40)
        .map(|row| jitter.apply(&photo, &mut sample_rng(5, 1, row)))
        .collect();
    assert!(outs.iter().all(|o| *o != plain));
    assert_eq!(outs[7], jitter.apply(&photo, &mut sample_rng(5, 1, 7)));
    // A red pixel's hue byte moves up for some rows and down (wrapping) for others.
    let red = image::RgbImage::from_pixel(2, 2, image::Rgb([200, 30, 30]));
    let small = Transform {
        color_jitter: Some(ColorJitter {
            hue: 0.2,
            ..ColorJitter::default()
        }),
        ..Transform::eval(2, None)
    };
    let (mut greener, mut bluer) = (0, 0);
    for row in 0..100 {
        let [_, g, b] = small
            .apply(&red, &mut sample_rng(3, 1, row))
            .get_pixel(0, 0)
            .0;
        greener += usize::from(g > b);
        bluer += usize::from(b > g);
    }
    assert!(greener > 20 && bluer > 20, "{greener} / {bluer}");
    for bad in [-0.1, 0.6, f64::NAN] {
        let jitter = ColorJitter {
            hue: bad,
            ..ColorJitter::default()
        };
        let message = jitter.validate().unwrap_err().to_string();
        assert!(message.contains("color_jitter.hue"), "{message}");
    }
    let negative = ColorJitter {
        brightness: -0.2,
        ..ColorJitter::default()
    };
    assert!(negative
        .validate()
        .unwrap_err()
        .to_string()
        .contains("color_jitter.brightness"));
}
