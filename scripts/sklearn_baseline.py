"""One-vs-rest logistic regression (scikit-learn defaults) on the embedded feature sets.

The orientation point of `cargo xtask reproduce yeast-*` / `scene-*`: standardise on the
training rows, fit one LogisticRegression per class (C = 1), report the test mAP
(average_precision_score, macro over classes, in percent) with full labels, once on the whole
training file and once on the 80 % that mlml trains on (the same held-out 20 % is mlml's
validation split, which this script does not reproduce exactly: it uses every row or a
NumPy-permuted 80 %; the figure is an orientation, not a bit-for-bit twin).

Run: /usr/bin/python3 scripts/sklearn_baseline.py > docs/results/sklearn-baseline.txt
Needs: python3-numpy, python3-sklearn (Debian). CI does not run it.
"""

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import StandardScaler


def test_map(name, rows=None):
    x = np.load(f"datasets/{name}/train_x.npy").astype(np.float64)
    y = np.load(f"datasets/{name}/train_y.npy").astype(np.int64)
    if rows is not None:
        x, y = x[rows], y[rows]
    xt = np.load(f"datasets/{name}/test_x.npy").astype(np.float64)
    yt = np.load(f"datasets/{name}/test_y.npy").astype(np.int64)
    scaler = StandardScaler().fit(x)
    model = OneVsRestClassifier(LogisticRegression(max_iter=1000)).fit(scaler.transform(x), y)
    scores = model.predict_proba(scaler.transform(xt))
    return 100 * average_precision_score(yt, scores, average="macro")


print(f"scikit-learn {sklearn.__version__}, numpy {np.__version__}")
for name in ["yeast", "scene"]:
    n = len(np.load(f"datasets/{name}/train_y.npy"))
    eighty = np.sort(np.random.default_rng(0).permutation(n)[: int(round(0.8 * n))])
    print(
        f"{name}: one-vs-rest logistic regression, full labels: test mAP "
        f"{test_map(name):.2f} (all {n} training rows), {test_map(name, eighty):.2f} (80 %)"
    )
