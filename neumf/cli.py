"""The ``neumf`` command: a thin layer over :func:`neumf.fit`, :func:`neumf.load_model`,
:func:`neumf.evaluate_model`, :func:`neumf.recommend` and the launcher.

Errors are one line, ``neumf: error: ...``, with exit status 2; Ctrl-C says
where the last checkpoint is (exit status 130); ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import traceback
import warnings
from pathlib import Path
from typing import Sequence

import mxnet as mx
from tqdm.auto import tqdm

from ._interrupt import interrupts_that_land
from ._util import atomic_write, json_safe
from ._version import __version__
from .config import CHOICES, PROTOCOLS, FitConfig
from .datasets import DATASETS
from .devices import parse_devices
from .distributed import launch
from .download import DownloadError
from .experiment import fit
from .plotting import plot_report
from .presets import PRESET_NOTES, PRESETS
from .result import load_model
from .runs import RunError, read_run
from .service import SERVER_MISSING, make_server
from .serving import Recommender
from .serving import load as load_export
from .tables import DataError

__all__ = ["build_parser", "main"]

_LISTS = ("nums_hiddens", "ks")
# What the library raises for bad input, bad files and impossible sizes: a message.
_EXPECTED = (DataError, RunError, DownloadError, ValueError, TypeError, KeyError, OSError,
             FloatingPointError, MemoryError, ImportError, mx.base.MXNetError)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors in the library's form."""

    def error(self, message: str):
        command = self.prog.split()[1:]  # 'neumf train' names its command; 'neumf' none
        where = f"{command[-1]}: " if command else ""
        self.exit(2, f"neumf: error: {where}{message} (see {self.prog} --help)\n")


def _kind(spec: dataclasses.Field):
    text = str(spec.type)
    return int if "int" in text else float if "float" in text else str


def _add_config_flags(parser: argparse.ArgumentParser, track_given: bool) -> None:
    """One flag per FitConfig field, its help from the field, so every default
    lives in the dataclass. With ``track_given`` the flags have no defaults, so
    the parsed namespace holds only the flags given (they override a preset or
    a resumed run's settings)."""
    for spec in dataclasses.fields(FitConfig):
        flag = "--" + spec.name.replace("_", "-")
        if spec.name == "sparse":  # three states: --sparse, --dense, or decided by size
            options = {"default": argparse.SUPPRESS if track_given else None}
            parser.add_argument("--sparse", dest="sparse", action="store_const", const=True,
                                help=spec.metadata["help"], **options)
            parser.add_argument("--dense", dest="sparse", action="store_const", const=False,
                                help="train the embedding tables densely (see --sparse)",
                                **options)
            continue
        default = list(spec.default) if spec.name in _LISTS else spec.default
        options = {"default": argparse.SUPPRESS} if track_given else {"default": default}
        help_text = spec.metadata["help"]
        if spec.type in ("bool", bool):
            # --no-X where the default or a preset turns X on
            both = default or any(preset.get(spec.name) for preset in PRESETS.values())
            action = argparse.BooleanOptionalAction if both else "store_true"
            parser.add_argument(flag, action=action, help=help_text
                                + (" (default: on)" if default else ""), **options)
        else:
            parser.add_argument(flag, type=_kind(spec), nargs="+" if spec.name in _LISTS
                                else None, choices=CHOICES.get(spec.name),
                                help=f"{help_text} (default: {default})", **options)


def _add_train(commands, track_given: bool) -> None:
    train = commands.add_parser(
        "train", help="train and evaluate, optionally saving the run",
        description="Train NeuMF and evaluate it after each epoch (by default the "
                    "tutorial's MovieLens-100K experiment); with --out, save the model, "
                    "metrics.json and curves.png.")
    train.add_argument("--dataset", choices=DATASETS, default=None,
                       help="data set: ml-100k (u.data), ml-1m (ratings.dat), csv (a "
                            "delimited file of interactions named by --name, its columns "
                            "named by its header or --columns), ncf (NAME.train.rating, "
                            ".test.rating, .test.negative) (default: ml-100k; on --resume, "
                            "the run's)")
    train.add_argument("--data-dir", default=None,
                       help="folder holding the data (default: $NEUMF_DATA_DIR, else the "
                            "user cache, downloading ML-100K if needed)")
    train.add_argument("--name", default=None,
                       help="file name (csv) or file prefix (ncf) in the data folder "
                            "(default: %(default)s)")
    train.add_argument("--columns", default=None,
                       help="csv: the roles of the file's columns in order, e.g. "
                            "user,item,timestamp ('-' skips a column) (default: from the "
                            "header, else user,item[,rating][,timestamp])")
    train.add_argument("--header", action=argparse.BooleanOptionalAction, default=None,
                       help="csv: line 1 is (--header) or is not (--no-header) a header "
                            "(default: decided from the file)")
    train.add_argument("--preset", choices=tuple(PRESETS), default=None,
                       help="named settings that the flags below override (default: the "
                            "tutorial's settings): " + "; ".join(
                                f"{name}: {note}" for name, note in PRESET_NOTES.items()))
    _add_config_flags(train, track_given)
    train.add_argument("--devices", default=None,
                       help="devices to train on, e.g. cpu:0,cpu:1 or gpu:0,gpu:1 (default: "
                            "every GPU, else the CPU)")
    train.add_argument("--out", default=None,
                       help="run folder to save the model, metrics.json and curves.png in: "
                            "new or empty, or with --overwrite another run's (default: not "
                            "saved; on --resume, the resumed run)")
    train.add_argument("--overwrite", action="store_true",
                       help="replace the run already in --out")
    train.add_argument("--resume", default=None,
                       help="run folder to continue training from, with its data and "
                            "settings, up to --num-epochs in all (default: start afresh)")
    train.add_argument("--quiet", action="store_true", help="print only the final result")
    train.add_argument("--json", action="store_true",
                       help="print the final metrics and history as one JSON object")


def _add_evaluate(commands) -> None:
    evaluate = commands.add_parser(
        "evaluate", help="evaluate saved runs",
        description="Evaluate saved runs' models on their test pairs; with --report, also "
                    "beyond accuracy (HR@k by user activity, catalogue coverage, popularity "
                    "of what is recommended) and a picture comparing the runs.")
    evaluate.add_argument("--run", required=True, action="append",
                          help="run folder written by 'neumf train'; repeat to compare runs")
    evaluate.add_argument("--protocol", choices=PROTOCOLS, default=None,
                          help="full: rank against every item not trained on; sampled: "
                               "against the data set's negatives or --eval-negatives random "
                               "ones (default: the run's)")
    evaluate.add_argument("--eval-negatives", type=int, default=None,
                          help="negatives per test pair for the sampled protocol, when the "
                               "data set has none (default: the run's)")
    evaluate.add_argument("--report", default=None,
                          help="folder for report.png and report.json (default: none)")
    evaluate.add_argument("--overwrite", action="store_true",
                          help="replace a report already in --report")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")


def _add_serving(commands) -> None:
    export = commands.add_parser(
        "export", help="write a run's model as a self-contained serving folder",
        description="Write the hybridized graph, its parameters, the raw id maps and each "
                    "user's training items into a folder that 'neumf serve', 'neumf "
                    "recommend --export' and neumf.serving.load() read alone.")
    export.add_argument("--run", required=True, help="run folder written by 'neumf train'")
    export.add_argument("--out", required=True, help="the export folder (new or empty)")
    export.add_argument("--overwrite", action="store_true",
                        help="replace the export already in --out")
    serve = commands.add_parser(
        "serve", help="answer recommendations over HTTP (JSON)",
        description="Serve GET /health, GET /recommend?user=ID&k=10 and POST /recommend "
                    '({"users": [...], "k": 10}) for an export or a run, until Ctrl-C. Needs '
                    "the serve extra: pip install 'neumf[serve]'.")
    _add_model_source(serve)
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default: %(default)s)")
    serve.add_argument("--port", type=int, default=8080,
                       help="port to listen on (default: %(default)s)")
    serve.add_argument("--log", action="store_true", help="log every request to stderr")
    serve.add_argument("--threads", type=int, default=1,
                       help="threads computing answers side by side: more only contend for "
                            "the GIL, but keep answering beside a long request (default: "
                            "%(default)s)")
    serve.add_argument("--timeout", type=float, default=10,
                       help="seconds a connection may stay silent, idle or in the middle of a "
                            "request (default: %(default)s)")


def _add_model_source(parser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="run folder written by 'neumf train' (default: none; "
                                      "one of --run and --export is required)")
    source.add_argument("--export", help="folder written by 'neumf export' (default: none; "
                                         "one of --run and --export is required)")


def _add_launch(commands) -> None:
    launch = commands.add_parser(
        "launch", help="run a command as distributed workers on this host",
        description="Start an MXNet scheduler, parameter servers and workers on this host "
                    "and run the command after -- in each worker, e.g. 'neumf launch -n 2 "
                    "-s 1 -- neumf train --kvstore dist_sync --out RUN'.")
    launch.add_argument("-n", "--num-workers", type=int, required=True,
                        help="worker processes")
    launch.add_argument("-s", "--num-servers", type=int, default=1,
                        help="parameter servers (default: %(default)s)")
    launch.add_argument("--host", default="127.0.0.1",
                        help="address of the scheduler (default: %(default)s)")
    launch.add_argument("--port", type=int, default=None,
                        help="port of the scheduler (default: a free one)")
    launch.add_argument("--timeout", type=float, default=None,
                        help="seconds before every process is stopped (default: none)")
    launch.add_argument("worker_command", nargs=argparse.REMAINDER,
                        help="the command each worker runs, after --")


def _add_recommend(commands) -> None:
    rec = commands.add_parser(
        "recommend", help="top-k items for users of a saved run or export",
        description="Recommend the k best-scoring items to users, by raw id, leaving out "
                    "what each user interacted with in training; for many users, from a file, "
                    "streamed to a CSV or JSON-lines file.")
    _add_model_source(rec)
    users = rec.add_mutually_exclusive_group(required=True)
    users.add_argument("--user", action="append",
                       help="raw user id; repeat for several users (default: none; one of "
                            "--user and --users-file is required)")
    users.add_argument("--users-file", help="file of raw user ids, one per line ('-': stdin) "
                                            "(default: none)")
    rec.add_argument("-k", type=int, default=10, help="items per user (default: %(default)s)")
    rec.add_argument("--exclude", nargs="+", default=None,
                     help="raw item ids never to recommend (default: none)")
    rec.add_argument("--items", nargs="+", default=None,
                     help="recommend only among these raw item ids (default: all)")
    rec.add_argument("--include-seen", action="store_true",
                     help="also recommend items the user trained on")
    rec.add_argument("--out", default=None,
                     help="write to this .csv (user, rank, item, score) or .jsonl file (a "
                          'line {"user": ID, "items": [...]} per user) instead of printing '
                          "(default: print)")
    rec.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    rec.add_argument("--json", action="store_true",
                     help='print {"recommendations": [{"user": ID, "items": [{"item": ID, '
                          '"score": S}, ...]}, ...]} (as POST /recommend answers) instead of '
                          "a table")


def build_parser(track_given: bool = False) -> argparse.ArgumentParser:
    """The argument parser of the ``neumf`` command (see :func:`_add_config_flags`
    for ``track_given``)."""
    parser = _Parser(prog="neumf",
                     description="NeuMF with BPR on implicit feedback (MXNet Gluon).")
    parser.add_argument("--version", action="version", version=f"neumf {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error instead of one line")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_train(commands, track_given)
    _add_evaluate(commands)
    _add_launch(commands)
    _add_recommend(commands)
    _add_serving(commands)
    return parser


def _metrics_line(metrics) -> str:
    return ", ".join(f"{key} {value:.4f}" for key, value in metrics.items())


def _train(args, argv: Sequence[str] | None) -> int:
    names = {spec.name for spec in dataclasses.fields(FitConfig)}
    # only the flags given: the rest come from the preset, the resumed run or FitConfig
    given = vars(build_parser(track_given=True).parse_args(argv))
    overrides = {name: value for name, value in given.items() if name in names}
    result = fit(dataset=args.dataset, data_dir=args.data_dir, name=args.name,
                 columns=args.columns, header=args.header, preset=args.preset,
                 devices=None if args.devices is None else parse_devices(args.devices),
                 verbose=not (args.quiet or args.json), resume=args.resume, out=args.out,
                 overwrite=args.overwrite, **overrides)
    if args.json:
        print(json.dumps(json_safe({"metrics": result.metrics,
                                    "config": dataclasses.asdict(result.config),
                                    "history": result.history})))
    else:
        print(_metrics_line(result.metrics))
        if result.run_dir is not None:
            print(f"saved to {result.run_dir}")
    return 0


def _evaluate(args) -> int:
    if args.report is not None:
        _check_report_folder(Path(args.report), args.overwrite)
    reports = {}
    # The same run named twice is evaluated once: a report compares runs.
    runs = {}
    for run in args.run:
        runs.setdefault(Path(run).resolve(), run)
    for run in runs.values():
        model = load_model(run)
        protocol = args.protocol or model.config.protocol
        metrics = model.evaluate(protocol, args.eval_negatives,
                                 beyond_accuracy=args.report is not None)
        reports[f"{model.config.model} ({run})"] = metrics
        if args.json:
            print(json.dumps(json_safe({"run": str(run), "protocol": protocol,
                                        "metrics": metrics})))
        else:
            print(f"{run}: {protocol} protocol: {_metrics_line(metrics)}")
    if args.report is not None:
        _write_report(Path(args.report), reports, sys.stderr if args.json else sys.stdout)
    return 0


def _check_report_folder(folder: Path, overwrite: bool) -> None:
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--report {folder} is a file, not a folder")
    existing = [name for name in ("report.png", "report.json") if (folder / name).exists()]
    if existing and not overwrite:
        raise ValueError(f"--report {folder} already holds {', '.join(existing)}: choose "
                         "another folder, or --overwrite")


def _write_report(folder: Path, reports, said) -> None:
    # said: where to name the files (stderr under --json, so stdout stays JSON)
    folder.mkdir(parents=True, exist_ok=True)
    k = min(int(key.split("@")[1]) for metrics in reports.values() for key in metrics
            if key.startswith("coverage@"))
    atomic_write(folder / "report.png", lambda name: plot_report(reports, name, k=k))
    atomic_write(folder / "report.json", lambda name: Path(name).write_text(
        json.dumps(json_safe(reports), indent=1), encoding="utf-8"))
    print(f"report: {folder / 'report.png'}, {folder / 'report.json'}", file=said)


def _recommender(args) -> Recommender:
    return load_export(args.export) if args.export else \
        Recommender.from_result(load_model(args.run))


def _recommend(args) -> int:
    recommender = _recommender(args)
    users = args.user or _read_users(args.users_file, recommender)
    options = {"exclude_seen": not args.include_seen, "items": args.items,
               "exclude": args.exclude}
    if args.out is None:
        result = recommender.recommend(users, args.k, **options)
        print(json.dumps({"recommendations": result.to_records()}) if args.json
              else result.to_frame().to_string(index=False))
        return 0
    out = Path(args.out)
    if out.suffix not in (".csv", ".jsonl"):
        raise ValueError(f"--out {out} must end in .csv or .jsonl")
    if out.exists() and not args.overwrite:
        raise ValueError(f"--out {out} exists: choose another file, or --overwrite")
    with tqdm(total=len(users), unit="user", desc="recommending", leave=False,
              disable=True if len(users) < 2 else None) as bar:
        atomic_write(out, lambda name: _write_recommendations(
            name, recommender.recommend_blocks(users, args.k, **options), out.suffix, bar))
    print(f"{len(users)} users' top {args.k} written to {out}")
    return 0


def _read_users(path: str, recommender: Recommender):
    """The ids of a users file, each known to ``recommender`` (else a KeyError
    naming the file and line)."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"--users-file {path}: not UTF-8 text ({exc.reason} at byte "
                         f"{exc.start})") from None
    lines = [(number, line.strip()) for number, line in
             enumerate(text.lstrip("\ufeff").splitlines(), start=1) if line.strip()]
    if not lines:
        raise ValueError(f"--users-file {path} holds no user id")
    unknown = [(number, user) for number, user in lines if user not in recommender.user_ids]
    if unknown:
        more = f" (and {len(unknown) - 1} more unknown)" if len(unknown) > 1 else ""
        raise KeyError(f"--users-file {path} line {unknown[0][0]}: unknown user id "
                       f"{unknown[0][1]!r}{more}")
    return [user for _, user in lines]


def _write_recommendations(name: str, blocks, suffix: str, bar) -> None:
    with open(name, "w", encoding="utf-8", newline="") as handle:
        for number, block in enumerate(blocks):
            if suffix == ".csv":
                block.to_frame().to_csv(handle, header=number == 0, index=False)
            else:
                handle.writelines(json.dumps(record) + "\n" for record in block.to_records())
            bar.update(len(block.users))


def _export(args) -> int:
    if not args.out.strip():
        raise ValueError("--out is empty: name the folder to export to")
    folder = load_model(args.run).export(args.out, overwrite=args.overwrite)
    print(f"exported {args.run} to {folder}")
    return 0


def _serve(args) -> int:
    if SERVER_MISSING is not None:  # said before the model is loaded
        raise ImportError("neumf serve needs the server library waitress, which is not "
                          "installed: pip install 'neumf[serve]' (or pip install waitress)")
    recommender = _recommender(args)
    # The thread reading the sockets and the one computing hand the GIL to each other a few
    # times a request: every 1 ms rather than Python's 5 (p99 50 ms instead of 64-110 ms on
    # ML-100K, 50 clients). This process is the server's alone; make_server leaves it be.
    sys.setswitchinterval(0.001)
    server = make_server(recommender, args.host, args.port, quiet=not args.log,
                         threads=args.threads, timeout=args.timeout)
    host, port = server.server_address[:2]
    try:  # Ctrl-C is how the service stops: from here on, a normal end
        print(f"serving {recommender!r} on http://{host}:{port} (GET /health, GET "
              "/recommend?user=ID&k=10, POST /recommend); Ctrl-C stops", flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        server.server_close()
    return 0


def _launch(args) -> int:
    command = args.worker_command[1:] if args.worker_command[:1] == ["--"] \
        else args.worker_command
    code = launch(command, args.num_workers, args.num_servers, host=args.host,
                  port=args.port, timeout=args.timeout)
    if code == 124 and args.timeout is not None:
        print(f"neumf: error: the workers did not finish within {args.timeout} s",
              file=sys.stderr)
    elif code:
        print(f"neumf: error: a worker exited with code {code} (its messages are above); "
              "the other processes were stopped", file=sys.stderr)
    return code


def _interrupted(args) -> str:
    """Where an interrupted ``train`` left its run, and how to continue it."""
    run = getattr(args, "out", None) or getattr(args, "resume", None)
    if getattr(args, "command", None) != "train" or run is None:
        return "neumf: interrupted"
    try:
        epochs = read_run(run).epochs_done
    except RunError:
        return f"neumf: interrupted before the first checkpoint; nothing was saved in {run}"
    return (f"neumf: interrupted; the last checkpoint (epoch {epochs}) is in {run}: continue "
            f"with 'neumf train --resume {run}' (add --num-epochs N for N epochs in all)")


def _one_line(exc: BaseException) -> str:
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    if isinstance(exc, mx.base.MXNetError) and lines:  # a C++ trace, its message last
        return "MXNet: " + lines[-1].replace("MXNetError: ", "", 1)
    return lines[0] if lines else type(exc).__name__


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"neumf: warning: {_one_line(Warning(str(message)))}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code (2 for bad input, with a message)."""
    args = build_parser().parse_args(argv)
    handlers = {"train": lambda: _train(args, argv), "evaluate": lambda: _evaluate(args),
                "recommend": lambda: _recommend(args), "launch": lambda: _launch(args),
                "export": lambda: _export(args), "serve": lambda: _serve(args)}
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.showwarning = _show_warning
        try:
            with interrupts_that_land():
                return handlers[args.command]()
        except KeyboardInterrupt:
            print(_interrupted(args), file=sys.stderr)
            return 130
        except Exception as exc:  # noqa: BLE001 (a message, not a traceback, for any error)
            if args.debug:
                traceback.print_exc()
            if isinstance(exc, _EXPECTED):
                print(f"neumf: error: {_one_line(exc)}", file=sys.stderr)
            else:
                print(f"neumf: error: internal error ({type(exc).__name__}: {_one_line(exc)}); "
                      "run with --debug for the traceback, and please report it",
                      file=sys.stderr)
            return 2

