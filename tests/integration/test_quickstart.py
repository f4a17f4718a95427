"""The README's daemon quick start, run as it is written there (issue 15, acceptance 3).

The three ``# terminal N`` blocks of the "Daemon quick start" section are parsed out of
README.md, so that this test breaks when the README changes: terminal 1 (``streamem broker``)
and terminal 2 (``streamem run``) hold one long-running command each and are started as
processes; the commands of terminal 3 run one after the other and must succeed. Then both are
stopped with Ctrl-C (SIGINT), as a user would, and must exit 0. The only changes are the ports:
the README's 9092 and 9108 become free ports (the daemon gets its bootstrap servers and metrics
port from the environment), and the commands run in a temporary copy of ``configs/``.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from streamem.service.broker import free_loopback_port
from tests.integration.daemon import metric_sample

ROOT = Path(__file__).resolve().parents[2]


def quickstart_blocks(readme: str, heading: str = "## Daemon quick start") -> dict[int, list[str]]:
    """The commands of each ``# terminal N`` bash block of the section under ``heading``."""
    section = readme.split(heading + "\n", 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
    blocks: dict[int, list[str]] = {}
    for block in re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL):
        lines = block.strip().splitlines()
        heading = re.match(r"# terminal (\d+):", lines[0])
        if heading:
            blocks[int(heading.group(1))] = [line for line in lines[1:] if line.strip()]
    return blocks


def start(command: list[str], log: Path, env: dict[str, str], cwd: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            # as in a terminal: a test runner in the background may ignore SIGINT
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )


def wait_for(path: Path, text: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text(errors="replace"):
            return
        assert process.poll() is None, path.read_text(errors="replace")
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in {path}:\n{path.read_text(errors='replace')}")


def stop_with_ctrl_c(process: subprocess.Popen, log: Path) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        code = process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"Ctrl-C did not stop it:\n{log.read_text()}") from None
    assert code == 0, log.read_text()


def test_the_readme_daemon_quick_start_works_as_written(tmp_path: Path) -> None:
    blocks = quickstart_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert sorted(blocks) == [1, 2, 3]
    assert blocks[1] == ["streamem broker --port 9092"]
    assert len(blocks[2]) == 1
    assert blocks[2][0].startswith("streamem run --config configs/")
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    broker_port, metrics_port = free_loopback_port(), free_loopback_port()

    def as_run_here(line: str) -> list[str]:
        words = shlex.split(line.replace("9092", str(broker_port)))
        assert words[0] == "streamem"
        return [str(Path(sys.executable).parent / "streamem"), *words[1:]]

    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMEM_")}
    daemon_env = {
        **env,
        "STREAMEM_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{broker_port}",
        "STREAMEM_METRICS__PORT": str(metrics_port),
    }
    broker_log, daemon_log = tmp_path / "terminal-1.log", tmp_path / "terminal-2.log"
    broker = start(as_run_here(blocks[1][0]), broker_log, env, tmp_path)
    daemon = None
    try:
        wait_for(broker_log, f"broker ready at 127.0.0.1:{broker_port}", broker, 15)
        daemon = start(as_run_here(blocks[2][0]), daemon_log, daemon_env, tmp_path)
        outputs = []
        for line in blocks[3]:
            done = subprocess.run(
                as_run_here(line),
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert done.returncode == 0, f"{line}\n{done.stderr}\n{daemon_log.read_text()}"
            outputs.append(done.stdout)
        assert "sent 20,000 records to sensors" in outputs[0]
        printed = " ".join(outputs[-1].split())
        assert "sensors: 3 full-covariance components" in printed
        assert "points seen" in printed
        published = metric_sample(metrics_port, "streamem_published_total")
        assert published is not None
        assert published >= 1
        stop_with_ctrl_c(daemon, daemon_log)
        assert "stopped: n_seen=" in daemon_log.read_text()
        stop_with_ctrl_c(broker, broker_log)
        assert "broker stopped" in broker_log.read_text()
    finally:
        for process in (daemon, broker):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
