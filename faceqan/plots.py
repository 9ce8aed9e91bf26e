"""EDC / ERC plots from the long-form curve table of ``faceqan.metrics.evaluate``.

plotly figures for interactive use (a FiftyOne App panel), matplotlib for PNG files (kaleido, plotly's image
export, needs a Chrome install, so PNGs are drawn with matplotlib instead). Every plot shows the quality
measures of one curve type together with the random-rejection and theoretical-best references.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .metrics.curves import BEST, CURVE_LABELS, RANDOM

AXIS_TITLES = {"edc": "fraction of mated comparisons discarded",
               "erc": "fraction of comparisons discarded (r)"}
REFERENCE_STYLE = {RANDOM: "dash", BEST: "dot"}


def _parts(curves: pd.DataFrame, curve: str) -> tuple[list[tuple[str, pd.DataFrame]], pd.DataFrame]:
    if curve not in AXIS_TITLES:
        raise ValueError(f"curve must be one of {sorted(AXIS_TITLES)}, got {curve!r}")
    rows = curves[curves["curve"] == curve]
    if rows.empty:
        raise ValueError(f"the table has no {curve!r} curve; evaluate with curves=({curve!r},)")
    measures = list(rows.groupby("measure", sort=False))
    return measures, curves[curves["curve"] == "reference"]


def figure(curves: pd.DataFrame, curve: str = "edc", title: str | None = None):
    """A plotly figure: one line per quality measure (steps for the EDC) plus the references."""
    import plotly.graph_objects as go

    measures, references = _parts(curves, curve)
    fig = go.Figure()
    for name, rows in measures:
        fig.add_trace(go.Scatter(x=rows["discard"], y=rows["fnmr"], name=name,
                                 mode="lines" if curve == "edc" else "lines+markers",
                                 line_shape="hv" if curve == "edc" else "linear"))
    for name, rows in references.groupby("measure", sort=False):
        fig.add_trace(go.Scatter(x=rows["discard"], y=rows["fnmr"], name=name, mode="lines",
                                 line={"dash": REFERENCE_STYLE[name], "color": "grey"}))
    fig.update_layout(title=title or CURVE_LABELS[curve], xaxis_title=AXIS_TITLES[curve], yaxis_title="FNMR",
                      xaxis_range=[0, 1], yaxis_rangemode="tozero", legend_title="quality measure")
    return fig


def _draw(ax, curves: pd.DataFrame, curve: str) -> None:
    measures, references = _parts(curves, curve)
    for name, rows in measures:
        if curve == "edc":
            ax.step(rows["discard"], rows["fnmr"], where="post", label=name)
        else:
            ax.plot(rows["discard"], rows["fnmr"], marker=".", label=name)
    for name, rows in references.groupby("measure", sort=False):
        ax.plot(rows["discard"], rows["fnmr"], color="grey", linestyle="--" if name == RANDOM else ":", label=name)
    ax.set(title=CURVE_LABELS[curve], xlabel=AXIS_TITLES[curve], ylabel="FNMR", xlim=(0, 1))
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)


def save_png(curves: pd.DataFrame, path: str | Path, title: str | None = None,
             kinds: tuple[str, ...] | None = None) -> Path:
    """One panel per curve type present (EDC, ERC), side by side, written with matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = kinds or tuple(k for k in AXIS_TITLES if (curves["curve"] == k).any())
    if not kinds:
        raise ValueError("the table has no EDC or ERC curve to plot")
    fig, axes = plt.subplots(1, len(kinds), figsize=(6.5 * len(kinds), 5), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        _draw(ax, curves, kind)
    axes[0][-1].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
