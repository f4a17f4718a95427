"""The ``streamem`` command: one subcommand per job, each with ``--help`` and examples.

Errors are one line on stderr (``streamem: error: ...``) and exit code 1; ``--debug`` shows the
traceback instead. Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

Handler = Callable[[argparse.Namespace], int]


def _subcommand(
    commands: Any, name: str, summary: str, examples: str, handler: Handler
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=summary,
        description=summary[0].upper() + summary[1:] + ".",
        epilog="examples:\n" + examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=handler)
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


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="streamem",
        description="Streaming (stepwise) EM: online Gaussian mixtures from data that never stops.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = _subcommand(
        commands,
        "demo",
        "run broker, sensor producer and daemon on this machine, with a live view",
        "  streamem demo                  # 30 s, results in ./streamem-demo/\n"
        "  streamem demo --duration 120 --rate 10000 --out-dir /tmp/demo",
        _demo,
    )
    demo.add_argument("--duration", type=float, default=30.0, help="seconds (default 30)")
    demo.add_argument("--rate", type=_positive, default=3000.0, help="readings per second")
    demo.add_argument("--out-dir", type=Path, default=Path("streamem-demo"), help="results")
    demo.add_argument("--seed", type=int, default=0, help="random seed")

    quickstart = _subcommand(
        commands,
        "quickstart",
        "learn a synthetic sensor stream with the library and print the model",
        "  streamem quickstart --points 200000",
        _quickstart,
    )
    quickstart.add_argument("--points", type=int, default=200_000, help="stream length")
    quickstart.add_argument("--batch-size", type=int, default=1_000, help="mini-batch size")
    quickstart.add_argument("--seed", type=int, default=0, help="random seed")

    fit = _subcommand(
        commands,
        "fit",
        "learn a mixture from a CSV, NDJSON or .npy file by stepwise EM, in chunks",
        "  streamem fit readings.csv --components 3 --out model.json\n"
        "  streamem fit readings.csv --components auto --max-components 6\n"
        "  streamem fit readings.ndjson --features temp,vib --covariance-type diag",
        _fit,
    )
    fit.add_argument("file", type=Path, help="CSV (with a header), NDJSON/.jsonl or .npy")
    fit.add_argument(
        "--components",
        type=_components,
        default="auto",
        help="number of components, or 'auto' to choose it by BIC (default)",
    )
    fit.add_argument("--max-components", type=int, default=8, help="largest K tried by 'auto'")
    fit.add_argument(
        "--covariance-type", default="full", choices=["full", "diag", "spherical", "tied"]
    )
    fit.add_argument("--features", type=_names, help="comma-separated columns (default: numeric)")
    fit.add_argument("--batch-size", type=int, default=1_000, help="rows per partial_fit")
    fit.add_argument("--init-size", type=int, default=10_000, help="rows before initialising")
    fit.add_argument("--n-init", type=int, default=5, help="k-means++ restarts")
    fit.add_argument("--seed", type=int, default=0, help="random seed")
    fit.add_argument(
        "--out", type=Path, help="model JSON (default: ./<FILE without extension>.model.json)"
    )

    produce = _subcommand(
        commands,
        "produce",
        "send readings to a Kafka topic: a file replayed, or the synthetic sensor stream",
        "  streamem produce --bootstrap-servers 127.0.0.1:9092 --rate 1000\n"
        "  streamem produce --bootstrap-servers 127.0.0.1:9092 --file readings.csv --rate 500\n"
        "  streamem produce --bootstrap-servers 127.0.0.1:9092 --count 10000 --change-after 5000\n"
        "  streamem produce --bootstrap-servers kafka:9092 --rate 500 --bad-every 1000",
        _produce,
    )
    produce.add_argument("--bootstrap-servers", required=True, help="host:port of a broker")
    produce.add_argument("--topic", default="sensors", help="topic (default sensors)")
    produce.add_argument("--file", type=Path, help="CSV/NDJSON/.npy to replay (default: synthetic)")
    produce.add_argument("--features", type=_names, help="columns of --file to send")
    produce.add_argument("--rate", type=_positive, help="records per second (default: at once)")
    produce.add_argument("--count", type=int, help="records to send (default: all / forever)")
    produce.add_argument("--change-after", type=int, help="synthetic regime change after N")
    produce.add_argument("--seed", type=int, default=0, help="random seed (synthetic)")
    produce.add_argument(
        "--bad-every", type=int, help="send a malformed record instead of every N-th one"
    )

    inspect = _subcommand(
        commands,
        "inspect",
        "print a model: the newest published on a topic, or a model/snapshot JSON file",
        "  streamem inspect model.json\n"
        "  streamem inspect --bootstrap-servers 127.0.0.1:9092 --topic streamem.models",
        _inspect,
    )
    inspect.add_argument("file", type=Path, nargs="?", help="model JSON, snapshot or NDJSON")
    inspect.add_argument("--bootstrap-servers", help="read the output topic of this broker")
    inspect.add_argument("--topic", default="streamem.models", help="output topic")
    inspect.add_argument("--model", help="model name (the records' key; default: any)")
    inspect.add_argument("--json", action="store_true", help="print the raw JSON document")

    plot = _subcommand(
        commands,
        "plot",
        "draw a model (ellipses over 2 features) and its learning curve to a PNG",
        "  streamem plot model.json --data readings.csv --out model.png\n"
        "  streamem plot streamem-demo/snapshots.ndjson --features temp,vib",
        _plot,
    )
    plot.add_argument("model", type=Path, help="model JSON, snapshot or NDJSON of snapshots")
    plot.add_argument("--data", type=Path, help="a data file to draw a sample of")
    plot.add_argument("--features", type=_names, help="the two features to draw")
    plot.add_argument("--sample", type=int, default=5_000, help="rows of --data drawn")
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


def _quickstart(args: argparse.Namespace) -> int:
    from streamem.quickstart import run

    run(args.points, args.batch_size, args.seed)
    return 0


def _fit(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    from streamem.commands.fit import fit_file
    from streamem.commands.summary import MixtureSummary
    from streamem.datafiles import open_data

    data = open_data(args.file, args.features)
    passes = 2 if args.components == "auto" else 1
    console = _console()
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task(f"reading {data.path.name}", total=passes * data.size)
        result = fit_file(
            data,
            args.components,
            covariance_type=args.covariance_type,
            batch_size=args.batch_size,
            init_size=args.init_size,
            n_init=args.n_init,
            seed=args.seed,
            candidates=range(1, args.max_components + 1),
            progress=lambda position: bar.update(task, completed=position),
        )
    if result.bic:
        scores = ", ".join(f"K={k}: {v:,.1f}" for k, v in result.bic.items())
        console.print(
            f"BIC on a sample ({scores}): K={result.n_components} is lowest", soft_wrap=True
        )
    how = "batch EM (fewer rows than --init-size)" if result.batch_em else "stepwise EM"
    console.print(f"learned {result.n_rows:,} rows of {', '.join(data.features)} by {how}")
    if result.n_skipped:
        console.print(f"skipped {result.n_skipped:,} rows without any value")
    out = args.out or Path(data.path.stem + ".model.json")
    out.write_text(result.model.to_json(), encoding="utf-8")
    console.print(MixtureSummary.from_model(result.model, name=out.stem).table())
    console.print(f"model written to {out}", soft_wrap=True)
    return 0


def _produce(args: argparse.Namespace) -> int:
    from streamem.commands.produce import (
        file_records,
        paced,
        send_records,
        synthetic_records,
        with_malformed,
    )
    from streamem.datafiles import open_data
    from streamem.synthetic import SensorStream

    if args.file is not None:
        messages = file_records(open_data(args.file, args.features))
    else:
        stream = SensorStream(change_after=args.change_after, seed=args.seed)
        messages = synthetic_records(stream)
    messages = with_malformed(messages, args.bad_every)
    sent = send_records(args.bootstrap_servers, args.topic, paced(messages, args.rate), args.count)
    print(f"sent {sent:,} records to {args.topic} on {args.bootstrap_servers}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    import json

    from streamem.commands.snapshots import latest_snapshots
    from streamem.commands.summary import MixtureSummary, load_summary
    from streamem.errors import ValidationError

    if (args.file is None) == (args.bootstrap_servers is None):
        raise ValidationError("give a model FILE or --bootstrap-servers (one of the two)")
    if args.file is not None:
        if args.json:
            print(args.file.read_text(encoding="utf-8").strip())
            return 0
        summary = load_summary(args.file)
    else:
        snapshots = latest_snapshots(args.bootstrap_servers, args.topic, args.model)
        if args.json:
            print(json.dumps(snapshots[-1], indent=2))
            return 0
        summary = MixtureSummary.from_snapshots(snapshots)
    _console().print(summary.table())
    return 0


def _plot(args: argparse.Namespace) -> int:
    from streamem.commands.fit import uniform_sample
    from streamem.commands.plot import plot_summary
    from streamem.commands.summary import load_summary
    from streamem.datafiles import open_data

    summary = load_summary(args.model)
    data = None
    if args.data is not None:
        rows = open_data(args.data, summary.features).chunks()
        data = uniform_sample(rows, args.sample, seed=0)
    if args.features is not None and len(args.features) != 2:
        raise ValueError(f"--features takes two names, got {args.features}")
    out = plot_summary(summary, args.out, data=data, features=args.features)
    print(f"plot written to {out}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from streamem.service.app import run as run_daemon
    from streamem.service.config import load_config

    return run_daemon(load_config(args.config))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``streamem`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        handler: Handler = args.handler
        return handler(args)
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
