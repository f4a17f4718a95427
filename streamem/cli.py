"""The ``streamem`` command: one subcommand per job, each with ``--help`` and examples.

Errors are one line on stderr (``streamem: error: ...``) and exit code 1; ``--debug`` (before or
after the command's name) shows the traceback instead. Ctrl-C exits with 130. A command whose
optional extra is not installed says which one to install (:mod:`streamem.extras`).
"""

from __future__ import annotations

import argparse
import os
import sys
from argparse import SUPPRESS
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from streamem.extras import COMMAND_EXTRAS, missing_extra

Handler = Callable[[argparse.Namespace], int]


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Examples kept as written, and every option's default shown unless its help states it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or any(action.default is no for no in (None, False, SUPPRESS)):
            return text
        return text + " (default: %(default)s)"


def _subcommand(
    commands: Any, name: str, summary: str, examples: str, handler: Handler
) -> argparse.ArgumentParser:
    extra = COMMAND_EXTRAS[name]
    needs = f' (needs the {extra} extra: pip install "streamem[{extra}]")' if extra else ""
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=summary,
        description=summary[0].upper() + summary[1:] + "." + needs,
        epilog="examples:\n" + examples,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument(  # also after the command's name; SUPPRESS keeps a --debug given before
        "--debug", action="store_true", default=SUPPRESS, help="show tracebacks on errors"
    )
    parser.set_defaults(handler=handler, command_parser=parser)
    return parser


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _components(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value >= 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _extras_epilog() -> str:
    by_extra: dict[str, list[str]] = {}
    for command, extra in COMMAND_EXTRAS.items():
        by_extra.setdefault(extra or "", []).append(command)
    lines = ["extras (pip install streamem gives the library alone):"]
    for extra, commands in by_extra.items():
        names = ", ".join(commands)
        if extra:
            lines.append(f'  {names}: need the {extra} extra, pip install "streamem[{extra}]"')
        else:
            lines.append(f"  {names}: the library alone")
    lines.append('  import streamem.river: needs the river extra, pip install "streamem[river]"')
    return "\n".join(lines)


def _family_names() -> list[str]:
    from streamem.models.registry import family_names

    return list(family_names())


def _version() -> str:
    from streamem import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="streamem",
        description="Streaming (stepwise) EM: online Gaussian mixtures from data that never stops.",
        epilog=_extras_epilog(),
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"streamem {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = _subcommand(
        commands,
        "demo",
        "run broker, sensor producer and daemon on this machine, with a live view",
        "  streamem demo                  # 30 s, results in ./streamem-demo/\n"
        "  streamem demo --duration 120 --rate 10000 --out-dir /tmp/demo",
        _demo,
    )
    demo.add_argument("--duration", type=_positive, default=30.0, help="seconds of streaming")
    demo.add_argument("--rate", type=_positive, default=3000.0, help="readings per second")
    demo.add_argument("--out-dir", type=Path, default=Path("streamem-demo"), help="results")
    demo.add_argument("--seed", type=int, default=0, help="random seed")

    broker = _subcommand(
        commands,
        "broker",
        "run a Kafka-compatible broker (Tansu, memory only) on a loopback port until Ctrl-C",
        "  streamem broker --port 9092       # then: streamem run --config configs/...\n"
        "  streamem broker --topics sensors:4,streamem.models\n"
        "It keeps everything in memory: stopping it loses every topic. For trying streamem,\n"
        "never for production (point the daemon at a real Kafka).",
        _broker,
    )
    broker.add_argument(
        "--port", type=_positive_int, help="port on 127.0.0.1 (default: a free one, printed)"
    )
    broker.add_argument(
        "--topics",
        type=_names,
        default=[],
        help="topics to create, NAME or NAME:PARTITIONS, comma-separated (default: none; "
        "a topic that a producer or consumer names first is created with 4 partitions)",
    )

    quickstart = _subcommand(
        commands,
        "quickstart",
        "learn a synthetic sensor stream with the library and print the model",
        "  streamem quickstart --points 200000",
        _quickstart,
    )
    quickstart.add_argument("--points", type=_positive_int, default=200_000, help="stream length")
    quickstart.add_argument("--batch-size", type=_positive_int, default=1_000, help="mini-batch")
    quickstart.add_argument("--seed", type=int, default=0, help="random seed")

    fit = _subcommand(
        commands,
        "fit",
        "learn a model of any family from a data file by stepwise EM, in chunks",
        "  streamem fit readings.csv --components 3 --out model.json\n"
        "  streamem fit readings.csv --components auto --max-components 6\n"
        "  streamem fit readings.ndjson --features temp,vib --covariance-type diag\n"
        "  streamem fit counts.csv --family poisson_mixture --components auto\n"
        "  streamem fit machines.csv --family gaussian_hmm --components 2 --sequence-key machine\n"
        "  streamem fit levels.csv --family linear_gaussian_ssm --sequence-key tank\n"
        "  streamem fit notes.txt --family lda --components 3 --max-words 500\n"
        "  streamem fit 'history/*.csv' --components 6 --workers 2\n"
        "  streamem fit history.parquet --components 6 --scheduler tcp://10.0.0.5:8786\n"
        "Rows families (mixtures) read CSV, NDJSON, .npy or Parquet rows; sequence families\n"
        "(HMMs, state space) read them in file order, each row continuing the sequence of its\n"
        "--sequence-key. lda reads a text file, one document per line. With --workers or\n"
        "--scheduler (a gaussian_mixture): batch EM on a Dask cluster (the dask extra), over CSV\n"
        "files (a glob) or Parquet, one progress line per EM iteration. An existing --out file\n"
        "is replaced, with a notice.",
        _fit,
    )
    fit.add_argument(
        "file",
        help="CSV (with a header), NDJSON/.jsonl, .npy or .parquet; lda: a text file; on a"
        " cluster: CSV files (glob), Parquet (a path or URL the workers can read)",
    )
    fit.add_argument(
        "--family",
        default="gaussian_mixture",
        metavar="NAME",
        help="model family: " + ", ".join(_family_names()),
    )
    fit.add_argument(
        "--components",
        type=_components,
        help="number of components (states, topics), or 'auto' to choose it by BIC (default:"
        " auto for a mixture; required for an HMM or lda; none for the state space model)",
    )
    fit.add_argument(
        "--max-components", type=_positive_int, default=8, help="largest K tried by 'auto'"
    )
    fit.add_argument(
        "--covariance-type",
        choices=["full", "diag", "spherical", "tied"],
        help="shape of the covariances of a Gaussian family (default: full)",
    )
    fit.add_argument("--features", type=_names, help="comma-separated columns (default: numeric)")
    fit.add_argument(
        "--sequence-key",
        metavar="COLUMN",
        help="a sequence family: the column naming each row's sequence (default: the whole file"
        " is one sequence)",
    )
    fit.add_argument(
        "--vocabulary",
        type=Path,
        metavar="FILE",
        help="lda: the words, one per line (default: the --max-words most frequent of FILE)",
    )
    fit.add_argument(
        "--max-words",
        type=_positive_int,
        default=5_000,
        help="lda: words of a vocabulary built from the file",
    )
    fit.add_argument(
        "--batch-size", type=_positive_int, default=1_000, help="rows (documents) per update"
    )
    fit.add_argument(
        "--init-size",
        type=_positive_int,
        help="rows before initialising (default: 10000); a mixture's smaller file gets batch EM;"
        " other families: their warm-up's size by default",
    )
    fit.add_argument(
        "--n-init",
        type=_positive_int,
        help="k-means++ restarts (default: 5); on a cluster: EM runs from as many starts, the"
        " best kept",
    )
    fit.add_argument("--seed", type=int, help="random seed (default: 0)")
    fit.add_argument(
        "--out", type=Path, help="model JSON (default: ./<FILE without extension>.model.json)"
    )
    cluster = fit.add_mutually_exclusive_group()
    cluster.add_argument(
        "--scheduler", metavar="ADDRESS", help="batch EM on the Dask cluster of this scheduler"
    )
    cluster.add_argument(
        "--workers", type=_positive_int, metavar="N", help="batch EM on N local Dask workers"
    )
    fit.add_argument(
        "--max-iter", type=_positive_int, default=100, help="EM iterations on a cluster (at most)"
    )

    produce = _subcommand(
        commands,
        "produce",
        "send readings to a Kafka topic: a file replayed, or the synthetic sensor stream",
        "  streamem produce --bootstrap-servers 127.0.0.1:9092 --rate 1000\n"
        "  streamem produce --bootstrap-servers 127.0.0.1:9092 --file readings.csv --rate 500\n"
        "  streamem produce --bootstrap-servers 127.0.0.1:9092 --count 10000 --change-after 5000\n"
        "  streamem produce --bootstrap-servers kafka:9092 --rate 500 --bad-every 1000\n"
        "  streamem produce --bootstrap-servers 127.0.0.1:9092 --anomaly-every 1000\n"
        "  streamem produce --bootstrap-servers 127.0.0.1:9092 --file r.csv --key-field sensor\n"
        "  streamem produce --bootstrap-servers 127.0.0.1:9092 --topic docs --documents notes.txt\n"
        "A progress line (records sent, rate) is printed every few seconds on stderr.",
        _produce,
    )
    produce.add_argument("--bootstrap-servers", required=True, help="host:port of a broker")
    produce.add_argument("--topic", default="sensors", help="topic")
    produce.add_argument(
        "--file", type=Path, help="CSV/NDJSON/.npy/Parquet to replay (default: synthetic)"
    )
    produce.add_argument("--features", type=_names, help="columns of --file to send")
    produce.add_argument(
        "--key-field",
        help="key each record of --file by this column (a text or whole number), sent with it: "
        "the sequence key of an HMM or state space daemon (input.sequence_key)",
    )
    produce.add_argument(
        "--documents",
        type=Path,
        metavar="FILE",
        help="send each non-blank line of this UTF-8 text file as one document "
        "(the input of an LDA daemon, input.format: text)",
    )
    produce.add_argument(
        "--rate", type=_positive, help="records per second (default: as fast as possible)"
    )
    produce.add_argument(
        "--count",
        type=_positive_int,
        help="records to send (default: every row of --file; the synthetic stream: until Ctrl-C)",
    )
    produce.add_argument("--change-after", type=_positive_int, help="synthetic regime change")
    produce.add_argument(
        "--anomaly-every",
        type=_positive_int,
        help="every N-th synthetic reading an anomaly (humidity 6 sd above its mode's)",
    )
    produce.add_argument("--seed", type=int, default=0, help="random seed (synthetic)")
    produce.add_argument(
        "--bad-every", type=_positive_int, help="send a malformed record instead of every N-th"
    )
    _connect_timeout(produce)

    inspect = _subcommand(
        commands,
        "inspect",
        "print a model: the newest published on a topic, or a model/snapshot JSON file",
        "  streamem inspect model.json\n"
        "  streamem inspect --bootstrap-servers 127.0.0.1:9092 --topic streamem.models\n"
        "On a topic it reads what was published before the call (up to the partitions' ends as\n"
        "of its start) and stops.",
        _inspect,
    )
    inspect.add_argument("file", type=Path, nargs="?", help="model JSON, snapshot or NDJSON")
    inspect.add_argument("--bootstrap-servers", help="read the output topic of this broker")
    inspect.add_argument("--topic", default="streamem.models", help="output topic")
    inspect.add_argument("--model", help="model name (the records' key; default: any)")
    inspect.add_argument("--json", action="store_true", help="print the raw JSON document")
    inspect.add_argument(
        "--wait",
        type=_non_negative,
        default=0.0,
        metavar="SECONDS",
        help="on a topic that holds no model yet (a daemon that just started), wait up to this "
        "long for the first one (default 0: answer at once)",
    )
    _connect_timeout(inspect)

    follow = _subcommand(
        commands,
        "follow",
        "print the daemon's results (output.results_topic) as they arrive, one line each",
        "  streamem follow --bootstrap-servers 127.0.0.1:9092 --topic sensors.results\n"
        "  streamem follow --bootstrap-servers 127.0.0.1:9092 --topic sensors.results "
        "--anomalies\n"
        "Starts at the end of the topic (new results) unless --from-beginning; Ctrl-C stops.",
        _follow,
    )
    follow.add_argument("--bootstrap-servers", required=True, help="host:port of a broker")
    follow.add_argument("--topic", required=True, help="the results topic")
    follow.add_argument("--anomalies", action="store_true", help="only results flagged anomalies")
    follow.add_argument("--from-beginning", action="store_true", help="read the topic from start")
    follow.add_argument("--count", type=_positive_int, help="stop after this many lines")
    _connect_timeout(follow)

    plot = _subcommand(
        commands,
        "plot",
        "draw a model (a mixture's ellipses over 2 features, another family's states, track, "
        "matrices or topics) and its learning curve to a PNG",
        "  streamem plot model.json --data readings.csv --out model.png\n"
        "  streamem plot streamem-demo/snapshots.ndjson --features temp,vib",
        _plot,
    )
    plot.add_argument("model", type=Path, help="model JSON, snapshot or NDJSON of snapshots")
    plot.add_argument("--data", type=Path, help="a data file to draw a sample of")
    plot.add_argument("--features", type=_names, help="the two features to draw")
    plot.add_argument(
        "--sample",
        type=_positive_int,
        default=5_000,
        help="rows of --data drawn: a uniform sample under a mixture, the first rows (a "
        "sequence) under another family",
    )
    plot.add_argument("--seed", type=int, default=0, help="random seed of the sample of --data")
    plot.add_argument("--out", type=Path, default=Path("model.png"), help="PNG file")

    run = _subcommand(
        commands,
        "run",
        "run the Kafka daemon that learns a model from a topic of readings",
        "  streamem run --config configs/sensors-json.yaml\n"
        "  STREAMEM_KAFKA__BOOTSTRAP_SERVERS=kafka:9092 streamem run --config my.yaml\n"
        "Every key of the file can be overridden by an environment variable. SIGTERM or\n"
        "Ctrl-C stops cleanly (a second Ctrl-C exits at once).",
        _run,
    )
    run.add_argument("--config", required=True, metavar="FILE.yaml", help="the configuration")
    return parser


def _connect_timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--connect-timeout",
        type=_positive,
        default=6.0,
        metavar="SECONDS",
        help="give up when no broker of --bootstrap-servers answers within this time",
    )


def _console() -> Any:
    from rich.console import Console

    return Console()


def _demo(args: argparse.Namespace) -> int:
    from streamem.commands.demo import run_demo
    from streamem.commands.summary import MixtureSummary

    console = _console()
    result = run_demo(
        args.duration, rate=args.rate, out_dir=args.out_dir, seed=args.seed, console=console
    )
    console.print(MixtureSummary.from_snapshots(result.snapshots).table())
    console.print(
        f"produced {result.produced:,} readings; {len(result.snapshots)} model versions published\n"
        f"model:     {result.model_path}  (GaussianMixture.from_json loads it)\n"
        f"versions:  {result.snapshots_path}\n"
        f"plot:      {result.plot_path}\n"
        f"daemon:    {result.out_dir / 'daemon.log'}, {result.out_dir / 'daemon.yaml'}",
        soft_wrap=True,  # paths stay whole, to copy and paste
    )
    return 0


def _broker(args: argparse.Namespace) -> int:
    from streamem.commands.broker import serve_broker, topic_specs

    return serve_broker(args.port, topic_specs(args.topics))


def _quickstart(args: argparse.Namespace) -> int:
    from streamem.quickstart import run

    run(args.points, args.batch_size, args.seed)
    return 0


_FIT_OPTIONS = {
    "components": "n_components",
    "covariance_type": "covariance_type",
    "init_size": "init_size",
    "n_init": "n_init",
    "seed": "seed",
}
"""``fit``'s options of the model protocol: the ``StreamingOptions`` field each one sets."""


def _fit_path(args: argparse.Namespace) -> str:
    """Which way ``fit`` learns the family (``rows``, ``sequences`` or ``documents``), after
    refusing the options that have no meaning for it."""
    from streamem.errors import ValidationError
    from streamem.models.registry import family_spec, model_class

    spec = family_spec(args.family)
    path = (
        "documents"
        if spec.input_kind == "documents"
        else "sequences"
        if spec.sequential
        else "rows"
    )
    takes = set(spec.options) | ({"n_init", "seed"} if path == "rows" else set())
    extra = {
        "rows": {"features", "max_components"},
        "sequences": {"features", "sequence_key"},
        "documents": {"vocabulary", "max_words"},
    }[path]
    given = [name for name, option in _FIT_OPTIONS.items() if option not in takes]
    given += [name for name in ("features", "sequence_key", "vocabulary") if name not in extra]
    wrong = [name for name in given if getattr(args, name) is not None]
    if wrong:
        flag = "--" + wrong[0].replace("_", "-")
        raise ValidationError(
            f"{flag} has no meaning for --family {spec.name} (a {path.rstrip('s')} family); "
            f"received {getattr(args, wrong[0])!r}"
        )
    has_bic = path == "rows" and hasattr(model_class(spec.name), "bic")
    if args.components == "auto" and not has_bic:
        raise ValidationError(
            f"--components auto chooses K by BIC, which --family {spec.name} has not; give a number"
        )
    if args.components is None and "n_components" in takes and path != "rows":
        raise ValidationError(f"--components: give the number for --family {spec.name}")
    if (args.scheduler is not None or args.workers is not None) and spec.name != "gaussian_mixture":
        option = "--scheduler" if args.scheduler is not None else "--workers"
        raise ValidationError(
            f"{option}: batch EM on a Dask cluster learns --family gaussian_mixture, received "
            f"{spec.name!r} (streamem.dask.fit takes any family from Python)"
        )
    return path


def _fit(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    from streamem.commands.fit import fit_documents, fit_file, fit_sequences
    from streamem.datafiles import open_data

    path = _fit_path(args)
    if args.scheduler is not None or args.workers is not None:
        return _fit_on_cluster(args)
    seed = 0 if args.seed is None else args.seed
    console = _console()
    data = None if path == "documents" else open_data(args.file, args.features)
    if data is not None and args.sequence_key is not None and args.features is None:
        features = [name for name in data.features if name != args.sequence_key]
        data = open_data(args.file, features) if features != list(data.features) else data
    out = _model_out(console, args.out or Path(Path(args.file).stem + ".model.json"))
    size = _text_size(Path(args.file)) if data is None else data.size
    passes = 2 if args.components == "auto" or (path == "documents" and not args.vocabulary) else 1
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task(f"reading {Path(args.file).name}", total=passes * size)

        def progress(position: int) -> None:
            bar.update(task, completed=position)

        def candidate(k: int, bic: float, seconds: float) -> None:
            console.print(f"K={k}: BIC {bic:,.1f} on a sample ({seconds:.1f} s)")

        if data is not None and path == "rows":
            result = fit_file(
                data,
                "auto" if args.components is None else args.components,
                family=args.family,
                covariance_type=args.covariance_type or "full",
                batch_size=args.batch_size,
                init_size=args.init_size or 10_000,
                n_init=args.n_init or 5,
                seed=seed,
                candidates=range(1, args.max_components + 1),
                progress=progress,
                on_candidate=candidate,
            )
        elif data is not None:
            result = fit_sequences(
                data,
                args.family,
                args.components,
                sequence_key=args.sequence_key,
                covariance_type=args.covariance_type or "full",
                batch_size=args.batch_size,
                init_size=args.init_size,
                seed=seed,
                progress=progress,
            )
        else:
            result = fit_documents(
                Path(args.file),
                args.components,
                vocabulary=None if args.vocabulary is None else _words(args.vocabulary),
                max_words=args.max_words,
                batch_size=args.batch_size,
                init_size=args.init_size,
                n_init=args.n_init,
                seed=seed,
                progress=progress,
            )
    _print_bic(console, result.bic, result.n_components)
    _print_learned(console, args, data, result)
    _write_model(console, result.model, out)
    return 0


def _print_learned(console: Any, args: argparse.Namespace, data: Any, result: Any) -> None:
    """What ``fit`` learned, and what it left out."""
    if data is None:
        words = len(result.model.vocabulary)
        source = f"from {args.vocabulary}" if args.vocabulary else "built from the file"
        console.print(
            f"learned {result.n_rows:,} documents by stepwise EM, vocabulary of {words:,} words "
            f"({source})"
        )
        if result.n_skipped:
            console.print(f"skipped {result.n_skipped:,} documents without a word of it")
        return
    how = "batch EM (fewer rows than --init-size)" if result.batch_em else "stepwise EM"
    where = ""
    if args.sequence_key is not None:
        where = f" in {result.n_sequences:,} sequences of {args.sequence_key}"
    console.print(f"learned {result.n_rows:,} rows of {', '.join(data.features)}{where} by {how}")
    if data.text_columns:
        left = [name for name in data.text_columns if name != args.sequence_key]
        if left:
            console.print(f"left out the text column(s) {', '.join(left)}")
    if result.n_skipped:
        console.print(f"skipped {result.n_skipped:,} rows without any value")


def _model_out(console: Any, out: Path) -> Path:
    """``fit``'s ``--out``, checked before the work; an existing file is replaced as ``plot``
    and ``demo`` replace theirs, but a model may have taken long to learn: said at once, so
    that Ctrl-C keeps it."""
    out = _writable(out, "--out")
    if out.exists():
        console.print(f"{out} exists: the new model will replace it", soft_wrap=True)
    return out


def _write_model(console: Any, model: Any, out: Path) -> None:
    """Write ``fit``'s model and print its summary."""
    from streamem.commands.summary import MixtureSummary
    from streamem.commands.views import ModelView

    out.write_text(model.to_json(), encoding="utf-8")
    if model.family == "gaussian_mixture":
        console.print(MixtureSummary.from_model(model, name=out.stem).table())
    else:
        _print_view(ModelView.from_model(model, name=out.stem))
    console.print(f"model written to {out}", soft_wrap=True)


def _text_size(path: Path) -> int:
    from streamem.errors import ValidationError

    if not path.is_file():
        raise ValidationError(f"no such text file: {str(path)!r}")
    return path.stat().st_size


def _words(path: Path) -> list[str]:
    """The words of a vocabulary file, one per line (blank lines skipped)."""
    from streamem.errors import ValidationError

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ValidationError(f"--vocabulary {str(path)!r} cannot be read: {error}") from None
    words = [line.strip() for line in text.splitlines() if line.strip()]
    if not words:
        raise ValidationError(f"--vocabulary {str(path)!r} holds no word")
    return words


def _fit_on_cluster(args: argparse.Namespace) -> int:
    from streamem.commands.fit import fit_on_cluster

    stem = Path(args.file).name.split("*")[0].split(".")[0] or "model"
    console = _console()
    out = _model_out(console, args.out or Path(stem + ".model.json"))
    n_init = args.n_init or 5
    where = args.scheduler or f"{args.workers} local worker{'s' if args.workers > 1 else ''}"

    def iteration(step: Any) -> None:
        run = f"start {step.run}, " if n_init > 1 else ""
        console.print(
            f"{run}iteration {step.number}: mean log-likelihood "
            f"{step.log_likelihood / step.n_units:.6f} over {step.n_units:,} rows "
            f"({step.seconds:.2f} s)"
        )

    console.print(f"batch EM on {where}, reading {args.file}", soft_wrap=True)
    result = fit_on_cluster(
        args.file,
        "auto" if args.components is None else args.components,
        features=args.features,
        covariance_type=args.covariance_type or "full",
        n_init=n_init,
        seed=0 if args.seed is None else args.seed,
        max_iter=args.max_iter,
        candidates=range(1, args.max_components + 1),
        scheduler=args.scheduler,
        workers=args.workers,
        progress=iteration,
    )
    _print_bic(console, result.bic, result.n_components)
    model = result.model
    state = "converged" if model.converged_ else "stopped at --max-iter"
    console.print(f"learned {result.n_rows:,} rows by batch EM: {state} after {model.n_iter_}")
    _write_model(console, model, out)
    return 0


def _print_bic(console: Any, bic: dict[int, float], chosen: int) -> None:
    if bic:
        scores = ", ".join(f"K={k}: {v:,.1f}" for k, v in bic.items())
        console.print(f"BIC on a sample ({scores}): K={chosen} is lowest", soft_wrap=True)


def _writable(path: Path, option: str) -> Path:
    """``path`` if a file can be written there: checked before the work, not after it."""
    from streamem.errors import ValidationError

    folder = path.parent
    if path.is_dir():
        raise ValidationError(f"{option} {str(path)!r} is a directory; give a file name")
    if not folder.is_dir():
        raise ValidationError(f"{option} {str(path)!r}: no directory {str(folder)!r}")
    if not os.access(folder, os.W_OK):
        raise ValidationError(f"{option} {str(path)!r}: the directory is not writable")
    return path


def _produce(args: argparse.Namespace) -> int:
    from streamem.commands.produce import (
        ProgressLine,
        document_records,
        file_records,
        paced,
        send_records,
        synthetic_records,
        with_malformed,
    )
    from streamem.datafiles import open_data
    from streamem.errors import ValidationError
    from streamem.synthetic import SensorStream

    if args.file is not None and args.documents is not None:
        raise ValidationError("give --file (readings) or --documents (texts), not both")
    replayed = "--file" if args.file is not None else "--documents" if args.documents else None
    for option, value in (
        ("--change-after", args.change_after),
        ("--anomaly-every", args.anomaly_every),
    ):
        if replayed and value is not None:
            raise ValidationError(
                f"{option} changes the synthetic stream; {replayed} is replayed as it is"
            )
    if args.key_field is not None and args.file is None:
        raise ValidationError("--key-field keys the rows of --file; give --file")
    if args.documents is not None:
        messages = document_records(args.documents)
    elif args.file is not None:
        messages = file_records(open_data(args.file, args.features), args.key_field)
    else:
        stream = SensorStream(
            change_after=args.change_after, seed=args.seed, anomaly_every=args.anomaly_every
        )
        messages = synthetic_records(stream)
    messages = with_malformed(messages, args.bad_every)
    _connecting(args)
    sent = send_records(
        args.bootstrap_servers,
        args.topic,
        paced(messages, args.rate),
        args.count,
        on_sent=ProgressLine(args.topic),
        connect_timeout=args.connect_timeout,
    )
    print(f"sent {sent:,} records to {args.topic} on {args.bootstrap_servers}")
    return 0


def _connecting(args: argparse.Namespace) -> None:
    print(
        f"connecting to {args.bootstrap_servers} (--connect-timeout {args.connect_timeout:g} s)",
        file=sys.stderr,
        flush=True,
    )


def _follow(args: argparse.Namespace) -> int:
    from streamem.commands.follow import follow

    _connecting(args)
    follow(  # until --count lines, or Ctrl-C (exit 130, as for every command)
        args.bootstrap_servers,
        args.topic,
        write=lambda line: print(line, flush=True),
        anomalies_only=args.anomalies,
        from_beginning=args.from_beginning,
        count=args.count,
        connect_timeout=args.connect_timeout,
    )
    return 0


def _inspect(args: argparse.Namespace) -> int:
    import json

    from streamem.errors import ValidationError

    if (args.file is None) == (args.bootstrap_servers is None):
        raise ValidationError("give a model FILE or --bootstrap-servers (one of the two)")
    if args.file is not None:
        from streamem.commands.summary import load_view, read_documents

        if args.json:  # any family's document (a file of snapshots: the newest)
            print(json.dumps(read_documents(args.file)[-1], indent=2))
            return 0
        view = load_view(args.file)
    else:
        from streamem.commands.snapshots import latest_snapshots, newest_run

        _connecting(args)  # before the model code is imported: at once
        snapshots, warning = newest_run(_first_snapshots(args, latest_snapshots))
        if warning is not None:
            print(f"streamem: warning: {warning}", file=sys.stderr)
        if args.json:
            print(json.dumps(snapshots[-1], indent=2))
            return 0
        from streamem.commands.summary import view_of_snapshots

        view = view_of_snapshots(snapshots)
    _print_view(view)
    return 0


def _first_snapshots(args: argparse.Namespace, read: Callable[..., Any]) -> Any:
    """``read``'s snapshots of the topic; with ``--wait``, retried while the topic holds none
    yet, up to that many seconds (one line says so)."""
    import time

    from streamem.errors import ValidationError

    deadline = time.monotonic() + args.wait
    told = False
    while True:
        try:
            return read(
                args.bootstrap_servers, args.topic, args.model, connect_timeout=args.connect_timeout
            )
        except ValidationError as error:  # no topic, or no model on it yet
            if time.monotonic() >= deadline:
                raise
            if not told:
                print(
                    f"{error}: waiting up to {args.wait:g} s for the first model (--wait)",
                    file=sys.stderr,
                    flush=True,
                )
                told = True
            time.sleep(1.0)


def _print_view(view: Any) -> None:
    """Print a MixtureSummary (its table) or a ModelView (its renderables)."""
    console = _console()
    for part in view.renderables() if hasattr(view, "renderables") else [view.table()]:
        console.print(part)


def _plot(args: argparse.Namespace) -> int:
    from streamem.commands.fit import uniform_sample
    from streamem.commands.plot import plot_summary, plot_view
    from streamem.commands.summary import MixtureSummary, load_view
    from streamem.datafiles import Rebatcher
    from streamem.errors import ValidationError

    view = load_view(args.model)
    mixture = isinstance(view, MixtureSummary)
    wanted = 2 if mixture else 1
    if args.features is not None and len(args.features) != wanted:
        raise ValidationError(
            f"--features takes {wanted} name(s) for this model, got {args.features}"
        )
    out = _writable(args.out, "--out")
    data = None
    if args.data is not None:
        rows = _data_of(args.data, view.features).chunks()
        if mixture:
            data = uniform_sample(rows, args.sample, seed=args.seed)
        else:  # a sequence: the first rows, in file order
            data = next(Rebatcher(args.sample)(rows), None)
    if isinstance(view, MixtureSummary):
        out = plot_summary(view, out, data=data, features=args.features)
    else:
        out = plot_view(view, out, data=data, feature=(args.features or [None])[0])
    print(f"plot written to {out}")
    return 0


def _data_of(path: Path, features: Sequence[str]) -> Any:
    """The data file read in the model's features; a model whose features have no names
    (x0, x1, ...) reads the file's numeric columns in order, if there are as many."""
    from streamem.datafiles import open_data
    from streamem.errors import ValidationError

    positional = list(features) == [f"x{i}" for i in range(len(features))]
    data = open_data(path, None if positional else features)
    if positional and len(data.features) != len(features):
        raise ValidationError(
            f"{str(path)!r} has {len(data.features)} numeric columns ({', '.join(data.features)}), "
            f"the model {len(features)}"
        )
    return data


def _run(args: argparse.Namespace) -> int:
    from streamem.service.app import run as run_daemon
    from streamem.service.config import load_config

    return run_daemon(load_config(args.config))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``streamem`` command; returns the exit code."""
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:  # the command's own usage, not the top-level one
        args.command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        handler: Handler = args.handler
        try:
            return handler(args)
        except ModuleNotFoundError as error:
            raise (missing_extra(error, args.command) or error) from error
    except KeyboardInterrupt:
        print("streamem: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # one clear line, the traceback with --debug
        if args.debug:
            raise
        message = " ".join(str(error).split())  # one line, even for multi-line messages
        print(f"streamem: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
