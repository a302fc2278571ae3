//! Properties every AP and P/R/F1 must have, and the errors for bad input.

use mlml_data::LabelMatrix;
use mlml_metrics::{
    evaluate, mean_average_precision, precision_recall_f1, ApDefinition, MapOptions, MetricsError,
    PredictionRule,
};
use proptest::prelude::*;

fn column(codes: Vec<i8>) -> LabelMatrix {
    let n = codes.len();
    LabelMatrix::new(
        vec!["c".into()],
        (0..n).map(|i| format!("s{i}")).collect(),
        codes,
    )
    .unwrap()
}

fn both() -> [MapOptions; 2] {
    [ApDefinition::Ranked, ApDefinition::Sklearn].map(|definition| MapOptions {
        definition,
        skip_empty: false,
    })
}

fn matrices() -> impl Strategy<Value = (Vec<f32>, LabelMatrix)> {
    (1usize..6, 1usize..30).prop_flat_map(|(c, n)| {
        (
            proptest::collection::vec(prop_oneof![0.0f32..1.0, Just(0.5f32), Just(0.25f32)], n * c),
            proptest::collection::vec(prop_oneof![Just(1i8), Just(-1i8), Just(0i8)], n * c),
        )
            .prop_map(move |(scores, codes)| {
                let labels = LabelMatrix::new(
                    (0..c).map(|j| format!("c{j}")).collect(),
                    (0..n).map(|i| format!("s{i}")).collect(),
                    codes,
                )
                .unwrap();
                (scores, labels)
            })
    })
}

proptest! {
    #[test]
    fn ap_is_in_unit_interval((scores, labels) in matrices()) {
        for options in both() {
            let report = mean_average_precision(&scores, &labels, options).unwrap();
            for class in &report.per_class {
                prop_assert!((0.0..=1.0).contains(&class.ap), "{}", class.ap);
            }
            prop_assert!((0.0..=100.0).contains(&report.map));
        }
    }

    #[test]
    fn perfect_ranking_gives_one(codes in proptest::collection::vec(prop_oneof![Just(1i8), Just(-1i8)], 1..50)) {
        prop_assume!(codes.contains(&1));
        let scores: Vec<f32> = codes.iter().enumerate().map(|(i, c)| if *c == 1 { 2.0 + i as f32 } else { -(i as f32) }).collect();
        for options in both() {
            let ap = mean_average_precision(&scores, &column(codes.clone()), options).unwrap().per_class[0].ap;
            prop_assert!((ap - 1.0).abs() < 1e-6, "{ap}");
        }
    }

    #[test]
    fn one_positive_ranked_last_gives_one_over_n(n in 1usize..200) {
        let mut codes = vec![-1i8; n];
        codes[n - 1] = 1;
        let scores: Vec<f32> = (0..n).map(|i| (n - i) as f32).collect();
        for options in both() {
            let ap = mean_average_precision(&scores, &column(codes.clone()), options).unwrap().per_class[0].ap;
            prop_assert!((ap - 1.0 / n as f64).abs() < 1e-6);
        }
    }

    #[test]
    fn permuting_samples_keeps_ap_without_ties(
        codes in proptest::collection::vec(prop_oneof![Just(1i8), Just(-1i8), Just(0i8)], 2..40), seed in any::<u64>()
    ) {
        // Distinct scores: then the order of the samples cannot matter.
        let n = codes.len();
        let scores: Vec<f32> = (0..n).map(|i| ((i as u64 * 2_654_435_761 + seed) % 1_000_003) as f32 + i as f32 / n as f32).collect();
        let mut perm: Vec<usize> = (0..n).collect();
        perm.sort_by_key(|&i| (i as u64).wrapping_mul(seed | 1).rotate_left(17));
        let permuted_scores: Vec<f32> = perm.iter().map(|&i| scores[i]).collect();
        let permuted_codes: Vec<i8> = perm.iter().map(|&i| codes[i]).collect();
        for options in both() {
            let a = mean_average_precision(&scores, &column(codes.clone()), options).unwrap();
            let b = mean_average_precision(&permuted_scores, &column(permuted_codes.clone()), options).unwrap();
            prop_assert!((a.map - b.map).abs() < 1e-9);
        }
    }

    #[test]
    fn f1s_are_harmonic_means((scores, labels) in matrices(), k in 1usize..4) {
        for selection in [PredictionRule::default(), PredictionRule::TopK(k.min(labels.n_classes()))] {
            let r = precision_recall_f1(&scores, &labels, selection).unwrap();
            let h = |a: f64, b: f64| if a + b > 0.0 { 2.0 * a * b / (a + b) } else { 0.0 };
            prop_assert!((r.cf1 - h(r.cp, r.cr)).abs() < 1e-9);
            prop_assert!((r.of1 - h(r.op, r.or)).abs() < 1e-9);
        }
    }

    /// Classes are scored in parallel: one thread and two give the same report, ties included.
    #[test]
    fn thread_count_does_not_change_the_report_with_ties((scores, labels) in matrices()) {
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| evaluate(&scores, &labels, MapOptions::default(), PredictionRule::default()).unwrap())
        };
        prop_assert_eq!(run(1), run(2));
    }
}

#[test]
fn unobserved_truth_is_left_out_and_counted() {
    // Unobserved sample 1 has the top score; leaving it out makes the ranking perfect.
    let labels = column(vec![1, 0, -1]);
    let report = mean_average_precision(&[0.8, 0.9, 0.1], &labels, MapOptions::default()).unwrap();
    assert!((report.per_class[0].ap - 1.0).abs() < 1e-6);
    assert_eq!(report.unobserved_left_out, 1);
    let prf = precision_recall_f1(&[0.8, 0.9, 0.1], &labels, PredictionRule::default()).unwrap();
    assert_eq!(
        (
            prf.per_class[0].tp,
            prf.per_class[0].fp,
            prf.unobserved_left_out
        ),
        (1, 0, 1)
    );
}

#[test]
fn empty_classes_count_as_zero_or_are_skipped() {
    let labels = LabelMatrix::new(
        vec!["a".into(), "b".into()],
        vec!["x".into(), "y".into()],
        vec![1, -1, -1, -1],
    )
    .unwrap();
    let scores = [0.9, 0.1, 0.2, 0.3];
    for definition in [ApDefinition::Ranked, ApDefinition::Sklearn] {
        let kept = mean_average_precision(
            &scores,
            &labels,
            MapOptions {
                definition,
                skip_empty: false,
            },
        )
        .unwrap();
        assert!(
            (kept.map - 50.0).abs() < 1e-5,
            "{definition:?}: {}",
            kept.map
        );
        assert_eq!(kept.empty_classes, 1);
        let skipped = mean_average_precision(
            &scores,
            &labels,
            MapOptions {
                definition,
                skip_empty: true,
            },
        )
        .unwrap();
        assert!((skipped.map - 100.0).abs() < 1e-5);
    }
}

#[test]
fn thresholded_metrics_by_hand() {
    // class 0: tp 1, fp 1, fn 0 -> P 50, R 100; class 1: tp 0, fn 1 -> P 0, R 0.
    let labels = LabelMatrix::new(
        vec!["a".into(), "b".into()],
        vec!["x".into(), "y".into()],
        vec![1, 1, -1, -1],
    )
    .unwrap();
    let r = precision_recall_f1(&[0.9, 0.5, 0.7, 0.2], &labels, PredictionRule::default()).unwrap();
    assert_eq!((r.cp, r.cr), (25.0, 50.0));
    assert!((r.cf1 - 100.0 / 3.0).abs() < 1e-9);
    assert!((r.mean_class_f1 - 100.0 / 3.0).abs() < 1e-9); // F1 of class 0 is 66.7, class 1 is 0
    assert_eq!((r.op, r.or), (50.0, 50.0));
    // 0.5 is not "> 0.5" but is ">= 0.5".
    let r = precision_recall_f1(
        &[0.9, 0.5, 0.7, 0.2],
        &labels,
        PredictionRule::Threshold {
            value: 0.5,
            strict: false,
        },
    )
    .unwrap();
    assert_eq!(r.per_class[1].tp, 1);
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let labels = column(vec![1, -1]);
    assert!(matches!(
        mean_average_precision(&[0.1], &labels, MapOptions::default()),
        Err(MetricsError::ShapeMismatch {
            scores: 1,
            n_samples: 2,
            n_classes: 1
        })
    ));
    let err = mean_average_precision(&[0.1, f32::NAN], &labels, MapOptions::default()).unwrap_err();
    assert_eq!(err.to_string(), "score at sample 1, class 0 is NaN");
    let empty = LabelMatrix::new(vec!["c".into()], vec![], vec![]).unwrap();
    assert_eq!(
        mean_average_precision(&[], &empty, MapOptions::default()).unwrap_err(),
        MetricsError::Empty
    );
    assert!(precision_recall_f1(&[0.1, 0.2], &labels, PredictionRule::TopK(2)).is_err());
}

/// Both APs of one class the plain way: indices sorted with a float comparator (descending
/// score, ties by descending index), precision summed at each positive, and sklearn's
/// thresholds walked over distinct scores.
fn plain_aps(scores: &[f32], codes: &[i8], c: usize, class: usize) -> (f64, f64) {
    let mut rows: Vec<usize> = (0..codes.len() / c)
        .filter(|&i| codes[i * c + class] != 0)
        .collect();
    rows.sort_by(|&a, &b| {
        let (sa, sb) = (scores[a * c + class] + 0.0, scores[b * c + class] + 0.0);
        sb.total_cmp(&sa).then(b.cmp(&a))
    });
    let positives = rows.iter().filter(|&&i| codes[i * c + class] == 1).count();
    let (mut hits, mut ranked) = (0usize, 0.0f64);
    for (rank, &i) in rows.iter().enumerate() {
        if codes[i * c + class] == 1 {
            hits += 1;
            ranked += hits as f64 / (rank + 1) as f64;
        }
    }
    let ranked = ranked / (positives as f64 + 1e-8);
    let mut sklearn = 0.0f64;
    if positives > 0 {
        let (mut tp, mut last_recall) = (0usize, 0.0f64);
        for (rank, &i) in rows.iter().enumerate() {
            tp += usize::from(codes[i * c + class] == 1);
            let score = scores[i * c + class] + 0.0;
            let last_of_threshold = rows
                .get(rank + 1)
                .is_none_or(|&next| scores[next * c + class] + 0.0 != score);
            if last_of_threshold {
                let recall = tp as f64 / positives as f64;
                sklearn += (recall - last_recall) * tp as f64 / (rank + 1) as f64;
                last_recall = recall;
            }
        }
    }
    (ranked, sklearn)
}

/// Scores over the whole float range (negative, tiny, huge, signed zeros) and a few repeated
/// values, so that every radix digit varies and ties are common.
fn wide_score() -> impl Strategy<Value = f32> {
    prop_oneof![
        -1e6f32..1e6,
        -1.0f32..1.0,
        Just(0.0f32),
        Just(-0.0f32),
        Just(0.5f32),
        Just(-3.0f32),
        Just(f32::INFINITY),
        Just(1e-38f32),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The radix-sorted, class-grouped mAP gives every class's AP as the plain sort does, for
    /// both definitions, across class groups (up to 40 classes) and hundreds of rows.
    #[test]
    fn per_class_aps_equal_a_plain_comparison_sort(
        (c, scores, codes) in (1usize..40, 1usize..700).prop_flat_map(|(c, n)| (
            Just(c),
            proptest::collection::vec(wide_score(), n * c),
            proptest::collection::vec(prop_oneof![Just(1i8), Just(-1i8), Just(-1i8), Just(0i8)], n * c),
        ))
    ) {
        let n = codes.len() / c;
        let labels = LabelMatrix::new(
            (0..c).map(|j| format!("c{j}")).collect(),
            (0..n).map(|i| format!("s{i}")).collect(),
            codes.clone(),
        )
        .unwrap();
        let [ranked, sklearn] = both().map(|o| mean_average_precision(&scores, &labels, o).unwrap());
        for class in 0..c {
            let (r, s) = plain_aps(&scores, &codes, c, class);
            let (got_r, got_s) = (ranked.per_class[class].ap, sklearn.per_class[class].ap);
            prop_assert!((got_r - r).abs() <= 1e-12 * r.abs().max(1.0), "class {}: ranked {} vs {}", class, got_r, r);
            prop_assert!((got_s - s).abs() <= 1e-12 * s.abs().max(1.0), "class {}: sklearn {} vs {}", class, got_s, s);
        }
    }
}
