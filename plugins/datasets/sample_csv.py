"""Generated CSV files to try the regression and multilabel tasks on, seeded::

    python -m framework_plugins.sample_csv houses houses.csv   # price: regression
    python -m framework_plugins.sample_csv tags tags.csv       # sports, politics, tech: multilabel
    python -m framework_plugins.sample_csv penguins penguins.csv  # species, text and NA cells

``houses``: area, rooms, age, distance to the centre and a text column (the neighbourhood), and
a price in thousands that follows from them with noise. ``tags``: six numeric features and three
0/1 labels, each present when its own mix of features is high (several may be at once).
``penguins``: three species from four measurements, an island and a sex (text), with ``NA``
cells, shaped like the Palmer penguins data.
"""

import argparse
import csv
from pathlib import Path

from framework.api import UserError, one_line_usage

NEIGHBOURHOODS = {"centre": 60.0, "north": 25.0, "south": 0.0}
LABELS = ("sports", "politics", "tech")


def houses(rows: int, seed: int):
    """``(header, rows)`` of house prices (thousands) from area, rooms, age and place."""
    import numpy as np

    rng = np.random.default_rng(seed)
    area = rng.uniform(35, 220, rows)
    rooms = np.clip(np.round(area / 30 + rng.normal(0, 0.8, rows)), 1, 8)
    age = rng.uniform(0, 90, rows)
    distance = rng.gamma(2.0, 3.0, rows)
    place = rng.choice(list(NEIGHBOURHOODS), rows, p=[0.3, 0.35, 0.35])
    price = (
        40
        + 2.1 * area
        + 9 * rooms
        - 0.6 * age
        - 4.5 * distance
        + np.array([NEIGHBOURHOODS[p] for p in place])
        + rng.normal(0, 18, rows)
    )
    header = ["area_m2", "rooms", "age_years", "distance_km", "neighbourhood", "price"]
    return header, [
        [f"{a:.1f}", f"{r:.0f}", f"{g:.0f}", f"{d:.2f}", p, f"{max(v, 20):.1f}"]
        for a, r, g, d, p, v in zip(area, rooms, age, distance, place, price)
    ]


def tags(rows: int, seed: int):
    """``(header, rows)``: six features and three 0/1 labels, each from its own features."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (rows, 6))
    scores = np.stack(
        [x[:, 0] + 0.8 * x[:, 1], x[:, 2] - 0.7 * x[:, 3], x[:, 4] + 0.6 * x[:, 0] - 0.5 * x[:, 5]],
        axis=1,
    )
    labels = (scores + rng.normal(0, 0.4, scores.shape) > 0.3).astype(int)
    header = [f"x{i + 1}" for i in range(6)] + list(LABELS)
    return header, [
        [f"{v:.3f}" for v in features] + [str(v) for v in present]
        for features, present in zip(x, labels)
    ]


# Species: (share, islands, bill length mm, bill depth mm, flipper mm, body mass g), the means
# of the Palmer penguins data (Gorman, Williams & Fraser 2014), which these rows only imitate.
SPECIES = {
    "Adelie": (0.44, ("Biscoe", "Dream", "Torgersen"), 38.8, 18.3, 190.0, 3700.0),
    "Chinstrap": (0.20, ("Dream",), 48.8, 18.4, 195.8, 3733.0),
    "Gentoo": (0.36, ("Biscoe",), 47.5, 15.0, 217.2, 5076.0),
}


def penguins(rows: int, seed: int):
    """``(header, rows)`` shaped like the Palmer penguins data: species from bill, flipper and
    mass, text columns ``island`` and ``sex``, and ``NA`` cells (a sex unknown, a bird not
    measured)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    names = list(SPECIES)
    species = rng.choice(names, rows, p=[SPECIES[n][0] for n in names])
    out = []
    for i, name in enumerate(species):
        _, islands, bill, depth, flipper, mass = SPECIES[name]
        male = rng.random() < 0.5
        size = 1.0 if male else -1.0
        cells = [
            f"{bill + size + rng.normal(0, 2.5):.1f}",
            f"{depth + 0.5 * size + rng.normal(0, 0.8):.1f}",
            f"{flipper + 3 * size + rng.normal(0, 5.5):.0f}",
            f"{mass + 300 * size + rng.normal(0, 300):.0f}",
        ]
        if i % 97 == 3:  # not measured
            cells = ["NA"] * 4
        sex = "NA" if i % 29 == 5 or cells[0] == "NA" else ("male" if male else "female")
        out.append([name, rng.choice(islands), *cells, sex, str(2007 + i % 3)])
    header = [
        "species",
        "island",
        "bill_length_mm",
        "bill_depth_mm",
        "flipper_length_mm",
        "body_mass_g",
        "sex",
        "year",
    ]
    return header, out


KINDS = {"houses": houses, "tags": tags, "penguins": penguins}


def main(argv=None):
    """``python -m framework_plugins.sample_csv KIND OUT_FILE``: writes a generated CSV file."""
    parser = one_line_usage(
        argparse.ArgumentParser(
            prog="python -m framework_plugins.sample_csv",
            description="Write a generated CSV file: houses (a price to predict, regression), "
            "tags (three 0/1 labels, multilabel) or penguins (species, with text columns "
            "and NA cells).",
        )
    )
    parser.add_argument("kind", choices=tuple(KINDS))
    parser.add_argument("out_file", type=Path)
    parser.add_argument("--rows", type=int, default=600)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    if args.rows < 10:
        raise UserError(f"--rows must be at least 10. Received: {args.rows}")
    if args.out_file.exists():
        raise UserError(f"{args.out_file} exists; choose another file name")
    header, rows = KINDS[args.kind](args.rows, args.seed)
    with open(args.out_file, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    print(f"wrote {len(rows)} rows to {args.out_file}: {', '.join(header)}")
