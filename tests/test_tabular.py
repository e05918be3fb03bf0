import re
from types import SimpleNamespace

import numpy as np
import pytest
from omegaconf import OmegaConf

from framework.errors import UserError
from framework.parts.ranges import check_ranges
from framework.parts.registry import datasets
from framework_plugins.datasets.tabular import encode_rows

# Also run on Keras's JAX backend (make test's second pass).
pytestmark = pytest.mark.backends


def build(name, **overrides):
    cfg = OmegaConf.merge(OmegaConf.structured(datasets.get(name).config), overrides)
    return datasets.get(name).build(cfg, None)


@pytest.mark.parametrize(
    "name, classes, features, samples",
    [
        ("iris", 3, 4, 150),
        ("wine", 3, 13, 178),
        ("breast_cancer", 2, 30, 569),
    ],
)
def test_bundled_datasets_split_three_ways_stratified(name, classes, features, samples):
    data = build(name)
    (x_tr, y_tr), (_, y_va), (_, y_te) = data.train, data.validation, data.test
    assert len(data.class_names) == classes and data.input_shape == (features,)
    assert len(y_tr) + len(y_va) + len(y_te) == samples
    assert len(y_te) == pytest.approx(0.2 * samples, abs=1)
    # Stratified: each split has every class, in about the overall proportion.
    overall = np.bincount(np.concatenate([y_tr, y_va, y_te])) / samples
    for y in (y_tr, y_va, y_te):
        np.testing.assert_allclose(np.bincount(y, minlength=classes) / len(y), overall, atol=0.06)
    assert x_tr.dtype == np.float32


def test_scaler_is_fitted_on_the_training_split_only():
    data = build("wine")
    x_tr, x_te = data.train[0], data.test[0]
    np.testing.assert_allclose(x_tr.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(x_tr.std(axis=0), 1, atol=1e-4)
    assert np.abs(x_te.mean(axis=0)).max() > 1e-3  # test data is not refitted
    raw = build("wine", standardize=False)
    assert raw.train[0].mean() > 10


def test_iris_with_a_species_target_is_binary_and_an_unknown_one_refused():
    binary = build("iris", target="setosa")
    assert binary.class_names == ["other", "setosa"] and binary.task == "binary"
    assert np.bincount(
        np.concatenate([binary.train[1], binary.validation[1], binary.test[1]])
    ).tolist() == [100, 50]
    with pytest.raises(UserError, match="'rose'.*species, setosa"):
        build("iris", target="rose")


def test_one_hot_labels_have_a_single_one_per_row():
    data = build("iris", one_hot=True)
    y = data.train[1]
    assert y.shape[1] == 3 and set(y.sum(axis=1)) == {1.0}


def test_same_split_seed_same_split_other_seed_other_split():
    a, b, c = build("iris"), build("iris"), build("iris", split_seed=7)
    np.testing.assert_array_equal(a.test[0], b.test[0])
    assert not np.array_equal(a.test[0], c.test[0])


def test_a_csv_has_its_string_classes_and_chosen_features_and_refuses_bad_ones(tmp_path):
    rows = ["width,height,colour,kind"] + [
        f"{i % 7},{i % 5 + 0.5},{i % 3},{'cat' if i % 2 else 'dog'}" for i in range(60)
    ]
    path = tmp_path / "animals.csv"
    path.write_text("\n".join(rows) + "\n")
    data = build("csv", path=str(path), target="kind")
    assert data.class_names == ["cat", "dog"] and data.input_shape == (3,)
    assert data.info["samples"] == 60
    only_two = build("csv", path=str(path), target="kind", features=["width", "height"])
    assert only_two.input_shape == (2,)
    with pytest.raises(UserError, match="'size' is not in animals.csv"):
        build("csv", path=str(path), target="kind", features=["size"])
    with pytest.raises(UserError, match="test_size must be between 0 and 1"):
        build("csv", path=str(path), target="kind", test_size=1.5)


def test_csv_numeric_classes_sort_numerically(tmp_path):
    path = tmp_path / "n.csv"
    path.write_text("x,y\n" + "".join(f"{i},{[2, 10, 1][i % 3]}\n" for i in range(30)))
    assert build("csv", path=str(path), target="y").class_names == ["1", "2", "10"]


PENGUIN_ROWS = [
    "species,island,bill_length_mm,sex",
    *[
        f"{s},{i},{b + k * 0.5},{('male', 'female')[k % 2]}"
        for k in range(10)
        for s, i, b in (("Adelie", "Torgersen", 38.0), ("Gentoo", "Biscoe", 47.0))
    ],
]


def penguins(tmp_path, *extra_rows):
    path = tmp_path / "penguins.csv"
    path.write_text("\n".join([*PENGUIN_ROWS, *extra_rows]) + "\n")
    return str(path)


def test_csv_text_columns_are_one_hot_encoded(tmp_path, capsys):
    data = build("csv", path=penguins(tmp_path), target="species", standardize=False)
    assert data.info["features"] == [
        "island=Biscoe",
        "island=Torgersen",
        "bill_length_mm",
        "sex=female",
        "sex=male",
    ]
    x = np.concatenate([data.train[0], data.validation[0], data.test[0]])
    assert set(np.unique(x[:, [0, 1, 3, 4]])) == {0.0, 1.0}
    assert (x[:, 0] + x[:, 1] == 1).all() and (x[:, 3] + x[:, 4] == 1).all()
    assert "one-hot encoded the text column(s) island, sex" in capsys.readouterr().out


def test_csv_missing_cells_are_refused_by_name_unless_dropped_or_filled(tmp_path):
    path = penguins(tmp_path, "Adelie,Torgersen,NA,NA", "Gentoo,Biscoe,,male")
    with pytest.raises(UserError) as error:
        build("csv", path=path, target="species")
    message = str(error.value)
    assert message.startswith(
        "column 'bill_length_mm' (a feature) of penguins.csv has 2 "
        "missing value(s), the first 'NA' on line 22"
    )
    assert "dataset.missing=drop" in message and "dataset.missing=mean" in message
    assert "non-numeric" not in message
    dropped = build("csv", path=path, target="species", missing="drop")
    assert dropped.info["samples"] == 20 and dropped.info["dropped_rows"] == 2
    filled = build("csv", path=path, target="species", missing="mean", standardize=False)
    assert filled.info["samples"] == 22
    x = np.concatenate([filled.train[0], filled.validation[0], filled.test[0]])
    assert np.isfinite(x).all()
    train_mean = filled.train[0][:, 2].mean()  # the filled rows hold the training mean
    assert np.isclose(x[:, 2], train_mean).sum() >= 2
    with pytest.raises(
        UserError, match="unknown dataset.missing 'zero'; accepted: error, drop, mean"
    ):
        build("csv", path=path, target="species", missing="zero")


@pytest.mark.parametrize(
    "rows, message",
    [
        (
            ["Adelie,Torgersen,inf,male", "Gentoo,Biscoe,-inf,male"],
            "'bill_length_mm' of penguins.csv holds 2 infinite value(s), the first 'inf' on "
            "line 22; features must be finite numbers: correct them, or set "
            "dataset.missing=drop or dataset.missing=mean",
        ),
        (["Adelie,Torgersen,40.0"], "line 22 of penguins.csv has 3 fields; the header has 4"),
        (
            ["Adelie,Torgersen,forty,male"],
            "'bill_length_mm' holds numbers and the non-numeric value 'forty' on line 22",
        ),
        (["NA,Torgersen,40.0,male"], "column 'species' (the target) of penguins.csv has 1 missing"),
    ],
)
def test_csv_bad_cells_are_one_line_errors(tmp_path, rows, message):
    with pytest.raises(UserError, match=re.escape(message)):
        build("csv", path=penguins(tmp_path, *rows), target="species")


def test_csv_that_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("x,label\n1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(UserError, match="latin.csv is not UTF-8 text .byte 0xe9"):
        build("csv", path=str(path), target="label")


@pytest.mark.parametrize(
    "rows, settings, message",
    [
        (
            ["Adelie,Torgersen,NAN,male"],
            {},
            "'bill_length_mm' (a feature) of penguins.csv has 1 "
            "missing value(s), the first 'NAN' on line 22",
        ),
        (
            [],
            {"features": ["bill_length_mm", "species"]},
            "dataset.features lists the target column 'species'",
        ),
    ],
)
def test_csv_nan_spellings_are_missing_and_the_target_is_no_feature(
    tmp_path, rows, settings, message
):
    with pytest.raises(UserError, match=re.escape(message)):
        build("csv", path=penguins(tmp_path, *rows), target="species", **settings)


def test_csv_mean_of_a_column_without_values_is_refused(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("a,b,label\n" + "".join(f"{i},NA,{'xy'[i % 2]}\n" for i in range(20)))
    with pytest.raises(UserError, match="'b' has no value in the training split"):
        build("csv", path=str(path), target="label", missing="mean")


def test_csv_infinite_numbers_are_dropped_or_filled_with_a_note(tmp_path, capsys):
    path = penguins(
        tmp_path,
        "Adelie,Torgersen,inf,male",
        "Gentoo,Biscoe,-Infinity,female",
        "Adelie,Torgersen,1e999,female",
        "Gentoo,Biscoe,NA,male",
    )
    dropped = build("csv", path=path, target="species", missing="drop")
    assert dropped.info["samples"] == 20 and dropped.info["dropped_rows"] == 4
    assert "dropped 4 of 24 rows with a missing or infinite value" in capsys.readouterr().out
    filled = build("csv", path=path, target="species", missing="mean", standardize=False)
    assert "filling 4 missing or infinite number(s)" in capsys.readouterr().out
    x = np.concatenate([filled.train[0], filled.validation[0], filled.test[0]])
    assert len(x) == 24 and np.isfinite(x).all()
    assert np.isclose(x[:, 2], filled.train[0][:, 2].mean()).sum() >= 4


@pytest.mark.parametrize("task", ["auto", "regression", "classification"])
def test_csv_whose_every_row_is_dropped_says_so_not_that_it_has_0_classes(tmp_path, task):
    path = tmp_path / "gaps.csv"
    path.write_text(
        "a,b,price\n" + "".join(f"{i},{'NA' if i % 3 else 'inf'},{i * 1.5}\n" for i in range(30))
    )
    with pytest.raises(UserError) as error:
        datasets.get("csv").build(
            OmegaConf.merge(
                OmegaConf.structured(datasets.get("csv").config),
                {"path": str(path), "target": "price", "missing": "drop"},
            ),
            SimpleNamespace(task=task),
        )
    assert str(error.value) == (
        "every row of gaps.csv has a missing or infinite value, so dataset.missing=drop leaves "
        "no data (column 'b': 30 of 30 rows); correct the file, leave the column out of "
        "dataset.features, or set dataset.missing=mean to fill it"
    )


def test_csv_with_a_header_and_no_rows_says_so(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("a,b,label\n\n")
    with pytest.raises(
        UserError, match="^header.csv has a header but no data rows. Received: dataset.path="
    ):
        build("csv", path=str(path), target="label")


def test_csv_errors_name_the_line_a_record_starts_on_and_the_byte_offset(tmp_path):
    # A quoted field over two lines: the short row after it is on line 4, the third record.
    quoted = tmp_path / "quoted.csv"
    quoted.write_text('note,x,label\n"two\nlines",1,a\n' + "short,1\n")
    with pytest.raises(UserError, match="line 4 of quoted.csv has 2 fields"):
        build("csv", path=str(quoted), target="label")
    # Past the first 8 KiB a text reader counts offsets from its last chunk, not the file.
    latin = tmp_path / "latin.csv"
    head = b"x,label\n" + b"1,a\n" * 3000
    latin.write_bytes(head + "2,caf\xe9\n".encode("latin-1"))
    offset = len(head) + 5
    with pytest.raises(
        UserError, match=f"byte 0xe9 at offset {offset}, line 3002\\); save it as UTF-8"
    ):
        build("csv", path=str(latin), target="label")


def test_csv_with_a_column_named_twice_is_refused(tmp_path):
    path = tmp_path / "twice.csv"
    path.write_text("a,a,label\n" + "".join(f"{i},{-i},{'xy'[i % 2]}\n" for i in range(20)))
    with pytest.raises(UserError, match="column 'a' appears twice in the header of twice.csv"):
        build("csv", path=str(path), target="label")


def test_csv_missing_policy_is_checked_before_the_data_is_read():
    cfg = OmegaConf.merge(
        OmegaConf.structured(datasets.get("csv").config),
        {"path": "absent.csv", "target": "y", "missing": "zero"},
    )
    with pytest.raises(
        UserError, match="unknown dataset.missing 'zero'; accepted: error, drop, mean"
    ):
        check_ranges(OmegaConf.create({"dataset": cfg}))


# How a CSV run turns new rows into inputs (metrics.json's data.inputs): a number and a text column.
ROW_INPUTS = {"columns": [{"name": "size"}, {"name": "colour", "categories": ["blue", "red"]}]}


def test_an_infinite_number_in_a_row_is_called_infinite_not_missing():
    with pytest.raises(UserError) as error:
        encode_rows(
            {"inputs": ROW_INPUTS}, ["size", "colour"], [["1", "red"], ["-inf", "blue"]], "rows.csv"
        )
    assert str(error.value).startswith(
        "row 2 of rows.csv holds an infinite number in column "
        "'size'; the model takes finite numbers"
    )
    # A run that filled missing and infinite numbers with the training mean fills them again.
    filled = encode_rows(
        {"inputs": {**ROW_INPUTS, "fill": [5.0, 0.0, 0.0]}},
        ["size", "colour"],
        [["inf", "red"], ["NA", "blue"]],
        "rows.csv",
    )
    assert filled[:, 0].tolist() == [5.0, 5.0]


def test_a_category_training_never_saw_is_predicted_with_a_one_line_note(capsys):
    x = encode_rows(
        {"inputs": ROW_INPUTS},
        ["size", "colour"],
        [["1", "red"], ["2", "green"], ["3", ""], ["4", "pink"]],
        "rows.csv",
    )
    assert x[:, 1:].tolist() == [[0, 1], [0, 0], [0, 0], [0, 0]]  # as a missing cell: no category
    assert capsys.readouterr().out.splitlines() == [
        "note: column 'colour' of rows.csv holds 'green' on row 2 and 1 more row(s), a category "
        "training never saw (it knows blue, red): predicted as none of them"
    ]
    encode_rows({"inputs": ROW_INPUTS}, ["size", "colour"], [["1", "red"], ["3", "NA"]], "rows.csv")
    assert capsys.readouterr().out == ""  # known and missing categories: no note
