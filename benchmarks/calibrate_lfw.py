"""The unified score's shipped SFace calibration, fitted on our own aligned LFW faces.

Reference set: the raw LFW photos of the ERC subset (../shared/data/lfw-raw-erc), detected and aligned by
faceqan exactly as `faceqan score --align auto` does (benchmarks/erc_sets.py), scored with SFace at the default
settings into results/lfw_erc_aligned_faceqan_sface.csv (benchmarks/erc_sets.py --score). The scoring may still
be running: the cache is read as it stands (a line being written is left out), and the calibration records how
many faces it was fitted on, so tests/test_calibration.py can refit it from the cache's first rows.

    python benchmarks/calibrate_lfw.py      # writes faceqan/models/calibrations/sface.json, results/calibrate_lfw.txt
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pandas as pd

from faceqan.calibration import SHIPPED, fit
from faceqan.config import SCORE_VERSION, FaceQANConfig
from faceqan.models import get_entry

HERE = Path(__file__).resolve().parent
CACHE = HERE / "results" / "lfw_erc_aligned_faceqan_sface.csv"
CACHE_SCORE_VERSION = 2  # the cache holds scores of this version of the scoring arithmetic
MODEL = "sface"
SHOWN = (1, 5, 10, 25, 50, 75, 90, 95, 99, 100)  # knots written to the results file


def cached_rows(path: Path = CACHE) -> pd.DataFrame:
    """The cache's complete lines (a line the scoring job is still writing is left out), each file once, in the
    order they were scored."""
    text = path.read_text()
    return pd.read_csv(io.StringIO(text[:text.rfind("\n") + 1]), dtype={"path": str}).drop_duplicates("path")


def reference_description(faces: int, identities: int) -> str:
    settings = ", ".join(f"{name} {value}" for name, value in FaceQANConfig().score_settings().items())
    return (f"{faces} LFW photos of the ERC subset ({identities} identities; ../shared/data/lfw-raw-erc), detected "
            f"and aligned by faceqan (YuNet, ArcFace 112x112 template), scored with SFace at the default settings "
            f"({settings})")


def main() -> None:
    if SCORE_VERSION != CACHE_SCORE_VERSION:
        raise SystemExit(f"{CACHE.name} holds scores of SCORE_VERSION {CACHE_SCORE_VERSION}, faceqan now computes "
                         f"version {SCORE_VERSION}: score the aligned set again (erc_sets.py --score) first")
    rows = cached_rows()
    ok = rows[rows["error"].isna() & rows["quality"].notna()]
    identities = ok["path"].str.split("/").str[0].nunique()
    calibration = fit(ok["quality"], MODEL, get_entry(MODEL).sha256, FaceQANConfig().score_settings(),
                      reference_description(len(ok), identities))
    out = SHIPPED / f"{MODEL}.json"
    calibration.save(out)
    lines = [f"$ python benchmarks/{Path(__file__).name}",
             f"{CACHE.name}: {len(rows)} files, {len(rows) - len(ok)} failed, {len(ok)} faces of {identities} "
             f"identities fitted",
             f"reference: {calibration.reference}",
             f"Q of the reference faces: min {ok['quality'].min():.4f}, max {ok['quality'].max():.4f}",
             "unified score k from Q >= knot k:",
             *(f"  {k:3d}: {calibration.threshold(k):.4f}" for k in SHOWN),
             f"wrote {out.relative_to(HERE.parent)}"]
    text = "\n".join(lines) + "\n"
    (HERE / "results" / "calibrate_lfw.txt").write_text(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
