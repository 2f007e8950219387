"""Synthetic test-site files in the data.gouv.fr schema (made here, seeded)."""

from __future__ import annotations

import csv
import io

import numpy as np

HEADER = ["id_ej", "finess", "rs", "adresse", "do_prel", "do_antigenic", "longitude",
          "latitude", "mod_prel", "public", "horaire", "horaire_prio", "check_rdv", "tel_rdv",
          "web_rdv", "date_modif"]


def sites_csv(n: int, seed: int = 1, delimiter: str = ";") -> str:
    """``n`` sites spread over metropolitan France, with varied attributes."""
    rng = np.random.default_rng(seed)
    out = io.StringIO()
    w = csv.writer(out, delimiter=delimiter)
    w.writerow(HEADER)
    for i in range(n):
        lat = 43.0 + rng.random() * 7.5
        lon = -1.5 + rng.random() * 9.0
        w.writerow([f"{i:09d}", "", f"Laboratoire {i}", f"{i} rue de la Santé, Ville {i % 97}",
                    str(bool(rng.random() < 0.8)), str(bool(rng.random() < 0.5)),
                    f"{lon:.6f}", f"{lat:.6f}",
                    rng.choice(["Drive", "Sur place", "Drive, Sur place"]),
                    rng.choice(["Tout public", "Public restreint", "Professionnels de santé"]),
                    "lundi 08:00-18:00", "", rng.choice(["Sur rendez-vous uniquement",
                                                         "Sans rendez-vous"]),
                    "01 23 45 67 89", "https://example.org/rdv", "2021-01-04"])
    return out.getvalue()
