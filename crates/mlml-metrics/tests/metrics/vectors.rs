//! The reference vectors: `map_asl.json` (ranked AP of the ASL / Hill / SPLC code) and
//! `cole_metrics.json` (sklearn AP and the top-k figures of Cole et al.), both produced by running
//! the original Python code (NumPy 1.24.2, sklearn 1.2.1). Every case a file holds is checked.
#![allow(clippy::needless_range_loop)] // indexing parallel arrays by class reads clearest here

use mlml_data::LabelMatrix;
use mlml_metrics::{at_k, mean_average_precision, ranked_ap_sorted, ApDefinition, MapOptions};
use mlml_testing::{assert_close, Tolerance};
use serde_json::Value;

const TOL: Tolerance = Tolerance::absolute(1e-6);

fn load(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn matrix_f32(v: &Value) -> (Vec<f32>, usize, usize) {
    let rows = v.as_array().unwrap();
    let c = rows[0].as_array().unwrap().len();
    let data = rows
        .iter()
        .flat_map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
        })
        .collect();
    (data, rows.len(), c)
}

/// The references read any target other than 1 as a negative.
fn reference_labels(v: &Value) -> LabelMatrix {
    let (data, n, c) = matrix_f32(v);
    let codes = data
        .iter()
        .map(|x| if *x == 1.0 { 1 } else { -1 })
        .collect();
    LabelMatrix::new(
        (0..c).map(|j| format!("c{j}")).collect(),
        (0..n).map(|i| format!("s{i}")).collect(),
        codes,
    )
    .unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn ranked_ap_matches_asl_reference() {
    let v = load("map_asl.json");
    let (scores, _, c) = matrix_f32(&v["inputs"]["scores"]);
    let labels = reference_labels(&v["inputs"]["targets"]);
    let report = mean_average_precision(&scores, &labels, MapOptions::default()).unwrap();
    let stable = floats(&v["outputs"]["per_class_ap_stable_desc_ties_higher_index_first"]);
    let reference = floats(&v["outputs"]["per_class_ap"]);
    let tie_sensitive: Vec<bool> = v["outputs"]["tie_sensitive_class"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_bool().unwrap())
        .collect();
    for j in 0..c {
        // Our tie convention (descending index) is the vector's "stable" column; where ties do
        // not matter it is the reference value itself.
        assert_close(
            format!("class {j} (our tie convention)"),
            report.per_class[j].ap,
            stable[j],
            TOL,
        );
        if !tie_sensitive[j] {
            assert_close(
                format!("class {j}"),
                report.per_class[j].ap,
                reference[j],
                TOL,
            );
        }
    }
    let mean_stable = 100.0 * stable.iter().sum::<f64>() / c as f64;
    assert_close("mAP", report.map, mean_stable, TOL);
    assert_eq!(
        report.empty_classes, 1,
        "class 4 has no positive and counts as 0"
    );
}

#[test]
fn ranked_formula_on_numpys_order_gives_the_reference_exactly() {
    let v = load("map_asl.json");
    let labels = reference_labels(&v["inputs"]["targets"]);
    let reference = floats(&v["outputs"]["per_class_ap"]);
    let orders = v["outputs"]["numpy_sort_order_used"].as_array().unwrap();
    let mut sum = 0.0;
    for (j, order) in orders.iter().enumerate() {
        let order: Vec<usize> = order
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_u64().unwrap() as usize)
            .collect();
        let positives = (0..labels.n_samples())
            .filter(|&i| labels.row(i)[j] == 1)
            .count();
        let ap = ranked_ap_sorted(order.iter().map(|&i| labels.row(i)[j] == 1), positives);
        assert_eq!(ap, reference[j], "class {j}");
        sum += ap;
    }
    assert_close(
        "mAP",
        100.0 * sum / orders.len() as f64,
        v["outputs"]["mAP_times_100"].as_f64().unwrap(),
        TOL,
    );
}

#[test]
fn sklearn_ap_matches_on_the_asl_vector_too() {
    let v = load("map_asl.json");
    let (scores, _, c) = matrix_f32(&v["inputs"]["scores"]);
    let labels = reference_labels(&v["inputs"]["targets"]);
    let options = MapOptions {
        definition: ApDefinition::Sklearn,
        skip_empty: false,
    };
    let report = mean_average_precision(&scores, &labels, options).unwrap();
    let expected = &v["outputs"]["sklearn_average_precision_score_for_comparison"];
    let expected: Vec<Option<f64>> = expected
        .as_array()
        .unwrap()
        .iter()
        .map(Value::as_f64)
        .collect();
    for j in 0..c {
        // sklearn itself gives NaN-with-a-warning (null here) for a class with no positive; the
        // single-positive line's rule, which we follow, is 0.
        match expected[j] {
            Some(ap) => assert_close(format!("class {j}"), report.per_class[j].ap, ap, TOL),
            None => assert_eq!(report.per_class[j].ap, 0.0),
        }
    }
}

/// Every (preds, targets) case of `cole_metrics.json` with its expected AP and `compute_metrics`.
fn cole_cases(v: &Value) -> Vec<(&str, &Value, &Value, &Value, &Value)> {
    vec![
        (
            "main",
            &v["preds"],
            &v["targets"],
            &v["average_precision_per_class"],
            &v["compute_metrics_full"],
        ),
        // Cole's `compute_metrics` reads every label other than 1 as negative, so on the
        // observed targets it reports what it reports on the full ones; the mlml reading of
        // unobserved entries (left out) is tested against removal in the next test.
        (
            "observed, read as Cole does",
            &v["preds"],
            &v["observed_targets"],
            &v["average_precision_per_class"],
            &v["compute_metrics_observed"],
        ),
        (
            "random",
            &v["random_case"]["preds"],
            &v["random_case"]["targets"],
            &v["random_case"]["average_precision_per_class"],
            &v["random_case"]["compute_metrics"],
        ),
    ]
}

#[test]
fn sklearn_ap_and_top_k_match_cole_reference() {
    let v = load("cole_metrics.json");
    for (name, preds, targets, ap, metrics) in cole_cases(&v) {
        let (scores, _, c) = matrix_f32(preds);
        let labels = reference_labels(targets);
        let options = MapOptions {
            definition: ApDefinition::Sklearn,
            skip_empty: false,
        };
        let report = mean_average_precision(&scores, &labels, options).unwrap();
        let expected = floats(ap);
        for j in 0..c {
            assert_close(
                format!("{name}: class {j}"),
                report.per_class[j].ap,
                expected[j],
                TOL,
            );
        }
        assert_close(
            format!("{name}: map"),
            report.map,
            metrics["map"].as_f64().unwrap(),
            TOL,
        );
        for k in [1, 3, 5] {
            let got = at_k(&scores, &labels, k).unwrap();
            assert_close(
                format!("{name}: prec@{k}"),
                got.precision,
                metrics[format!("prec_at_{k}")].as_f64().unwrap(),
                TOL,
            );
            assert_close(
                format!("{name}: rec@{k}"),
                got.recall,
                metrics[format!("rec_at_{k}")].as_f64().unwrap(),
                TOL,
            );
            assert_close(
                format!("{name}: top_{k}"),
                got.top_k,
                metrics[format!("top_{k}")].as_f64().unwrap(),
                TOL,
            );
        }
    }
}

#[test]
fn per_sample_top_k_matches_including_ties_and_empty_rows() {
    let v = load("cole_metrics.json");
    let (scores, n, _) = matrix_f32(&v["preds"]);
    let labels = reference_labels(&v["targets"]);
    for (k, expected) in v["top_k"].as_object().unwrap() {
        let k: usize = k.parse().unwrap();
        let precision = floats(&expected["precision"]);
        let recall = floats(&expected["recall"]);
        for i in 0..n {
            let row = LabelMatrix::new(
                labels.classes().to_vec(),
                vec!["x".into()],
                labels.row(i).to_vec(),
            )
            .unwrap();
            let got = at_k(
                &scores[i * row.n_classes()..(i + 1) * row.n_classes()],
                &row,
                k,
            )
            .unwrap();
            assert_close(
                format!("sample {i} prec@{k}"),
                got.precision,
                precision[i],
                TOL,
            );
            assert_close(format!("sample {i} rec@{k}"), got.recall, recall[i], TOL);
        }
    }
    for case in v["top_k_extra"].as_array().unwrap() {
        let preds: Vec<f32> = floats(&case["preds"]).iter().map(|x| *x as f32).collect();
        let codes = floats(&case["targets"])
            .iter()
            .map(|t| if *t == 1.0 { 1 } else { -1 })
            .collect();
        let c = preds.len();
        let row = LabelMatrix::new(
            (0..c).map(|j| format!("c{j}")).collect(),
            vec!["x".into()],
            codes,
        )
        .unwrap();
        for (k, expected) in case["precision"].as_object().unwrap() {
            let got = at_k(&preds, &row, k.parse().unwrap()).unwrap();
            assert_close(
                format!("{}: prec@{k}", case["what"]),
                got.precision,
                expected.as_f64().unwrap(),
                TOL,
            );
            assert_close(
                format!("{}: rec@{k}", case["what"]),
                got.recall,
                case["recall"][k].as_f64().unwrap(),
                TOL,
            );
        }
    }
}

/// The observed targets of `cole_metrics.json` (1 / -1 / 0) read with mlml's convention: an
/// unobserved entry is left out of its class's AP, which must equal the AP of the class with
/// those rows removed (a second code path, with fully observed labels).
#[test]
fn unobserved_entries_are_left_out_as_if_removed() {
    let v = load("cole_metrics.json");
    let (scores, n, c) = matrix_f32(&v["preds"]);
    let (codes, _, _) = matrix_f32(&v["observed_targets"]);
    let codes: Vec<i8> = codes.iter().map(|x| *x as i8).collect();
    let unobserved = codes.iter().filter(|x| **x == 0).count();
    assert!(unobserved > 0, "the case has unobserved entries");
    let labels = LabelMatrix::new(
        (0..c).map(|j| format!("c{j}")).collect(),
        (0..n).map(|i| format!("s{i}")).collect(),
        codes.clone(),
    )
    .unwrap();
    let mut differs_from_cole = false;
    for definition in [ApDefinition::Sklearn, ApDefinition::Ranked] {
        let options = MapOptions {
            definition,
            skip_empty: false,
        };
        let report = mean_average_precision(&scores, &labels, options).unwrap();
        assert_eq!(report.unobserved_left_out, unobserved);
        let cole = floats(&v["average_precision_per_class"]);
        for j in 0..c {
            let kept: Vec<usize> = (0..n).filter(|&i| codes[i * c + j] != 0).collect();
            let column_scores: Vec<f32> = kept.iter().map(|&i| scores[i * c + j]).collect();
            let column = LabelMatrix::new(
                vec!["c".into()],
                kept.iter().map(|i| format!("s{i}")).collect(),
                kept.iter().map(|&i| codes[i * c + j]).collect(),
            )
            .unwrap();
            let removed = mean_average_precision(&column_scores, &column, options).unwrap();
            assert_eq!(
                report.per_class[j].ap, removed.per_class[0].ap,
                "{definition:?} class {j}"
            );
            if definition == ApDefinition::Sklearn
                && (report.per_class[j].ap - cole[j]).abs() > 1e-9
            {
                differs_from_cole = true;
            }
        }
    }
    assert!(
        differs_from_cole,
        "leaving entries out changes some class's AP"
    );
}

/// `numpy_sum` against `np.sum` of NumPy 1.24 on arrays of every length from 1 to 1,000 and of
/// lengths across its 8192-element reduction blocks (`tests/vectors/make_numpy_sums.py` made
/// `numpy_sums.json`; the inputs are recomputed here from the script's formula): equal to the
/// last bit.
#[test]
fn numpy_sum_equals_np_sum_bit_for_bit_for_every_length() {
    let v = load("numpy_sums.json");
    let sums = v["sums"].as_array().unwrap();
    let lengths = v["lengths"].as_array().unwrap();
    assert_eq!(sums.len(), 1009);
    const PRIME: u64 = 4_294_967_291;
    const SCALES: [f64; 7] = [1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3];
    let mut mismatches = Vec::new();
    for (length, expected) in lengths.iter().zip(sums) {
        let length = length.as_u64().unwrap() as usize;
        let values: Vec<f64> = (0..length as u64)
            .map(|k| {
                let h = (k * 2_654_435_761 + length as u64 * 40_503) % PRIME;
                (h as f64 / PRIME as f64) * SCALES[((k as usize) * 5 + length) % 7]
            })
            .collect();
        let expected: f64 = expected.as_str().unwrap().parse().unwrap();
        let got = mlml_metrics::numpy_sum(&values);
        if got.to_bits() != expected.to_bits() {
            mismatches.push((length, got, expected));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} lengths differ, e.g. {:?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(5)]
    );
}
