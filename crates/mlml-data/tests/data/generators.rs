//! Partial-label generators: the reference single-positive files bit for bit, and the
//! properties every generated set must have.

use mlml_data::generate::{
    drop_positives, single_positive, spml_split, DropParams, EmptyRows, SinglePositiveParams,
    SplitParams,
};
use mlml_data::rng::{shuffle, GeneratorKind, Mt19937, WordSource};
use mlml_data::{LabelMatrix, NEGATIVE, POSITIVE, UNOBSERVED};
use proptest::prelude::*;
use serde_json::Value;

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/spml_labels.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A 0/1 float matrix of the vectors as a full annotation (0 -> -1), as the script reads it.
fn full_matrix(rows: &Value) -> LabelMatrix {
    let rows = rows.as_array().unwrap();
    let c = rows[0].as_array().unwrap().len();
    let values = rows
        .iter()
        .flat_map(|r| {
            r.as_array().unwrap().iter().map(|v| {
                if v.as_f64().unwrap() == 1.0 {
                    POSITIVE
                } else {
                    NEGATIVE
                }
            })
        })
        .collect();
    LabelMatrix::new(
        (0..c).map(|j| format!("c{j}")).collect(),
        (0..rows.len()).map(|i| format!("s{i}")).collect(),
        values,
    )
    .unwrap()
}

fn observed_codes(rows: &Value) -> Vec<i8> {
    rows.as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as i8)
        })
        .collect()
}

#[test]
fn numpy_mt19937_reproduces_cole_et_al_single_positive_files() {
    let v = vectors();
    let g = &v["generator"];
    let seed = g["seed"].as_u64().unwrap();
    let params = SinglePositiveParams {
        seed,
        generator: GeneratorKind::NumpyMt19937,
        ..Default::default()
    };
    for phase in ["train", "val"] {
        let full = full_matrix(&g[format!("full_labels_{phase}")]);
        let (observed, _) = single_positive(&full, &params).unwrap();
        assert_eq!(
            observed.values(),
            observed_codes(&g[format!("script_output_{phase}")]),
            "{phase}"
        );
    }
}

struct Counting(Mt19937, usize);

impl WordSource for Counting {
    fn next_word(&mut self) -> u32 {
        self.1 += 1;
        self.0.next_word()
    }
}

#[test]
fn numpy_shuffle_matches_every_traced_call() {
    let v = vectors();
    let cases = v["generator"]["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let mut rng = Counting(
            Mt19937::new(v["generator"]["seed"].as_u64().unwrap() as u32),
            0,
        );
        for (k, call) in case["shuffle_trace"].as_array().unwrap().iter().enumerate() {
            let to_vec = |a: &Value| {
                a.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap())
                    .collect::<Vec<_>>()
            };
            let mut items = to_vec(&call["input"]);
            let before = rng.1;
            shuffle(&mut rng, &mut items);
            assert_eq!(
                items,
                to_vec(&call["output"]),
                "case {case:?}: call {k}",
                case = case["num_pos"]
            );
            assert_eq!(
                (rng.1 - before) as u64,
                call["uint32_draws"].as_u64().unwrap(),
                "call {k}"
            );
        }
    }
}

#[test]
fn mt19937_first_outputs_match_the_vector() {
    let v = vectors();
    let mut rng = Mt19937::new(v["mt19937_seed"].as_u64().unwrap() as u32);
    for expected in v["mt19937_first_uint32"].as_array().unwrap() {
        assert_eq!(u64::from(rng.next_word()), expected.as_u64().unwrap());
    }
}

/// Random label matrices: rows of 1/-1/0 with every kind of row (none positive, all positive).
fn matrices() -> impl Strategy<Value = LabelMatrix> {
    (1usize..12, 1usize..40).prop_flat_map(|(c, n)| {
        proptest::collection::vec(
            prop_oneof![3 => Just(POSITIVE), 3 => Just(NEGATIVE), 1 => Just(UNOBSERVED)],
            n * c,
        )
        .prop_map(move |values| {
            LabelMatrix::new(
                (0..c).map(|j| format!("c{j}")).collect(),
                (0..n).map(|i| format!("s{i}")).collect(),
                values,
            )
            .unwrap()
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn drop_is_deterministic(m in matrices(), ratio in 0.0f64..=1.0, seed in any::<u64>()) {
        let params = DropParams { ratio, seed, ..Default::default() };
        let (a, ra) = drop_positives(&m, &params).unwrap();
        let (b, rb) = drop_positives(&m, &params).unwrap();
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(ra, rb);
    }

    #[test]
    fn drop_meets_the_target_within_the_per_image_minimum(
        m in matrices(), ratio in 0.0f64..=1.0, min in 0usize..3, observe in 0.0f64..=1.0, seed in any::<u64>()
    ) {
        let params = DropParams { ratio, min_positives: min, observe_negatives: observe, seed };
        let (out, report) = drop_positives(&m, &params).unwrap();
        let before = m.counts();
        let target = ((1.0 - ratio) * before.positives as f64).round() as usize;
        let required: usize = m.rows().map(|r| r.iter().filter(|v| **v == POSITIVE).count().min(min)).sum();
        prop_assert_eq!(out.counts().positives, target.max(required));
        prop_assert_eq!(report.after.positives, target.max(required));
        prop_assert_eq!(out.counts().negatives, (observe * before.negatives as f64).round() as usize);
        for (old, new) in m.rows().zip(out.rows()) {
            for (o, n) in old.iter().zip(new) {
                // Nothing becomes positive that was not; no negative becomes positive.
                prop_assert!(*n != POSITIVE || *o == POSITIVE);
                prop_assert!(*n != NEGATIVE || *o == NEGATIVE);
            }
            let had = old.iter().filter(|v| **v == POSITIVE).count();
            let has = new.iter().filter(|v| **v == POSITIVE).count();
            prop_assert!(has >= had.min(min), "image lost its required positives");
        }
    }

    #[test]
    fn different_seeds_give_different_drops(seed in any::<u64>()) {
        // 200 images of 5 positives: two seeds agreeing on all 1000 choices is (practically) impossible.
        let m = LabelMatrix::new(
            (0..5).map(|j| format!("c{j}")).collect(),
            (0..200).map(|i| format!("s{i}")).collect(),
            vec![POSITIVE; 1000],
        ).unwrap();
        let a = drop_positives(&m, &DropParams { ratio: 0.5, seed, ..Default::default() }).unwrap().0;
        let b = drop_positives(&m, &DropParams { ratio: 0.5, seed: seed.wrapping_add(1), ..Default::default() }).unwrap().0;
        prop_assert_ne!(a, b);
        let params = |seed| SinglePositiveParams { seed, ..Default::default() };
        let a = single_positive(&m, &params(seed)).unwrap().0;
        let b = single_positive(&m, &params(seed.wrapping_add(1))).unwrap().0;
        prop_assert_ne!(a, b);
    }

    #[test]
    fn single_positive_keeps_exactly_one_former_positive(
        m in matrices(), seed in any::<u64>(), numpy in any::<bool>(), drop_empty in any::<bool>()
    ) {
        let params = SinglePositiveParams {
            // MT19937 takes 32-bit seeds (larger ones are refused, tested below).
            seed: if numpy { seed & u64::from(u32::MAX) } else { seed },
            generator: if numpy { GeneratorKind::NumpyMt19937 } else { GeneratorKind::Chacha8 },
            empty_rows: if drop_empty { EmptyRows::Drop } else { EmptyRows::Keep },
            ..Default::default()
        };
        let (out, report) = single_positive(&m, &params).unwrap();
        let again = single_positive(&m, &params).unwrap().0;
        prop_assert_eq!(&out, &again);
        let empty = m.rows().filter(|r| !r.contains(&POSITIVE)).count();
        prop_assert_eq!(report.empty_rows, empty);
        prop_assert_eq!(out.n_samples(), if drop_empty { m.n_samples() - empty } else { m.n_samples() });
        let mut next = 0;
        for (i, old) in m.rows().enumerate() {
            let had = old.contains(&POSITIVE);
            if drop_empty && !had { continue; }
            let new = out.row(next);
            prop_assert_eq!(&out.sample_ids()[next], &m.sample_ids()[i]);
            next += 1;
            let kept: Vec<usize> = (0..new.len()).filter(|&j| new[j] == POSITIVE).collect();
            prop_assert_eq!(kept.len(), usize::from(had));
            for j in kept { prop_assert_eq!(old[j], POSITIVE); }
            prop_assert!(!new.contains(&NEGATIVE));
        }
    }
}

fn indices(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

/// The `split` block of `spml_labels.json`: Cole et al.'s `get_data` on a 30-image toy set, at
/// subsampling fractions 1.0 and 0.5.
#[test]
fn spml_split_reproduces_the_reference_split_and_subsampling() {
    let v = vectors();
    let cases = v["split"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    for case in cases {
        let n = case["num_examples"].as_u64().unwrap() as usize;
        let params = SplitParams {
            val_frac: case["val_frac"].as_f64().unwrap(),
            seed: case["split_seed"].as_u64().unwrap(),
            subsample_seed: case["ss_seed"].as_u64().unwrap(),
            subsample_train: case["ss_frac_train"].as_f64().unwrap(),
            subsample_val: case["ss_frac_val"].as_f64().unwrap(),
        };
        let split = spml_split(n, &params).unwrap();
        assert_eq!(
            split.train,
            indices(&case["train_idx"]),
            "{params:?}: train"
        );
        assert_eq!(split.val, indices(&case["val_idx"]), "{params:?}: val");
        // Before subsampling (fraction 1.0 is the identity, though it draws).
        let whole = spml_split(
            n,
            &SplitParams {
                subsample_train: 1.0,
                subsample_val: 1.0,
                ..params.clone()
            },
        )
        .unwrap();
        assert_eq!(whole.train, indices(&case["generate_split_train_idx"]));
        assert_eq!(whole.val, indices(&case["generate_split_val_idx"]));
    }
}

#[test]
fn spml_split_partitions_the_rows_and_refuses_empty_sides() {
    for n in [3usize, 5, 10, 101, 1000] {
        let split = spml_split(n, &SplitParams::default()).unwrap();
        let mut all: Vec<usize> = split.train.iter().chain(&split.val).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..n).collect::<Vec<_>>(), "n = {n}");
        assert_eq!(split.val.len(), (0.2 * n as f64).round_ties_even() as usize);
    }
    // 0.2 * 1 rounds to 0: the reference's `perm[-0:]` would validate on every row.
    let err = spml_split(1, &SplitParams::default()).unwrap_err();
    assert!(err.to_string().contains("gives 0 validation"), "{err}");
    let err = spml_split(
        10,
        &SplitParams {
            val_frac: 1.5,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("`val_frac` must be in [0, 1]"),
        "{err}"
    );
}

/// Seeds are used whole (ChaCha8) or refused (MT19937 above 32 bits), never truncated.
#[test]
fn large_seeds_are_used_whole_or_refused() {
    let m = LabelMatrix::new(
        (0..5).map(|j| format!("c{j}")).collect(),
        (0..200).map(|i| format!("s{i}")).collect(),
        vec![POSITIVE; 1000],
    )
    .unwrap();
    let single = |seed: u64, generator| {
        single_positive(
            &m,
            &SinglePositiveParams {
                seed,
                generator,
                ..Default::default()
            },
        )
        .map(|(labels, _)| labels)
    };
    let zero = single(0, GeneratorKind::Chacha8).unwrap();
    let big = single(1 << 32, GeneratorKind::Chacha8).unwrap();
    assert_ne!(zero, big, "2^32 is not seed 0");
    let err = single(1 << 32, GeneratorKind::NumpyMt19937).unwrap_err();
    assert!(
        err.to_string()
            .contains("`seed` must be at most 4294967295 (2^32 - 1) for the numpy-mt19937 generator, got 4294967296"),
        "{err}"
    );
    assert!(single(u32::MAX as u64, GeneratorKind::NumpyMt19937).is_ok());
}
