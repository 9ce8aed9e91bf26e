"""The `faceqan` command line: score files (whole or in shards), merge shards, calibrate the unified score, list
models, evaluate scores (erc), and the commands installed layers add (the FiftyOne extra's `demo`)."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from .config import FaceQANConfig, settings
from .erc_cli import add_erc_parser
from .models.files import ModelFileError
from .models.registry import DEFAULT_MODEL

PLUGIN_COMMANDS = "faceqan.commands"  # entry point group of the subcommands other layers add (see pyproject.toml)

SCORE_EXIT_CODES = ("exit status: 0 the output holds at least one score (or its shard has no file); 1 nothing "
                    "could be scored (every file failed: see the error column); 2 refused before any work (bad "
                    "usage, a setting, path, model or weights file; one line says what to do); 130 interrupted "
                    "(with --out the scored files are kept: rerun with --resume)")

NO_CALIBRATION = ("no calibration of the unified score applies to {model} with these weights and settings, so the "
                  "table has no score column: fit one with `faceqan calibrate SCORES.csv --out calibration.json` on "
                  "a table of 100 faces or more scored with them, and pass --calibration calibration.json")

MERGE_EXIT_CODES = ("exit status: 0 merged; 2 refused, nothing written (one line names the output and why: "
                    "unfinished, made with other settings, model, weights, inputs or calibration, a shard given "
                    "twice or missing)")

CALIBRATE_EXIT_CODES = ("exit status: 0 written; 2 refused, nothing written (a table without its settings record, "
                        "fewer than 100 scored faces, an --out that exists or is not .json)")


def add_config_arguments(parser: argparse.ArgumentParser, config_cls: type = FaceQANConfig) -> None:
    """One option per setting the config declares: --name (and its short flag)."""
    group = parser.add_argument_group("FaceQAN settings")
    for s in settings(config_cls):
        shown = "" if s.default is None else " (default %(default)s)"
        group.add_argument(s.option, *filter(None, [s.flag]), dest=s.name, type=s.kind, choices=s.choices,
                           default=s.default, help=s.help + shown)


def add_face_arguments(parser: argparse.ArgumentParser) -> None:
    from .align import ALIGN_MODES, FACE_POLICIES, FacePreparer

    group = parser.add_argument_group("face detection and alignment")
    group.add_argument("--align", choices=ALIGN_MODES, default=FacePreparer.align,
                       help="auto: detect and align faces unless the image already has the model's input size "
                            "(an aligned crop); always; never: resize the whole image (default %(default)s)")
    group.add_argument("--faces", choices=FACE_POLICIES, default=FacePreparer.faces,
                       help="the one face scored per image (largest, central, confident) or all: one row per face "
                            "(default %(default)s)")
    group.add_argument("--min-confidence", type=float, default=FacePreparer.min_confidence,
                       help="detections below it are ignored; an image without one gets an error row "
                            "(default %(default)s)")
    group.add_argument("--detector", default=FacePreparer.detector,
                       help="yunet (offline, default), scrfd, scrfd:<insightface pack> or scrfd:/path/det.onnx")


def config_from_args(args: argparse.Namespace, config_cls: type = FaceQANConfig) -> FaceQANConfig:
    return config_cls(**{s.name: getattr(args, s.name) for s in settings(config_cls)})


def read_list(path: Path) -> list[str]:
    """A text file with one image path per line, relative to the file's folder."""
    if not path.is_file():
        raise ValueError(f"--list {path} is not a file")
    return [str(path.parent / line.strip()) for line in path.read_text().splitlines() if line.strip()]


def checked_score_args(args: argparse.Namespace):
    """Every setting, path, model and weights file of `faceqan score`, checked before any image is read or
    anything written: (config, prepare, output table or None, the image paths to score, what the record says of
    the shard (empty without --shard), model, the calibration of the unified score or None)."""
    from .align import FacePreparer, get_detector
    from .calibration import RECORD_KEY, Calibration, choose
    from .io import IMAGE_SUFFIXES, find_images
    from .models import get_entry, load_model
    from .noise_maps import check_maps
    from .output import ScoreTable, check_maps_folder, read_record
    from .shards import parse_shard, shard_record, shard_slice

    shard = parse_shard(args.shard) if args.shard is not None else None
    if shard and not args.out:
        raise ValueError("--shard needs --out: `faceqan merge` reads each shard's output and its record")
    config = config_from_args(args)
    if args.maps:
        check_maps(config)
        check_maps_folder(Path(args.maps))
    if args.workers is not None and args.workers < 0:
        raise ValueError(f"--workers must be 0 or more, got {args.workers}")
    given = Calibration.load(args.calibration) if args.calibration else None
    prepare = FacePreparer.for_model(get_entry(args.model), align=args.align, faces=args.faces,
                                     min_confidence=args.min_confidence, detector=args.detector)
    if args.resume and not args.out:
        raise ValueError("--resume continues an --out table: give --out")
    table = ScoreTable(Path(args.out)) if args.out else None
    if table:
        table.check(args.resume)
    inputs = list(args.paths) + [p for lst in args.list or [] for p in read_list(Path(lst))]
    if not inputs:
        raise ValueError("nothing to score: give image files or folders, or --list")
    paths = find_images(inputs)
    if not paths:
        raise ValueError(f"no images found in {' '.join(map(str, inputs))} (looked for files ending in "
                         f"{', '.join(sorted(IMAGE_SUFFIXES))}, and for image content in files with no or "
                         "another suffix)")
    scope = {}
    if shard:
        paths = sorted(paths)
        scope = shard_record(paths, *shard)
        paths = shard_slice(paths, *shard)
    if prepare.align != "never":
        get_detector(prepare.detector)  # a missing detector fails here, once, not as an error row per file
    model = load_model(args.model, weights=args.weights)
    recorded = read_record(table.record).get(RECORD_KEY) if args.resume and table.record.is_file() else None
    calibration = choose(model.name, model.sha256, config.score_settings(), given,
                         Calibration.from_dict(recorded) if recorded else None, f"--calibration {args.calibration}")
    return config, prepare, table, paths, scope, model, calibration


def cmd_score(args: argparse.Namespace) -> int:
    from .calibration import RECORD_KEY, with_scores
    from .noise_maps import MapWriter, maps_missing
    from .output import failed
    from .pipeline import iter_score_rows, rows_to_frame, score_settings
    from .shards import INPUTS_KEY, SHARD_KEY

    config, prepare, table, paths, scope, model, calibration = checked_score_args(args)
    if calibration is None and not args.quiet:
        print(f"faceqan: {NO_CALIBRATION.format(model=model.name)}", file=sys.stderr)
    # recorded only when given (older records stay valid): a resume must keep maps as the run began
    maps = {"noise_maps": args.maps} if args.maps else {}
    settings = {**score_settings(model, config, prepare), **scope, **maps}
    previous = table.previous(settings) if table else {}
    names = {str(p) for p in paths}
    retry = {path for path, rows in previous.items() if (failed(rows) or maps_missing(rows)) and path in names}
    # the unified score of kept rows follows this run's calibration, which may differ from the first run's
    kept = {path: with_scores(rows, calibration) for path, rows in previous.items() if path not in retry}
    todo = [p for p in paths if str(p) not in kept]
    if previous and not args.quiet:
        print(f"resuming {table.out}: {len(kept)} files kept, {len(todo)} to score ({len(retry)} of them failed "
              "or lost their map before)", file=sys.stderr)

    if table:
        table.start({**settings, **({RECORD_KEY: calibration.to_dict()} if calibration else {})}, kept)
    collected, counts = [], Counter(scored=0, failed=0)
    keep_map = MapWriter(Path(args.maps), config) if args.maps else (lambda row: row)
    try:
        for rows in iter_score_rows(todo, model, config, prepare=prepare, num_workers=args.workers,
                                    progress=not args.quiet, maps=bool(args.maps)):
            rows = with_scores([keep_map({"path": row["path"], "model": model.name, **row}) for row in rows],
                               calibration)
            counts.update("failed" if failed([row]) else "scored" for row in rows)
            if table:
                table.append(rows)
            else:
                collected.extend(rows)
    except KeyboardInterrupt:
        print("faceqan: interrupted" + ("; the files scored so far are kept: rerun with --resume" if table else ""),
              file=sys.stderr)
        return 130
    summary = f"{counts['scored']} scored, {counts['failed']} failed"
    if scope:
        summary = f"shard {scope[SHARD_KEY]} ({len(paths)} of {scope[INPUTS_KEY]['items']} files): {summary}"
    if table:
        frame = table.finish([str(p) for p in paths])
        summary += f"; {len(frame)} rows in {table.out}" + (f" (files kept from before: {len(kept)})" if kept else "")
    else:
        frame = rows_to_frame(collected)
        frame.to_csv(sys.stdout, index=False)
    print(summary, file=sys.stderr)
    return 0 if frame.empty or frame["quality"].notna().any() else 1  # empty: a shard with no files


def cmd_merge(args: argparse.Namespace) -> int:
    from .merge import merge_shards

    frame = merge_shards([Path(p) for p in args.shards], Path(args.out))
    failures = frame.loc[frame["error"].notna(), "path"].nunique()
    retry = f" (retry them with `faceqan score <the same inputs> --out {args.out} --resume`)" if failures else ""
    print(f"{len(args.shards)} shards merged: {frame['path'].nunique()} files, {failures} failed{retry}; "
          f"{len(frame)} rows in {args.out}", file=sys.stderr)
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .calibration import fit, recorded_score_settings
    from .output import ScoreTable, check_creatable, read_table

    table, out = ScoreTable(Path(args.scores), "SCORES"), Path(args.out)
    if out.suffix != ".json":
        raise ValueError(f"--out must end in .json, got {out}")
    if out.exists():
        raise ValueError(f"--out {out} already exists: give another name")
    check_creatable(out, "--out")
    record = table.finished_record("calibrate", "faceqan score --out ...")
    reference = args.reference or f"the faces scored into {table.out.name}"
    calibration = fit(read_table(table.out)["quality"], record["model"], record["model_sha256"],
                      recorded_score_settings(record), reference)
    out.parent.mkdir(parents=True, exist_ok=True)
    calibration.save(out)
    middle = calibration.threshold(50)
    print(f"calibrated {calibration.model} on {calibration.faces} faces of {table.out}: unified score 50 from "
          f"Q {middle:.4f} (the reference faces' median); wrote {out}", file=sys.stderr)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .models import list_models

    for entry in list_models():
        print(f"{entry.name:12s} {entry.embedding_size:4d}-d  {entry.summary}")
        print(f"{'':19s}licence: {entry.licence}")
        print(f"{'':19s}weights: {entry.source}")
        calibration = entry.calibration
        print(f"{'':19s}unified score: " + (f"calibrated on {calibration.faces} reference faces" if calibration
                                            else "no calibration shipped (`faceqan calibrate`)"))
    return 0


def add_plugin_commands(commands) -> None:
    """Subcommands that installed packages declare in the entry point group faceqan.commands (the FiftyOne
    layer's `demo`). Each gets its arguments unparsed and is imported only when it runs, so the engine never
    imports the layers above it."""
    for entry in entry_points(group=PLUGIN_COMMANDS):
        package = f"{entry.dist.name}[{','.join(entry.extras)}]" if entry.extras else entry.dist.name
        command = commands.add_parser(entry.name, add_help=False, prefix_chars="\0",
                                      help=f"from {package}: see `faceqan {entry.name} --help`")
        command.add_argument("argv", nargs=argparse.REMAINDER)
        command.set_defaults(func=lambda args, entry=entry, package=package: run_plugin(entry, package, args.argv))


def run_plugin(entry: EntryPoint, package: str, argv: list[str]) -> int:
    """A command whose extra is not installed is refused in one line that says what to install."""
    try:
        run = entry.load()
    except ImportError as exc:
        raise ValueError(f"{entry.name} needs {exc.name or exc}: pip install '{package}'") from exc
    return run(argv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="faceqan", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    score = commands.add_parser("score", help="score image files and folders (recursive)", epilog=SCORE_EXIT_CODES)
    score.add_argument("paths", nargs="*", help="image files or folders")
    score.add_argument("--list", action="append", help="text file of image paths (relative to the file)")
    score.add_argument("--model", default=DEFAULT_MODEL, help="registered model name (see `faceqan models`)")
    score.add_argument("--weights", help="weights file overriding the model's default")
    score.add_argument("--out", help="scores.csv or scores.parquet (default: CSV on stdout); rows are kept on disk "
                                     "as they are scored")
    score.add_argument("--resume", action="store_true",
                       help="continue --out: keep its scored files, score the failed and missing ones (the "
                            "settings, and a shard's inputs, must be those recorded with it)")
    score.add_argument("--shard", metavar="i/N",
                       help="score only shard i of N (0 <= i < N; a SLURM array's $SLURM_ARRAY_TASK_ID/N): the "
                            "input files, after expanding folders and --list, sorted by path and cut into N "
                            "contiguous slices. Give every shard the same inputs and settings, each its own --out "
                            "(required); `faceqan merge` joins them")
    score.add_argument("--maps", metavar="DIR",
                       help="also keep each face's adversarial-noise map (no second attack): a 16-bit grayscale "
                            "PNG per face in DIR, in units of the attack budget (65535 = the most a pixel can "
                            "move), its path in the column noise_map and its concentration (std/mean) in "
                            "noise_concentration; raw photos get the aligned crop's map")
    score.add_argument("--calibration", metavar="FILE.json",
                       help="the unified score's calibration (from `faceqan calibrate`), fitted on scores of these "
                            "weights and settings; default: the one of the output --resume continues, else the "
                            "model's shipped one, when it applies. With one, the table gets a column score: 0-100, "
                            "higher is better, 255 when the face could not be assessed")
    score.add_argument("--workers", type=int, default=None, help="image decoding processes")
    score.add_argument("--quiet", action="store_true", help="no progress bar, no hints")
    add_face_arguments(score)
    add_config_arguments(score)
    score.set_defaults(func=cmd_score)

    merge = commands.add_parser("merge", help="join the outputs of `faceqan score --shard i/N` into one table",
                                description="Join the outputs of every shard of one `faceqan score --shard i/N` "
                                            "run into the table an unsharded run writes (files sorted by path), "
                                            "with its settings record.", epilog=MERGE_EXIT_CODES)
    merge.add_argument("shards", nargs="+", help="the shard outputs (.csv or .parquet), in any order")
    merge.add_argument("--out", required=True, help="merged table, .csv or .parquet (must not exist)")
    merge.set_defaults(func=cmd_merge)

    calibrate = commands.add_parser(
        "calibrate", help="fit the unified score (0-100) on a table that `faceqan score --out` wrote",
        description="Fit the calibration of the unified score on the faces of a `faceqan score --out` table: "
                    "score k means Q reaches the k-th percentile of these faces' Q. It applies to scores of the "
                    "same model weights and settings (read from the table's settings record); pass it to "
                    "`faceqan score --calibration`.", epilog=CALIBRATE_EXIT_CODES)
    calibrate.add_argument("scores", help="the table (.csv or .parquet) with its <table>.faceqan.json beside it")
    calibrate.add_argument("--out", required=True, help="the calibration, .json (must not exist)")
    calibrate.add_argument("--reference", help="what the faces are, in words, kept in the calibration "
                                               "(default: the faces scored into <table>)")
    calibrate.set_defaults(func=cmd_calibrate)

    models = commands.add_parser("models", help="list the registered FR models")
    models.set_defaults(func=cmd_models)

    add_erc_parser(commands)

    add_plugin_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, ModelFileError, OSError) as exc:  # bad settings, paths or files: one line, exit 2
        print(f"faceqan: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
